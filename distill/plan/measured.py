"""What finished runs measured, for `distill plan --from DIR`: trace and example lengths, the keep rate of
curate, eval response lengths, and the throughput each stage reached.

    m = read_measured("runs/demo")
    m.values["completion_tokens_mean"], m.sources["completion_tokens_mean"]   # 70.9, 'measured: runs/demo/generate'

Reads the manifests (and the parquet shards for exact token counts) of the stage directories under DIR; the
chain followed is generate -> the curate that read it -> the sft that read that -> the eval of that model.
Writes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.core.errors import DistillError
from distill.core.manifest import read_manifest
from distill.core.stage_dirs import DATA, RESULTS, TRACES, TRAIN
from distill.core.teachers import TEACHERS

STAGES = ("generate", "curate", "sft", "eval")


@dataclass
class Measured:
    values: dict[str, Any] = field(default_factory=dict)  # assumption name -> value
    sources: dict[str, str] = field(default_factory=dict)  # assumption name -> "measured: DIR"
    totals: dict[str, Any] = field(default_factory=dict)  # exact counts of the runs, for the report
    lengths: list[int] | None = None  # SFT example lengths in tokens (curate's num_tokens)
    dirs: dict[str, str] = field(default_factory=dict)


def read_measured(root: str | Path) -> Measured:
    root = Path(root).expanduser()

    if not root.is_dir():
        raise DistillError(f"--from '{root}' is not a directory; pass a run directory holding stage dirs with "
                           "manifest.json (e.g. runs/demo)")
    found = stage_dirs(root)
    if not found:
        raise DistillError(f"--from '{root}': no finished stage directory (manifest.json with status complete) "
                           "in it or one level below; run generate/curate/sft/eval first")
    chain = follow_chain(found)
    m = Measured(dirs={stage: str(path) for stage, path in chain.items()})
    readers = {"generate": _generate, "curate": _curate, "sft": _sft, "eval": _eval}
    for stage, path in chain.items():
        readers[stage](path, read_manifest(path) or {}, m)
    return m


def stage_dirs(root: Path) -> dict[str, list[Path]]:
    """Complete stage dirs by stage: ROOT itself and its children, in name order."""
    found: dict[str, list[Path]] = {}
    for path in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        manifest = read_manifest(path)
        if manifest and manifest.get("status") == "complete" and manifest.get("stage") in STAGES:
            found.setdefault(manifest["stage"], []).append(path)
    return found


def follow_chain(found: dict[str, list[Path]]) -> dict[str, Path]:
    """One dir per stage, each the consumer of the one before it (a demo holds two curate, sft and eval dirs:
    the chain picks the one trained on traces, not its answers-only control)."""
    chain: dict[str, Path] = {}
    previous: Path | None = None
    for stage in STAGES:
        candidates = found.get(stage, [])
        if previous is not None:
            candidates = [p for p in candidates if _reads(p, previous)] or candidates
        exact = [p for p in candidates if p.name == stage]
        if candidates:
            chain[stage] = previous = (exact or candidates)[0]
    return chain


def _reads(path: Path, upstream: Path) -> bool:
    inputs = (read_manifest(path) or {}).get("inputs", [])
    return any(Path(i.get("path", "")).resolve() == upstream.resolve() for i in inputs)


def _set(m: Measured, name: str, value: Any, path: Path) -> None:
    m.values[name] = value
    m.sources[name] = f"measured: {path}"


def _generate(path: Path, manifest: dict[str, Any], m: Measured) -> None:
    from distill.core.shards import read_shards  # pyarrow: only for `distill plan --from` a generate run

    counts = manifest.get("counts", {})
    table = read_shards(path / TRACES, TRACES, columns=["prompt_tokens", "completion_tokens"])
    rows = table.num_rows
    if not rows:
        return
    prompt = sum(table.column("prompt_tokens").to_pylist())
    completion = sum(table.column("completion_tokens").to_pylist())
    m.totals["generate"] = {"dir": str(path), "prompts": counts.get("prompts"), "rows": rows,
                            "samples_per_prompt": counts.get("samples_per_prompt"),
                            "prompt_tokens": prompt, "completion_tokens": completion,
                            "teacher": manifest.get("config", {}).get("teacher")}
    _set(m, "prompt_tokens_mean", prompt / rows, path)
    _set(m, "completion_tokens_mean", completion / rows, path)
    rate = (counts.get("this_run") or {}).get("tokens_per_s")
    if rate:
        m.totals["generate"]["tokens_per_s"] = rate
        if m.totals["generate"]["teacher"] == "arithmetic":  # a CPU program: its rate is the rate anywhere
            _set(m, "arithmetic_tokens_per_s", rate, path)
        elif gpus := vllm_gpus(manifest.get("config", {})):  # in-process vLLM: the GPUs it ran on are known
            m.totals["generate"].update(gpus=gpus, gpu_type=manifest["config"].get("gpu_type"),
                                        tokens_per_s_per_gpu=rate / gpus)


def vllm_gpus(config: dict[str, Any]) -> int | None:
    """GPUs of an in-process vLLM generate run (an OpenAI-compatible server's GPUs are not recorded: None)."""
    if config.get("backend") != "vllm":
        return None
    hint = TEACHERS[config["teacher"]].serving.get(str(config.get("gpu_type", "")).lower(), {}) \
        if config.get("teacher") in TEACHERS else {}
    tp = config.get("tensor_parallel") or hint.get("tensor_parallel", 1)
    pp = config.get("pipeline_parallel") or hint.get("pipeline_parallel", 1)
    return tp * pp * (config.get("data_parallel") or 1)


def _curate(path: Path, manifest: dict[str, Any], m: Measured) -> None:
    from distill.core.shards import read_shards  # pyarrow: only for `distill plan --from` a curate run

    counts = manifest.get("counts", {})
    if counts.get("input_rows"):
        _set(m, "keep_rate", counts["kept"] / counts["input_rows"], path)
    table = read_shards(path / DATA, TRAIN, columns=["num_tokens"])
    if table.num_rows:
        m.lengths = [int(n) for n in table.column("num_tokens").to_pylist()]
        _set(m, "sft_tokens_mean", sum(m.lengths) / len(m.lengths), path)
    m.totals["curate"] = {"dir": str(path), "input_rows": counts.get("input_rows"), "kept": counts.get("kept"),
                          "tokens": sum(m.lengths or [])}


def _sft(path: Path, manifest: dict[str, Any], m: Measured) -> None:
    counts = manifest.get("counts", {})
    m.totals["sft"] = {k: counts.get(k) for k in ("examples", "tokens", "steps", "epochs", "tokens_per_s", "mfu",
                                                    "runtime_s")}
    m.totals["sft"]["dir"] = str(path)
    if counts.get("mfu"):  # measured on a GPU; a CPU run has none and says nothing about a GPU's speed
        _set(m, "sft_mfu", counts["mfu"], path)


def _eval(path: Path, manifest: dict[str, Any], m: Measured) -> None:
    results = path / RESULTS
    tasks = json.loads(results.read_text()).get("tasks", {}) if results.is_file() else {}
    m.totals["eval"] = {"dir": str(path), "tasks": {
        name: {"samples": t.get("samples"), "mean_tokens": t.get("mean_tokens"), "k": t.get("k"), "n": t.get("n")}
        for name, t in tasks.items()}}
    for name, t in tasks.items():
        if t.get("mean_tokens") is not None:
            _set(m, f"eval_tokens.{name}", t["mean_tokens"], path)
