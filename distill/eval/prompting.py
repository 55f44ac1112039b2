"""How `distill eval` prompts a model and reads its answers, resolved from the config and the model itself:
the reasoning mode (and why), the `<think>` prefill, and the system turn the chat template adds on its own.

    tokenizer, prompting = resolve_prompting(cfg, read_manifest(model_dir))
    prompting.reasoning, prompting.why     # "off", "neither its chat template nor its tokenizer knows <think>, ..."
    prompting.system_prompt                # what the model is sent as system prompt (None: nothing)

Reads the model's tokenizer (template, vocabulary) and its manifest (an sft output counts the training examples
with a think block); writes nothing. eval/README.md describes the order in which `--reasoning auto` decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from distill.core.chat_template import PromptRenderer, knows_think, opens_think
from distill.core.manifest import find_stage
from distill.eval.models import eval_tokenizer


@dataclass
class Prompting:
    """How prompts are rendered and answers read: the config resolved against the model (resolve_prompting)."""

    reasoning: str = "on"  # on: think block prefilled, answer after </think>; off: last box of the whole response
    why: str = "--reasoning on"
    think_prefill: bool = True
    template_system: str | None = None  # the system prompt the chat template adds when the messages have none
    default_system: str = "keep"
    drop_block: str | None = None  # that turn as the template renders it, when it is cut out of every prompt

    @property
    def system_prompt(self) -> str | None:
        """What the model is actually sent as a system prompt."""
        return self.template_system if self.default_system == "keep" else None


def resolve_prompting(cfg: Any, manifest: dict[str, Any] | None):
    """(tokenizer, Prompting): the reasoning mode and why, the prefill, and the chat template's own system turn."""
    tokenizer = eval_tokenizer(cfg.model, cfg.trust_remote_code, cfg.chat_template)
    default = PromptRenderer(tokenizer, cfg.default_system, say=False).default  # said when the model runs
    mode, why = reasoning_mode(cfg, tokenizer, manifest)
    prefill = mode == "on" if cfg.think_prefill is None else cfg.think_prefill
    return tokenizer, Prompting(
        reasoning=mode, why=why, think_prefill=prefill, template_system=default.text if default else None,
        default_system=cfg.default_system,
        drop_block=default.block if default and cfg.default_system == "drop" else None,
    )


def reasoning_mode(cfg: Any, tokenizer, manifest: dict[str, Any] | None = None) -> tuple[str, str]:
    """on/off and the reason, for `--reasoning auto` read from the model: a prompt that already opens <think>,
    then what the sft manifest says it was trained on, then whether its template or tokenizer knows <think>."""
    if cfg.reasoning != "auto":
        return cfg.reasoning, f"--reasoning {cfg.reasoning}"
    if cfg.think_prefill:
        return "on", "--think-prefill"
    if opens_think(tokenizer):
        return "on", "its chat template opens <think> in the generation prompt"
    trained = trained_on_reasoning(manifest)
    if trained:
        return trained
    why = knows_think(tokenizer)
    if why:
        return "on", why
    return "off", ("neither its chat template nor its tokenizer knows <think>, and no sft manifest says it was "
                   "trained on reasoning traces")


def trained_on_reasoning(manifest: dict[str, Any] | None) -> tuple[str, str] | None:
    """What the model's sft manifest says about its training data: reasoning traces (on), none (off), or None
    when there is no sft manifest."""
    sft = find_stage(manifest, "sft")
    if not sft:
        return None
    counts = sft.get("counts") or {}
    if counts.get("reasoning_rows") is not None:
        rows, examples = counts["reasoning_rows"], counts.get("examples")
        if rows:
            of = f"{examples:,}" if isinstance(examples, int) else "?"
            return "on", f"its sft manifest: trained on {rows:,} of {of} examples with a think block"
        return "off", "its sft manifest: trained on examples without a think block"
    if find_stage(manifest, "curate"):  # curate keeps only rows with a closed think block
        return "on", "its sft manifest: trained on curate output (reasoning traces)"
    return None
