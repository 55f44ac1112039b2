"""The demo's results: OUT/results.json, OUT/report.png, OUT/report.md, OUT/manifest.json and the table printed
at the end of `distill demo`.

results.json:
    {"accuracy": {"traces": 0.93, "answers_only": 0.06, "on_policy": 0.01, "untrained": 0.0},
     "stderr": {...}, "curation": {"input_rows": 3000, "kept": 2618, "dropped": {"truncated": 117, ...}},
     "wall_time_s": {"generate": 4.1, "curate": 9.8, "sft_traces": 170.2, ..., "total": 402.3}, ...}
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from distill.core.config import to_dict
from distill.core.manifest import atomic_write_text, read_manifest, write_manifest
from distill.core.readers import iter_jsonl
from distill.core.stage_dirs import CURATION_REPORT, RESULTS, SAMPLES
from distill.demo.config import run_stamp

LABELS = {"traces": "trained on traces", "answers_only": "trained on answers only",
          "on_policy": "answers only, then on-policy from traces", "untrained": "untrained"}
COLORS = {"traces": "#2a9d8f", "answers_only": "#e9c46a", "on_policy": "#f4a261", "untrained": "#adb5bd"}


def write_report(out: Path, cfg, data: Path, evals: dict[str, Path], timings: dict[str, float], started: str) -> Path:
    results = collect(out, cfg, data, evals, timings)
    atomic_write_text(out / RESULTS, json.dumps(results, indent=2) + "\n")  # the demo's done mark
    plot(results, out / "report.png")
    (out / "report.md").write_text(markdown(results))
    write_manifest(out, "demo", {**_config(cfg), "run_stamp": results["run_stamp"]},
                   inputs=[evals[name] for name in evals], counts={"accuracy": results["accuracy"]},
                   started_at=started, extra={"wall_time_s": results["wall_time_s"]})
    print_table(results, out)
    return out


def _config(cfg) -> dict[str, Any]:
    return to_dict(cfg)


def collect(out: Path, cfg, data: Path, evals: dict[str, Path], timings: dict[str, float]) -> dict[str, Any]:
    scores = {name: json.loads((path / RESULTS).read_text())["tasks"]["arithmetic"]
              for name, path in evals.items()}
    report = json.loads((data / CURATION_REPORT).read_text())
    sft = {name: (read_manifest(out / f"sft_{name}") or {}).get("counts", {}) for name in ("traces", "answers_only")}
    training = {name: {k: c.get(k) for k in ("examples", "tokens", "steps", "epochs", "first_loss", "last_loss")}
                for name, c in sft.items()}
    if "on_policy" in evals:
        training["on_policy"] = opd_figures(out / "opd_on_policy")
    return {
        "accuracy": {name: round(s["pass@1"], 4) for name, s in scores.items()},
        "stderr": {name: round(s.get("pass@1_stderr") or 0.0, 4) for name, s in scores.items()},
        "truncated": {name: round(s.get("truncated", 0.0), 4) for name, s in scores.items()},
        "mean_response_tokens": {name: s.get("mean_tokens") for name, s in scores.items()},
        "test_problems": cfg.size.test_problems,
        "samples_per_problem": cfg.size.eval_samples,
        "curation": report["counts"],
        "training": training,
        "wall_time_s": {**timings, "total": round(sum(timings.values()), 1)},
        "task": f"sums of {cfg.terms} numbers of {cfg.digits} digit(s)",
        "quick": cfg.quick,
        "run_stamp": run_stamp(cfg),
        "size": to_dict(cfg.size),
        "dirs": {name: str(path) for name, path in evals.items()},
        "example": example(out, evals),
    }


def opd_figures(directory: Path) -> dict[str, Any]:
    """What the on-policy training did: its steps, the per-token divergence of student and teacher at its first and
    last log, and what the student's last samples looked like. No examples or tokens of data: it reads only prompts."""
    manifest = read_manifest(directory) or {}
    counts, beta = manifest.get("counts", {}), manifest.get("config", {}).get("loss", {}).get("beta")
    keys = ("prompts", "steps", "first_loss", "last_loss", "mean_sample_tokens", "eos_share", "tokens_seen")
    return {"loss": DIVERGENCES.get(beta, f"JSD(beta={beta})/token"), **{k: counts.get(k) for k in keys}}


DIVERGENCES = {0.0: "forward KL/token", 1.0: "reverse KL/token"}  # TRL's generalized JSD at its two ends


def example(out: Path, evals: dict[str, Path]) -> dict[str, Any]:
    """What each student wrote for the first held-out problem (its first sample): reading beats a number."""
    first = next(iter_jsonl(out / "prompts" / "arithmetic_test.jsonl"))
    responses = {}
    for name, path in evals.items():
        row = next((r for r in iter_jsonl(path / SAMPLES / "arithmetic.jsonl") if r["id"] == first["id"]), None)
        if row is not None:
            responses[name] = {"response": row["response"], "correct": row["correct"], "answer": row["answer"]}
    return {"id": first["id"], "problem": first["problem"], "reference": first["answer"], "responses": responses}


def plot(results: dict[str, Any], path: Path) -> None:
    """Three panels: held-out accuracy per student, what curate dropped and why, and where the time went."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (acc_ax, cur_ax, time_ax) = plt.subplots(1, 3, figsize=(16, 4.6), gridspec_kw={"width_ratios": [1.3, 1.1, 1.3]})
    names = list(results["accuracy"])
    values = [100 * results["accuracy"][n] for n in names]
    errors = [100 * results["stderr"][n] for n in names]
    bars = acc_ax.bar([textwrap.fill(LABELS[n], 13) for n in names], values, yerr=errors, capsize=4,
                      color=[COLORS[n] for n in names])
    acc_ax.bar_label(bars, labels=[f"{v:.0f}%" for v in values], padding=3)
    acc_ax.set_ylim(0, 110)
    acc_ax.set_ylabel("held-out accuracy (pass@1, %)")
    acc_ax.set_title(f"{results['test_problems']} held-out sums")
    acc_ax.tick_params(axis="x", labelsize=8)
    _curation_panel(cur_ax, results["curation"])
    _time_panel(time_ax, results["wall_time_s"])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _curation_panel(ax, counts: dict[str, Any]) -> None:
    dropped = {k: v for k, v in counts["dropped"].items() if v}
    labels = ["kept", *dropped]
    values = [counts["kept"], *dropped.values()]
    bars = ax.barh(labels[::-1], values[::-1], color=["#e76f51"] * len(dropped) + ["#2a9d8f"])
    ax.bar_label(bars, labels=[f"{v:,}" for v in values[::-1]], padding=3)
    ax.set_xscale("log")
    ax.set_xlim(0.8, counts["input_rows"] * 4)
    ax.set_title(f"curate: {counts['input_rows']:,} teacher traces")


def _time_panel(ax, timings: dict[str, float]) -> None:
    stages = {k: v for k, v in timings.items() if k != "total"}
    bars = ax.barh(list(stages)[::-1], list(stages.values())[::-1], color="#457b9d")
    ax.bar_label(bars, labels=[f"{v:.0f}s" for v in list(stages.values())[::-1]], padding=3)
    ax.set_xlim(0, max(stages.values()) * 1.25)
    ax.set_title(f"wall time per stage (total {timings['total'] / 60:.1f} min)")


# ---------------------------------------------------------------- the same figures, as text for report.md and the console


def table_rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(student, held-out accuracy ± stderr, truncated share) per student."""
    return [(LABELS[n], f"{100 * a:.1f}% ± {100 * results['stderr'][n]:.1f}", f"{100 * results['truncated'][n]:.0f}%")
            for n, a in results["accuracy"].items()]


def dropped_text(results: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in results["curation"]["dropped"].items() if v) or "none"


def times_text(results: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.0f}s" for k, v in results["wall_time_s"].items())


def opd_text(results: dict[str, Any]) -> str:
    """One line on the on-policy training, or '' for a results.json from before the fourth student."""
    t = results["training"].get("on_policy")
    if not t:
        return ""
    kl = (f"; {t['loss']} {t['first_loss']:.2f} at the first log, {t['last_loss']:.2f} at the last"
          if t.get("first_loss") is not None else "")
    return (f"On-policy: the answers-only student sampled {t['steps']} batches of train prompts and the trace-trained "
            f"student scored every token{kl}.")


def markdown(results: dict[str, Any]) -> str:
    rows = "\n".join(f"| {student} | {accuracy} | {truncated} |" for student, accuracy, truncated in table_rows(results))
    dropped, times = dropped_text(results), times_text(results)
    opd = f"{opd_text(results)}\n\n" if opd_text(results) else ""
    return (
        f"# distill demo\n\nTask: {results['task']}; {results['test_problems']} held-out problems, "
        f"{results['samples_per_problem']} sample(s) each at T=0.6 (R1 protocol).\n\n"
        "| student | held-out accuracy | truncated |\n| --- | --- | --- |\n" + rows + "\n\n"
        f"Curation: {results['curation']['kept']:,} of {results['curation']['input_rows']:,} traces kept; "
        f"dropped: {dropped}.\n\n{opd}Wall time: {times}.\n\n![report](report.png)\n" + markdown_example(results["example"])
    )


def readable(response: str, width: int, one_line: bool = True) -> str:
    """A response cut to `width` (on one line for the terminal). An untrained student writes noise: its byte-level tokens decode to
    lone UTF-8 bytes (U+FFFD) and control characters, which would garble a terminal; such text is shown as a few
    escaped characters, marked as noise."""
    text = " ".join(response.split()) if one_line else response.strip()
    unreadable = sum(1 for c in text if c == "\ufffd" or not (c.isprintable() or c in "\n\t"))
    if text and unreadable > 0.1 * len(text):
        return f"(noise) {text[:12].encode('unicode_escape').decode('ascii')}..."
    return f"{text[:width]}{'...' if len(text) > width else ''}"


def markdown_example(ex: dict[str, Any]) -> str:
    parts = [f"\n## One held-out problem\n\n{ex['problem']} (answer {ex['reference']}); the start of the chat "
             "template's answer, `<think>\\n`, is given to every student.\n"]
    for name, r in ex["responses"].items():
        verdict = "correct" if r["correct"] else f"wrong ({'answered ' + r['answer'] if r['answer'] else 'no answer'})"
        parts.append(f"\n**{LABELS[name]}**, {verdict}:\n\n```\n{readable(r['response'], 600, one_line=False)}\n```\n")
    return "".join(parts)


def print_table(results: dict[str, Any], out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"distill demo: {results['task']}, {results['test_problems']} held-out problems",
                  title_justify="left")
    for col in ("student", "held-out accuracy", "truncated"):
        table.add_column(col, justify="left" if col == "student" else "right")
    for row in table_rows(results):
        table.add_row(*row)
    console = Console()
    console.print(table)
    counts = results["curation"]
    console.print(f"curate kept {counts['kept']:,} of {counts['input_rows']:,} traces (dropped: {dropped_text(results)})")
    if opd_text(results):
        console.print(opd_text(results), highlight=False)
    ex = results["example"]
    console.print(f"held-out problem: {ex['problem']} (answer {ex['reference']})", highlight=False)
    for name, r in ex["responses"].items():
        console.print(f"  {LABELS[name]}: {readable(r['response'], 110)} [{'correct' if r['correct'] else 'wrong'}]",
                      markup=False, highlight=False)
    console.print(f"wall time: {times_text(results)}")
    console.print(f"report: {out / 'report.png'}, {out / 'results.json'}")
