"""What a finished curate run reports: curation_report.json (counts per filter, examples of each drop, the
decontamination hits, code outcomes, what was kept per source), the dataset card and the console summary. Built
from the work units' stats and the selection, after the output shards are written."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.core.log import get_logger, print_summary
from distill.core.manifest import atomic_write_text, now
from distill.core.stage_dirs import CURATION_REPORT, DATA
from distill.curate.card import dataset_stats, plot_token_lengths, render_card
from distill.curate.code_rows import merge_report
from distill.curate.config import CurateConfig
from distill.curate.decontaminate import BENCHMARKS
from distill.curate.formats import Source, input_record
from distill.curate.selection import histogram

# ---------------------------------------------------------------- phase B: set filters


@dataclass
class Selection:
    table: dict[str, Any]  # small columns of every staged row, in unit order
    keep: list[Any] = field(default_factory=list)  # per unit: numpy bool mask over its staged rows
    dropped: Counter = field(default_factory=Counter)  # set-filter reason -> rows
    ledger: list[dict[str, str]] = field(default_factory=list)  # rows the set filters dropped
    examples: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    rates: dict[str, tuple[int, int]] = field(default_factory=dict)  # prompt id -> (correct, samples)
    majority: dict[str, dict[str, Any]] = field(default_factory=dict)  # reference=majority: prompt id -> vote


def build_report(cfg, source, plan, unit_stats, selection, lengths, started) -> dict[str, Any]:
    dropped = Counter()
    for s in unit_stats:
        dropped.update(s["dropped"])
    dropped.update(selection.dropped)
    rows = sum(s["rows"] for s in unit_stats)
    kept = len(lengths)
    reasons = cfg.filters + (["not_selected"] if cfg.select.active else [])
    counts = {"input_rows": rows, "kept": kept, "dropped": {f: dropped.get(f, 0) for f in reasons}}
    assert kept + sum(dropped.values()) == rows, f"accounting: {kept} kept + {dict(dropped)} != {rows} rows"
    assert not set(dropped) - set(reasons), f"a drop reason outside the chain: {dict(dropped)}"
    examples = merge_examples(unit_stats, selection)
    total = f"{rows:,} traces (exploded from {plan['rows']:,} input rows)" if plan["rows"] != rows else \
        f"{rows:,} input rows"
    return {
        "counts": counts,
        "accounting": f"{kept:,} kept + {sum(dropped.values()):,} dropped = {total}",
        "input": {**input_record(source.layout), "source_rows": plan["rows"], "trace_rows": rows},
        "source_labels": dict(sum((Counter(s.get("source_labels", {})) for s in unit_stats), Counter())),
        "chain": cfg.filters,
        "examples": examples,
        "decontamination": merge_decontamination(unit_stats, cfg),
        "grader": dict(sum((Counter(s["grader"]) for s in unit_stats), Counter())),
        "code": merge_code_report(unit_stats, selection, cfg.filters),
        "tokens": dataset_stats(lengths, counted_with(cfg, unit_stats)),
        "kept_by": merge_kept(selection),
        "selection": selection_report(cfg, unit_stats, selection),
        "units": {"total": len(unit_stats), "resumed": sum(s.get("resumed", False) for s in unit_stats)},
        "started_at": started,
        "finished_at": now(),
    }


def selection_report(cfg: CurateConfig, unit_stats, selection: Selection) -> dict[str, Any]:
    """What decided the selection: the pass-rate histogram (all prompts graded, and those kept), the select
    step, the unverified rows kept (answer_filter off) and the majority-vote references."""
    import numpy as np

    alive = np.concatenate(selection.keep) if selection.keep else np.zeros(0, dtype=bool)
    kept_prompts = set(selection.table["prompt_id"][alive]) if len(alive) else set()
    rates = selection.rates
    out: dict[str, Any] = {
        "pass_rate": {"measured_on": cfg.pass_rate.source or "the traces curated", "prompts_graded": len(rates),
                      "histogram": histogram(rates),
                      "histogram_kept": histogram({k: v for k, v in rates.items() if k in kept_prompts}),
                      "min": cfg.pass_rate.min, "max": cfg.pass_rate.max},
        "select": {"active": cfg.select.active, "by": cfg.select.by, "budget": cfg.select.budget,
                   "seed": cfg.select.seed, "not_selected": selection.dropped.get("not_selected", 0)},
        "answer_filter": "on" if cfg.answer_filter else "off",
    }
    if not cfg.answer_filter:
        verified = sum((Counter(s.get("verified", {})) for s in unit_stats), Counter())
        unverified = int((~selection.table["verified"][alive].astype(bool)).sum()) if len(alive) else 0
        out["verified"] = {"kept_verified": int(alive.sum()) - unverified, "kept_unverified": unverified,
                           "staged": dict(verified)}
    if cfg.reference == "majority":
        votes = selection.majority.values()
        with_ref = {k for k, v in selection.majority.items() if v["answer"] is not None}
        graded = sum(s.get("majority_graded", 0) for s in unit_stats)
        out["majority"] = {
            "prompts_voted": len(selection.majority), "references": len(with_ref),
            "ties": sum(v["answer"] is None and v["votes"] > 0 for v in votes),
            "no_answers": sum(v["votes"] == 0 for v in votes),
            "mean_agreement": round(sum(v["agreement"] for v in votes if v["answer"] is not None)
                                    / max(1, len(with_ref)), 4),
            "rows_graded_by_majority": graded,
            "rows_kept_graded_by_majority": int(sum(1 for pid in selection.table["prompt_id"][alive]
                                                    if pid in with_ref)) if len(alive) else 0,
            "file": "majority_references.jsonl"}
    return out


def counted_with(cfg: CurateConfig, unit_stats) -> str:
    if cfg.tokenizer:
        return f"tokenizer {cfg.tokenizer} (user + assistant turns with its chat-template overhead)"
    estimated = sum(s["token_estimates"] for s in unit_stats)
    note = f" (traces without them, {estimated:,} checked: characters / 4)" if estimated else ""
    return f"estimate: the teacher's prompt_tokens + completion_tokens{note}"


def merge_examples(unit_stats, selection: Selection) -> dict[str, list[dict[str, str]]]:
    examples: dict[str, list[dict[str, str]]] = {}
    for s in unit_stats:
        for reason, items in s["examples"].items():
            examples.setdefault(reason, []).extend(items)
    for reason, items in selection.examples.items():
        examples.setdefault(reason, []).extend(items)
    return {k: v[:3] for k, v in examples.items()}


def merge_decontamination(unit_stats, cfg: CurateConfig) -> dict[str, dict[str, Any]]:
    if "contaminated" not in cfg.filters:
        return {}
    table: dict[str, dict[str, Any]] = {}
    for s in unit_stats:
        for name, size in s.get("eval_sets", {}).items():
            table.setdefault(name, {"rows": 0, "prompts": set(), "problems": set(), "size": size})
        for name, hit in s["contamination"].items():
            entry = table.setdefault(name, {"rows": 0, "prompts": set(), "problems": set(), "size": hit["size"]})
            entry["rows"] += hit["rows"]
            entry["prompts"].update(hit["prompts"])
            entry["problems"].update(hit["problems"])
    return {
        name: {"title": BENCHMARKS[name].title if name in BENCHMARKS else name, "eval_problems": e["size"],
               "eval_problems_found": len(e["problems"]), "prompts_dropped": len(e["prompts"]), "rows_dropped": e["rows"]}
        for name, e in table.items()
    }


def merge_kept(selection: Selection) -> dict[str, dict[str, int]]:
    """Kept rows by teacher, source, kind (reasoning or not) and task (math or code), after the set filters."""
    import numpy as np

    table, alive = selection.table, np.concatenate(selection.keep) if selection.keep else []
    return {
        column: dict(Counter(str(v) if v is not None else "unknown" for v in table[column][alive]).most_common(20))
        for column in ("teacher", "source", "kind", "task")
    }


def merge_code_report(unit_stats, selection: Selection, filters: list[str]) -> dict[str, Any]:
    kept = merge_kept(selection)["task"].get("code", 0)
    return merge_report(unit_stats, kept, filters)


def write_card(out: Path, cfg: CurateConfig, source: Source, report: dict[str, Any], lengths) -> None:
    plot_token_lengths(lengths, out / "token_lengths.png")
    atomic_write_text(out / CURATION_REPORT, json.dumps(report, indent=2, ensure_ascii=False) + "\n")  # the done mark
    (out / "README.md").write_text(render_card(out, cfg, source.generate_dir, report))


def print_curate_summary(out: Path, report: dict[str, Any], already_done: bool = False) -> None:
    counts = report["counts"]
    rows = {"output": str(out / DATA), "input rows": counts["input_rows"], "kept": counts["kept"]}
    if already_done:
        rows["status"] = "already complete (use --force to redo)"
    for reason, n in counts["dropped"].items():
        rows[f"  dropped: {reason}"] = n
    rows["accounting"] = report["accounting"]
    for d in report.get("decontamination", {}).values():
        rows[f"  contaminated by {d['title']}"] = f"{d['rows_dropped']:,} rows, {d['eval_problems_found']} problems"
    code = report.get("code") or {}
    if code:
        outcomes = ", ".join(f"{k} {v:,}" for k, v in code["outcomes"].items())
        rows["code rows (kept)"] = f"{code['rows']:,} ({code['kept']:,}): {outcomes}"
    rows["tokens (median / p95)"] = f"{report['tokens'].get('median', 0):,} / {report['tokens'].get('p95', 0):,}"
    print_summary("distill curate", rows)
    if counts["input_rows"] and not counts["kept"]:
        top = max(counts["dropped"].items(), key=lambda kv: kv[1])
        get_logger().warning(f"no trace survived curation (most dropped as {top[0]}: {top[1]:,}); examples of each "
                             f"reason are in {out / 'curation_report.json'} and {out / 'rejected.parquet'}")
