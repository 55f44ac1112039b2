"""The prompts of `distill opd`: problems only (no answers, no traces), rendered as the student is prompted at
eval time, and repeated once per sample.

    problems = read_problems(recipe.prompts)          # [(prompt id, user turn)], checked before any model loads
    dataset = render_dataset(problems, tokenizer, recipe.prompts, samples=4)   # datasets.Dataset with `prompt`

Reads a curate output dir (the user turn of each SFT example, one per prompt id: curate already wrote the R1
instruction line into it), or a prompts file, directory or hub id (PROMPT schema: `problem`, made into the R1
user turn `problem + "\\n" + suffix` as generate does). Writes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill.core.chat_template import PromptRenderer
from distill.core.errors import DistillError
from distill.core.manifest import read_manifest
from distill.core.protocol import R1_PROMPT_SUFFIX, THINK_OPEN, user_prompt
from distill.core.shards import read_shards
from distill.generate.prompts import load_prompts


def read_problems(spec: Any) -> list[tuple[str, str]]:
    """(prompt id, user turn) pairs, in file order."""
    path = Path(spec.path).expanduser()
    manifest = read_manifest(path) if path.is_dir() else None
    if manifest and manifest.get("stage") == "curate":
        problems = curate_user_turns(path)
    else:
        problems = prompt_file_turns(spec)
    if spec.limit is not None:
        problems = problems[: spec.limit]
    if not problems:
        raise DistillError(f"prompts '{spec.path}' hold no problems; pass a prompts file or a curate output dir")
    return problems


def curate_user_turns(path: Path) -> list[tuple[str, str]]:
    """One user turn per prompt id of a curate dir (k traces of a prompt share it)."""

    table = read_shards(path / "data", columns=["prompt_id", "messages"])
    seen: dict[str, str] = {}
    for pid, messages in zip(table.column("prompt_id").to_pylist(), table.column("messages").to_pylist(),
                             strict=True):
        user = next((m["content"] for m in messages if m["role"] == "user"), None)
        if user and pid not in seen:
            seen[pid] = user
    return list(seen.items())


def prompt_file_turns(spec: Any) -> list[tuple[str, str]]:
    try:
        table = load_prompts(spec.path, id_field=spec.id_field, problem_field=spec.problem_field, split=spec.split,
                             subset=spec.subset)
    except DistillError as err:
        # the loader names generate's flags; here the fields are recipe keys
        raise DistillError(str(err).replace("--problem-field", "--set prompts.problem_field=NAME")
                           .replace("--id-field", "--set prompts.id_field=NAME")) from None
    suffix = spec.prompt_suffix if spec.prompt_suffix is not None else R1_PROMPT_SUFFIX
    return [(pid, user_prompt(problem, suffix)) for pid, problem in
            zip(table.column("id").to_pylist(), table.column("problem").to_pylist(), strict=True)]


def render(tokenizer: Any, spec: Any, user_turns: list[str]) -> tuple[list[str], dict[str, Any]]:
    """The prompt texts (chat template with the generation prompt, no system turn of ours, the template's own
    kept or dropped, then the <think> prefill) and a record of what was rendered, for the manifest."""
    renderer = PromptRenderer(tokenizer, spec.default_system)
    texts = [renderer([{"role": "user", "content": turn}]) for turn in user_turns]
    prefilled = texts[0].rstrip(" ").endswith((THINK_OPEN, THINK_OPEN + "\n"))
    if spec.think_prefill and not prefilled:
        # the R1 protocol opens the think block for the model (chatml_r1 and llama3_r1 templates already do)
        texts = [t + THINK_OPEN + "\n" for t in texts]
    return texts, {**renderer.record(), "think_prefill": spec.think_prefill or prefilled,
                   "first_prompt": texts[0]}


def render_dataset(problems: list[tuple[str, str]], tokenizer: Any, spec: Any, samples: int) -> tuple[Any, dict]:
    """A datasets.Dataset with `prompt` (rendered text) and `prompt_id`, each prompt `samples` times in a row:
    TRL's DistillationTrainer draws one completion per row (no per-prompt repeat of its own)."""
    from datasets import Dataset

    texts, record = render(tokenizer, spec, [turn for _, turn in problems])
    rows = {"prompt": [t for t in texts for _ in range(samples)],
            "prompt_id": [pid for pid, _ in problems for _ in range(samples)]}
    return Dataset.from_dict(rows), record
