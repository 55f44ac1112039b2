"""The lm-eval side of the R1 protocol, shared by every task family under `eval/` (r1_math, and any later one).

    # eval/r1_math/_r1_math_yaml
    class: !function utils.ReasoningTask       # utils.py re-exports these names
    process_docs: !function utils.process_docs
    doc_to_text: !function utils.doc_to_text
    process_results: !function utils.process_results

A doc after `process_docs`: {"id": "aime-2024-I-01", "problem": "Every morning Aya ...", "answer": "204", ...}.

`ReasoningTask` reads run-time knobs from the task metadata, which both `distill eval` and plain lm-eval set
(`lm_eval --include_path eval --metadata '{"samples": 8, "data_dir": "../shared/data"}'`):
  samples (k, lm-eval's `repeats`), max_tokens, temperature, top_p, data_dir (read `<data_dir>/<data_file>`
  instead of the hub dataset), reasoning ("on", the default: answers after `</think>`; "off": the last box of
  the whole response, for models that do not think), think_prefill (default: true when reasoning is on),
  drop_system_block (a system turn the chat template adds on its own, cut out of every prompt).
It also applies the `<think>\\n` prefill after the chat template's generation prompt, which lm-eval has no
setting for: its `gen_prefix` renders an assistant message instead, which some templates rewrite.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

from lm_eval.api.task import ConfigurableTask

from distill.core.protocol import R1_PROMPT_SUFFIX, THINK_PREFILL, prefilled_think, user_prompt
from distill.eval.metrics import prefetch, score_problem

PROBLEM_KEYS = ("problem", "Problem", "question", "Question")
ANSWER_KEYS = ("answer", "Answer", "expected_answer", "final_answer")
ID_KEYS = ("id", "unique_id", "ID", "problem_id", "problem_idx")  # problem_idx: MathArena

log = logging.getLogger("distill")


# ---------------------------------------------------------------- docs and prompts


def process_docs(dataset):
    """Normalise any source's fields to `id, problem, answer` (strings), keeping the other fields.

    Hub copies of the same benchmark disagree on field names (Problem/problem, unique_id/id); AIME answers
    are sometimes zero-padded ("025"), which is stripped so the reference reads as the number it is."""
    import datasets

    rows = [_normalize_doc(row, i) for i, row in enumerate(dataset)]
    return datasets.Dataset.from_list(rows)


def _normalize_doc(row: dict[str, Any], index: int) -> dict[str, Any]:
    problem = _first(row, PROBLEM_KEYS)
    answer = _first(row, ANSWER_KEYS)
    assert problem is not None and answer is not None, (
        f"eval doc {index} has no problem/answer field (fields: {', '.join(row)}); expected one of "
        f"{PROBLEM_KEYS} and {ANSWER_KEYS}"
    )
    answer = str(answer).strip()
    if answer.isdigit():
        answer = str(int(answer))
    doc_id = _first(row, ID_KEYS)
    return {**row, "id": str(doc_id) if doc_id is not None else str(index), "problem": str(problem), "answer": answer}


def _first(row: dict[str, Any], keys: tuple[str, ...]) -> Any:
    return next((row[k] for k in keys if row.get(k) is not None), None)


def doc_to_text(doc: dict[str, Any]) -> str:
    """The user turn, built exactly as the SFT data built it: problem + "\\n" + R1's boxed-answer instruction."""
    return user_prompt(doc["problem"], R1_PROMPT_SUFFIX)


def add_think_prefill(prompt: str) -> str:
    """Open the think block after the generation prompt, unless the chat template already did (the newer
    R1-distill and QwQ templates end their generation prompt with `<think>\\n`)."""
    return prompt if prefilled_think(prompt) else prompt + THINK_PREFILL


# ---------------------------------------------------------------- scoring


def grade_all(resps: list[list[str]], docs: list[dict[str, Any]], reasoning: bool = True) -> list[list[str]]:
    """A pass-through lm-eval filter that grades a whole task's answers at once (in parallel) before
    process_results looks at one problem at a time; the responses go on unchanged, all k of them."""
    resps = list(resps)
    prefetch([(r, d["answer"]) for r, d in zip(resps, docs, strict=True)], reasoning=reasoning)
    return resps


def process_results(doc: dict[str, Any], results: list[Any], reasoning: bool = True) -> dict[str, float]:
    """Per-problem metrics over all k responses (the task's filter passes every repeat through). Without
    reasoning there is no `truncated` here: only the backend's token counts tell a cut-off response (distill
    eval reports it)."""
    responses = results[0] if results and isinstance(results[0], (list, tuple)) else results
    score = score_problem(responses, doc["answer"], reasoning=reasoning)
    metrics = {
        "pass@1": score.pass_at_1,
        "cons@k": float(score.majority_correct),
        "pass@k": score.pass_at(score.samples),
    }
    return {**metrics, "truncated": sum(score.truncated) / score.samples} if reasoning else metrics


# ---------------------------------------------------------------- the task class


def protocol_config(config: dict[str, Any]) -> dict[str, Any]:
    """The task config with the run-time knobs of its metadata applied (a new dict; pure)."""
    cfg = {k: v for k, v in config.items() if k != "class"}
    meta = dict(cfg.get("metadata") or {})
    gen = dict(cfg.get("generation_kwargs") or {})
    if meta.get("samples") is not None:
        cfg["repeats"] = int(meta["samples"])
    if meta.get("max_tokens") is not None:
        gen["max_gen_toks"] = int(meta["max_tokens"])
    for key in ("temperature", "top_p"):
        if meta.get(key) is not None:
            gen[key] = float(meta[key])
    gen["do_sample"] = gen.get("temperature", 0.0) > 0
    cfg["generation_kwargs"] = gen
    if reasoning_mode(meta) == "off":  # our grading hooks read answers from the whole response
        cfg["filter_list"] = [_grade_without_think(f) for f in cfg.get("filter_list") or []]
    # a task whose problems are built in code (custom_dataset) reads data_dir in its own loader
    if meta.get("data_dir") and not cfg.get("custom_dataset"):
        assert meta.get("data_file"), f"task {cfg.get('task')} names no metadata.data_file to read from data_dir"
        path = Path(meta["data_dir"]).expanduser() / meta["data_file"]
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: data_dir must hold {meta['data_file']} (id, problem, answer)")
        cfg.update(dataset_path="json", dataset_name=None, test_split="test",
                   dataset_kwargs={"data_files": {"test": str(path.resolve())}})
    return cfg


def reasoning_mode(meta: dict[str, Any]) -> str:
    mode = str(meta.get("reasoning") or "on")
    assert mode in ("on", "off"), f"metadata reasoning must be on or off, not {mode!r} (distill eval resolves auto)"
    return mode


def _grade_without_think(filter_config: dict[str, Any]) -> dict[str, Any]:
    steps = [{**step, "filter_fn": functools.partial(grade_all, reasoning=False)}
             if step.get("filter_fn") is grade_all else step for step in filter_config.get("filter", [])]
    return {**filter_config, "filter": steps}


class ReasoningTask(ConfigurableTask):
    """A generate_until task under the R1 protocol: metadata knobs applied, `<think>\\n` prefilled (reasoning
    on), the template's own system turn cut out where asked."""

    def __init__(self, data_dir=None, cache_dir=None, download_mode=None, config: dict | None = None) -> None:
        super().__init__(data_dir, cache_dir, download_mode, config=protocol_config(config or {}))
        meta = self.config.metadata or {}
        self.reasoning = reasoning_mode(meta)
        prefill = meta.get("think_prefill")
        self.think_prefill = self.reasoning == "on" if prefill is None else bool(prefill)
        self.drop_system_block = meta.get("drop_system_block") or None
        self._warned = False

    def process_results(self, doc, results):
        if self.config.process_results is process_results:  # ours: graded as this run's reasoning mode says
            return process_results(doc, results, reasoning=self.reasoning == "on")
        return super().process_results(doc, results)

    def fewshot_context(self, doc, num_fewshot, system_instruction=None, apply_chat_template=False,
                        fewshot_as_multiturn=False, chat_template=None, gen_prefix=None):
        prompt = super().fewshot_context(
            doc, num_fewshot, system_instruction=system_instruction, apply_chat_template=apply_chat_template,
            fewshot_as_multiturn=fewshot_as_multiturn, chat_template=chat_template, gen_prefix=gen_prefix,
        )
        if not apply_chat_template:
            self._warn_once("the R1 protocol applies the model's chat template: pass --apply_chat_template")
        elif not isinstance(prompt, str):
            # a chat-completions API receives messages, and an API cannot be made to prefill an assistant turn
            self._warn_once("a chat API renders the prompt itself, so <think> cannot be prefilled; use "
                            "local-completions (distill eval --backend openai does)")
        else:
            prompt = self._drop_system(prompt)
            prompt = add_think_prefill(prompt) if self.think_prefill else prompt
        return prompt

    def _drop_system(self, prompt: str) -> str:
        """Cut the system turn the chat template added on its own (distill.core.chat_template found it)."""
        if not self.drop_system_block:
            return prompt
        if self.drop_system_block not in prompt:
            self._warn_once("the chat template's default system turn to drop is not in the prompt; sent as rendered")
            return prompt
        return prompt.replace(self.drop_system_block, "", 1)

    def _warn_once(self, message: str) -> None:
        if not self._warned:
            log.warning(f"{self.config.task}: {message}")
            self._warned = True
