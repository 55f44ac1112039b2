"""What an eval run leaves: results.json (written after every task, so a crash keeps the finished ones),
samples/<task>.jsonl, the protocol block, the published and baseline numbers beside the student's, the manifest,
and the console summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from distill.core.config import to_dict
from distill.core.errors import DistillError
from distill.core.log import print_summary
from distill.core.manifest import (
    atomic_path,
    atomic_write_json,
    package_versions,
    read_manifest,
    write_manifest,
)
from distill.core.paths import eval_dir
from distill.core.protocol import R1_PROMPT_SUFFIX
from distill.core.readers import iter_jsonl
from distill.core.stage_dirs import RESULTS, SAMPLES
from distill.eval.baseline import find_baseline
from distill.eval.config import EvalConfig
from distill.eval.prompting import Prompting
from distill.eval.report import lineage_summary, load_published, match_published
from distill.eval.variance import wide_stderr_warning

# ---------------------------------------------------------------- resuming


def read_results(out: Path) -> dict[str, Any]:
    path = out / RESULTS
    if not path.is_file():
        return {"tasks": {}}
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise DistillError(f"{path} is not valid JSON; delete it (and samples/) or choose another --out") from None
    results.setdefault("tasks", {})
    return results


# ---------------------------------------------------------------- outputs


GRADERS = {
    "on": "distill.answers: last \\boxed{} after </think>; no </think> (truncated) = wrong",
    "off": "distill.answers: last \\boxed{} of the whole response (no think block); truncated = used all max_tokens",
}


def finish_results(out: Path, cfg: EvalConfig, results: dict[str, Any], prompting: Prompting) -> None:
    """Top-level fields of results.json: the model, the protocol as sent, lineage, and the rows to compare with
    (the base model's eval, the published student and teacher)."""
    source = model_manifest_dir(cfg.model)
    manifest = read_manifest(source) if source else None
    lineage = lineage_summary(manifest, cfg.model)
    first = first_prompt(out, results)
    results.update({
        "model": cfg.model,
        "protocol": {
            "chat_template": cfg.chat_template or "the model's own", "reasoning": prompting.reasoning, "reasoning_requested": cfg.reasoning,
            "reasoning_why": prompting.why,
            "system_prompt": prompting.system_prompt,
            "system_prompt_source": "the chat template's default (no system message is given)"
            if prompting.system_prompt else None,
            "template_system_prompt": prompting.template_system, "default_system": prompting.default_system,
            "user_prompt": "{problem}\n" + R1_PROMPT_SUFFIX,
            "think_prefill": "<think>\\n" if prompting.think_prefill else None, "stop": "EOS only",
            "rendered_prompt": first["prompt"] if first else None,
            "rendered_prompt_of": f"{first['task']} problem {first['id']}" if first else None,
            "temperature": cfg.temperature, "top_p": cfg.top_p, "max_tokens": cfg.max_tokens,
            "samples_per_problem": {name: t["k"] for name, t in results["tasks"].items()},
            "limit": cfg.limit, "seed": cfg.seed,
            "grader": GRADERS[prompting.reasoning],
            "pass@1_stderr": "sample standard deviation of per-problem pass@1 over sqrt(problems)",
            "cons@k": "majority vote over extracted answers; equivalent answers vote together",
            "pass@k": "unbiased estimator of Chen et al. 2021 at k = samples per problem",
        },
        "lineage": lineage,
        "baseline": find_baseline(cfg.baseline, out, lineage),
        "published": match_published(load_published(eval_dir() / "published.yaml"), cfg.model, lineage, cfg.published),
        "versions": package_versions(),
    })
    write_json(out / RESULTS, results)


def first_prompt(out: Path, results: dict[str, Any]) -> dict[str, Any] | None:
    """The exact prompt sent for the first problem of the first task, as its samples file recorded it."""
    for name in results["tasks"]:
        path = out / SAMPLES / f"{name}.jsonl"
        if not path.is_file():
            continue
        rows = iter_jsonl(path)
        first = next(rows, None)
        rows.close()
        if first and "prompt" in first:
            return {"task": name, "id": first["id"], "prompt": first["prompt"]}
    return None


def model_manifest_dir(model: str) -> Path | None:
    """Where the model's manifest is: its own directory, or the parent when the model is the final/ folder
    of an sft run."""
    path = Path(model).expanduser()
    if not path.is_dir():
        return None
    if read_manifest(path) is not None:
        return path
    parent = read_manifest(path.parent)
    return path.parent if parent and parent.get("stage") == "sft" else None


def write_eval_manifest(out: Path, cfg: EvalConfig, results: dict[str, Any], started: str,
                        status: str = "complete") -> None:
    source = model_manifest_dir(cfg.model)
    counts = {name: {"problems": t["n"], "samples": t["samples"], "pass@1": round(t["pass@1"], 4)}
              for name, t in results["tasks"].items()}
    protocol = results.get("protocol") or {}
    prompt_format = {k: protocol.get(k) for k in ("reasoning", "reasoning_why", "system_prompt", "template_system_prompt",
                                                  "default_system", "rendered_prompt")}
    write_manifest(out, "eval", config=to_dict(cfg), inputs=[source] if source else [], counts=counts,
                   started_at=started, status=status,
                   extra={"backend": results.get("backend"), "prompt_format": prompt_format})


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, data)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def print_eval_summary(out: Path, results: dict[str, Any], shorts: list[str]) -> None:
    protocol = results.get("protocol") or {}
    rows: dict[str, Any] = {"output": str(out), "reasoning": f"{protocol.get('reasoning')} ({protocol.get('reasoning_why')})"}
    if protocol.get("template_system_prompt"):
        what = "kept" if protocol.get("system_prompt") else "cut out"
        rows["template's system prompt"] = f"{what}: {protocol['template_system_prompt'][:60]!r}"
    for name in shorts:
        t = results["tasks"][name]
        err = f" ± {100 * t['pass@1_stderr']:.1f}" if t.get("pass@1_stderr") is not None else ""
        rows[f"{name} pass@1 (k={t['k']}, n={t['n']})"] = f"{100 * t['pass@1']:.1f}{err}"
        cons = f"{100 * t['cons@k']:.1f}" if t.get("cons@k") is not None else "-"
        rows[f"{name} cons@k / truncated"] = f"{cons} / {100 * t['truncated']:.1f}%"
        if wide_stderr_warning(name, t):
            rows[f"{name} sampling noise"] = (f"± {100 * t['pass@1_sampling_stderr']:.1f} (wide): ~{t['samples_for_1pt']} "
                                              "samples per problem for ± 1")
    student = (results.get("published") or {}).get("student")
    if student:
        rows["published beside it"] = student["name"]
    if results.get("baseline"):
        rows["base model beside it"] = f"{results['baseline']['model']} ({results['baseline']['path']})"
    rows["report"] = str(out / "report.md")
    print_summary("distill eval", rows)
