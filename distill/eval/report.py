"""The eval report: a student's numbers beside the published ones, as `report.md` and `report.png`.

    write_report(Path("runs/eval/final"), results)   # results = the dict of results.json

Reads `eval/published.yaml` (published pass@1 of DeepSeek-R1 and its distilled students, with sources) and the
lineage of the evaluated model (its manifest: sft -> curate -> generate). The published row shown beside the
student is the one whose base model is the student's base model (the sft stage records it as `student`), so
a student trained from Qwen/Qwen2.5-Math-1.5B is shown beside DeepSeek-R1-Distill-Qwen-1.5B. The base model's
own eval (results["baseline"], distill.eval.baseline) is shown too: before and after distillation, side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill.core.errors import DistillError
from distill.core.manifest import find_stage
from distill.eval.baseline import differences, same_model
from distill.eval.variance import TARGET, WIDE, wide_stderr_warning

# The R1 paper's protocol, under which the R1-Distill numbers were published.
PUBLISHED_PROTOCOL = {"max_tokens": 32768, "temperature": 0.6, "top_p": 0.95}
PUBLISHED_K = {"aime24": 64, "aime25": 64}
PUBLISHED_WINDOW = "2024-08-01:2025-01-31"  # R1's LiveCodeBench problems (arXiv:2501.12948 §3.1)
DEFAULT_TEACHER = "deepseek-ai/DeepSeek-R1"


# ---------------------------------------------------------------- published numbers


def load_published(path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        raise DistillError(f"{path} not found; it ships with distill under eval/; set DISTILL_EVAL_DIR to a copy of that folder")
    data = yaml.safe_load(path.read_text()) or {}
    return {"sources": data.get("sources", {}), "models": data.get("models", [])}


def match_published(published: dict[str, Any], model: str, lineage: dict[str, Any],
                    name: str | None = None) -> dict[str, Any]:
    """The published student row to compare with (by --published NAME, else by the student's base model from
    the lineage, else by the evaluated model itself) and the teacher's row."""
    rows = published["models"]
    student, how = None, None
    if name:
        student = next((r for r in rows if name.lower() in (r["name"].lower(), r["model_id"].lower())), None)
        if student is None:
            raise DistillError(f"--published {name} is not in eval/published.yaml; choose one of "
                               f"{', '.join(r['name'] for r in rows)}")
        how = "--published"
    else:
        base = (lineage.get("sft") or {}).get("student")
        student = next((r for r in rows if same_model(base, r.get("base"))), None)
        how = f"student base model {base} (sft manifest)" if student else None
        if student is None:
            student = next((r for r in rows if same_model(model, r["model_id"])), None)
            how = "the evaluated model itself" if student else None
    teacher_id = (lineage.get("generate") or {}).get("teacher_model") or (student or {}).get("teacher")
    teacher = next((r for r in rows if same_model(teacher_id, r["model_id"])), None)
    teacher = teacher or next(r for r in rows if r["model_id"] == DEFAULT_TEACHER)
    return {"student": student, "teacher": teacher, "matched_by": how, "sources": published["sources"]}


# ---------------------------------------------------------------- lineage


def lineage_summary(manifest: dict[str, Any] | None, model: str) -> dict[str, Any]:
    """What made the model: the sft run (recipe, student base), its dataset (curate) and teacher (generate)."""
    summary: dict[str, Any] = {"model": model, "sft": None, "curate": None, "generate": None}
    if not manifest:
        return summary
    sft = find_stage(manifest, "sft")
    if sft:
        cfg = sft.get("config", {})
        student = cfg.get("student")
        if isinstance(student, dict):
            student = student.get("model") or student.get("name") or student.get("id")
        summary["sft"] = {"path": sft.get("path", model), "recipe": cfg.get("recipe"), "student": student}
    curate = find_stage(manifest, "curate")
    if curate:
        summary["curate"] = {"path": curate.get("path"), "counts": curate.get("counts", {})}
    gen = find_stage(manifest, "generate")
    if gen:
        cfg = gen.get("config", {})
        summary["generate"] = {"path": gen.get("path"), "teacher": cfg.get("teacher"),
                               "teacher_model": (cfg.get("resolved") or {}).get("model") or cfg.get("model")}
    return summary


# ---------------------------------------------------------------- report.md


def write_report(out: Path, results: dict[str, Any]) -> tuple[Path, Path]:
    md = out / "report.md"
    md.write_text(render_markdown(results))
    png = out / "report.png"
    plot_report(results, png)
    return md, png


def _pct(value: float | None, stderr: float | None = None) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f} ± {100 * stderr:.1f}" if stderr is not None else f"{100 * value:.1f}"


def _published_cell(row: dict[str, Any] | None, task: str, sources: dict[str, Any], refs: list[str]) -> str:
    score = ((row or {}).get("scores") or {}).get(task)
    if not row:
        return "-"
    if not score:
        return "not published"
    key = score["source"]
    if key not in refs:
        refs.append(key)
    return f"{score['pass@1']:.1f} [{refs.index(key) + 1}]"


def render_markdown(results: dict[str, Any]) -> str:
    published = results.get("published") or {}
    student, teacher = published.get("student"), published.get("teacher")
    sources = published.get("sources", {})
    refs: list[str] = []
    baseline = results.get("baseline")
    protocol = results.get("protocol") or {}
    lines = [f"# distill eval: `{results.get('model')}`", ""]
    lines += [f"Backend `{results.get('backend', '?')}`, reasoning **{protocol.get('reasoning', 'on')}** "
              f"({protocol.get('reasoning_why', '?')}); pass@1 in % as mean over k samples per problem ± standard "
              "error across problems; cons@k = majority vote; pass@k = unbiased estimate at k = samples.", ""]
    head = ["task", "k", "problems", "pass@1", "cons@k", "pass@k", "truncated", "mean tokens"]
    head += [f"base: {_name(baseline['model'])}"] if baseline else []
    head += [f"{student['name']} (published)" if student else "published student",
             f"{teacher['name']} (published)" if teacher else "teacher"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, t in results["tasks"].items():
        tokens = f"{t['mean_tokens']:,.0f}" if t.get("mean_tokens") is not None else "-"
        lines.append("| " + " | ".join([
            name, str(t["k"]), str(t["n"]), _pct(t["pass@1"], t.get("pass@1_stderr")), _pct(t["cons@k"]),
            _pct(t["pass@k"]), f"{100 * t['truncated']:.1f}%", tokens,
            *([_baseline_cell(baseline, name)] if baseline else []),
            _published_cell(student, name, sources, refs), _published_cell(teacher, name, sources, refs),
        ]) + " |")
    lines.append("")
    lines += baseline_lines(baseline)
    if student is None:
        lines += ["No published student matched this model (no sft lineage naming a base model in "
                  "eval/published.yaml); pass --published NAME to choose one.", ""]
    elif published.get("matched_by"):
        lines += [f"Published student matched by {published['matched_by']}.", ""]
    for i, key in enumerate(refs, 1):
        src = sources.get(key, {})
        lines.append(f"[{i}] {src.get('title', key)}, {src.get('where', '')}: {src.get('url', '')}")
    lines += [""] + budget_section(results) + noise_section(results) + comparability_notes(results)
    lines += protocol_section(results)
    lines += lineage_section(results)
    return "\n".join(lines).rstrip() + "\n"


def budget_section(results: dict[str, Any]) -> list[str]:
    """Accuracy against thinking budget (--budgets), with the unforced run as the last row."""
    lines = []
    for name, t in results["tasks"].items():
        curve = t.get("budget_curve")
        if not curve:
            continue
        if not lines:
            lines += ["## Accuracy against thinking budget", "",
                      "Budget forcing: thinking cut at B tokens and closed for the model, which then answers within "
                      f"{t.get('budget_answer_tokens', '?')} tokens; a sample that closed its thinking before B is "
                      "scored as it is.", ""]
        lines += [f"**{name}**", "", "| budget B | pass@1 | mean think tokens | thinking cut at B |", "|---|---|---|---|"]
        for budget, point in curve.items():
            lines.append(f"| {int(budget):,} | {_pct(point['pass@1'], point.get('stderr'))} | "
                         f"{point['mean_think_tokens']:,.0f} | {100 * point['forced']:.0f}% |")
        tokens = f"{t['mean_tokens']:,.0f} (whole response)" if t.get("mean_tokens") is not None else "-"
        lines += [f"| unforced | {_pct(t['pass@1'], t.get('pass@1_stderr'))} | {tokens} | - |", ""]
    return lines


def _name(model: str | None) -> str:
    return Path(str(model).rstrip("/")).name if model else "?"


def _baseline_cell(baseline: dict[str, Any] | None, task: str) -> str:
    t = ((baseline or {}).get("tasks") or {}).get(task)
    return _pct(t["pass@1"], t.get("pass@1_stderr")) if t else "-"


def baseline_lines(baseline: dict[str, Any] | None) -> list[str]:
    if not baseline:
        return ["No eval of the base model beside it: evaluate the base into runs/eval/<base name> (or pass "
                "--baseline DIR) to see what distillation changed.", ""]
    p = baseline.get("protocol") or {}
    return [f"Base model `{baseline['model']}` (found by {baseline['found_by']}): reasoning {p.get('reasoning', 'on')}"
            f" ({p.get('reasoning_why') or 'not recorded'}), results in `{baseline['path']}`.", ""]


def noise_section(results: dict[str, Any]) -> list[str]:
    """The tasks whose pass@1 another draw of samples would move by more than WIDE (distill.eval.variance)."""
    warnings = [w for name, t in results["tasks"].items() if (w := wide_stderr_warning(name, t))]
    if not warnings:
        return []
    return ["## Wide standard errors", "",
            f"The ± above is the spread across problems, which no k shrinks; these tasks also have more than "
            f"{100 * WIDE:.0f} points of sampling noise (the part k controls; the samples needed for "
            f"{100 * TARGET:.0f} point come from the observed per-problem variance):", "",
            *[f"- {w}" for w in warnings], ""]


def comparability_notes(results: dict[str, Any]) -> list[str]:
    """Where this run's protocol differs from the one the published numbers were made with."""
    protocol = results.get("protocol", {})
    notes = [f"{key.replace('_', ' ')} {protocol.get(key)} (published: {value})"
             for key, value in PUBLISHED_PROTOCOL.items() if protocol.get(key) != value]
    for name, t in results["tasks"].items():
        if name in PUBLISHED_K and t["k"] != PUBLISHED_K[name]:
            notes.append(f"{name}: k = {t['k']} samples per problem (published: {PUBLISHED_K[name]})")
        if t.get("limit"):
            notes.append(f"{name}: only the first {t['n']} problems (--limit)")
        data = (t.get("fingerprint") or {}).get("data") or ""
        if "contest dates" in data and PUBLISHED_WINDOW not in data:  # LiveCodeBench's problems change by date
            notes.append(f"{name}: {data.split(', ')[-1]} (published: contest dates {PUBLISHED_WINDOW})")
    if protocol.get("system_prompt"):
        notes.append(f"system prompt {protocol['system_prompt']!r}, added by the chat template (published: none)")
    if results.get("baseline"):
        notes += differences(results, results["baseline"])
    if not notes:
        return []
    return ["## Not directly comparable", "", *[f"- {n}" for n in notes], ""]


def protocol_section(results: dict[str, Any]) -> list[str]:
    p = results.get("protocol", {})
    lines = ["## Protocol", ""]
    lines.append(f"- reasoning: {p.get('reasoning', 'on')} (asked: {p.get('reasoning_requested', '?')}; "
                 f"{p.get('reasoning_why', '?')})")
    lines.append(f"- system prompt: {_system_line(p)}")
    for key in ("user_prompt", "think_prefill", "stop", "temperature", "top_p", "max_tokens", "seed", "grader",
                "pass@1_stderr", "cons@k", "pass@k"):
        lines.append(f"- {key}: `{p.get(key)!r}`" if key in ("user_prompt", "think_prefill") else f"- {key}: {p.get(key)}")
    for name, t in results["tasks"].items():
        grader = f"; grader: {t['grader']}" if t.get("grader") else ""
        shuffle = f"; choices shuffled with seed {t['shuffle_seed']}" if t.get("shuffle_seed") is not None else ""
        lines.append(f"- {name}: task `{t.get('task')}` v{t.get('version')}, data {t.get('data')}{grader}{shuffle}")
        if t.get("user_prompt"):
            lines.append(f"  - user prompt: `{t['user_prompt']!r}`")
        prov = t.get("provenance")
        if prov:
            version = f" {prov['engine_version']}" if prov.get("engine_version") else ""
            lines.append(f"  - engine {prov['engine']}{version}, dtype {prov.get('dtype') or 'the server decides'}, "
                         f"sampling seed {prov['seeds'].get('sampling')}, k {prov['k']}, n {prov['n']}")
    versions = results.get("versions", {})
    lines += ["- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()), ""]
    if p.get("rendered_prompt"):
        lines += [f"The exact prompt sent for {p.get('rendered_prompt_of')} (the model writes from its end on):", "",
                  "```", p["rendered_prompt"].rstrip("\n"), "```", ""]
    return lines


def _system_line(p: dict[str, Any]) -> str:
    template = p.get("template_system_prompt")
    if not template:
        return "none (the chat template adds none)"
    if p.get("system_prompt"):
        return f"`{template!r}`, the chat template's own default, kept (--default-system keep)"
    return f"none: the chat template's default `{template!r}` was cut out (--default-system drop)"


def lineage_section(results: dict[str, Any]) -> list[str]:
    lin = results.get("lineage") or {}
    lines = ["## Lineage", ""]
    if not any(lin.get(s) for s in ("sft", "curate", "generate")):
        return lines + [f"- `{lin.get('model')}` has no distill manifest: lineage unknown", ""]
    if lin.get("sft"):
        s = lin["sft"]
        lines.append(f"- sft: `{s.get('path')}`, recipe {s.get('recipe')}, student base {s.get('student')}")
    if lin.get("curate"):
        c = lin["curate"]
        lines.append(f"- dataset (curate): `{c.get('path')}`")
    if lin.get("generate"):
        g = lin["generate"]
        lines.append(f"- teacher (generate): {g.get('teacher')} ({g.get('teacher_model')}), traces `{g.get('path')}`")
    return lines + [""]


# ---------------------------------------------------------------- report.png


def plot_report(results: dict[str, Any], path: Path) -> None:
    """Left: pass@1 per task (± stderr) beside the published student and teacher. Right: pass@k curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    tasks = list(results["tasks"])
    published = results.get("published") or {}
    budgeted = [t for t in tasks if results["tasks"][t].get("budget_curve")]
    fig, axes = plt.subplots(1, 3 if budgeted else 2, figsize=(18 if budgeted else 12, 4.5))
    bars, curves = axes[0], axes[1]
    if budgeted:
        plot_budgets(axes[2], results, budgeted)
    series = []
    baseline = results.get("baseline")
    if baseline:  # before distillation, right beside after
        base = [baseline["tasks"].get(t) for t in tasks]
        series.append((f"base: {_name(baseline['model'])}", [100 * b["pass@1"] if b else float("nan") for b in base],
                       [100 * (b.get("pass@1_stderr") or 0) if b else 0 for b in base]))
    series.append(("this model", [100 * results["tasks"][t]["pass@1"] for t in tasks],
                   [100 * (results["tasks"][t].get("pass@1_stderr") or 0) for t in tasks]))
    for role in ("student", "teacher"):
        row = published.get(role)
        if row:
            scores = row.get("scores") or {}
            series.append((f"{row['name']} (published)",
                           [scores[t]["pass@1"] if scores.get(t) else float("nan") for t in tasks], None))
    width = 0.8 / len(series)
    for i, (label, values, errors) in enumerate(series):
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(tasks))]
        bars.bar(xs, values, width, yerr=errors, capsize=3, label=label)
        for x, v in zip(xs, values, strict=True):
            if v != v:  # NaN: the benchmark has no published number for this model (or the base was not run on it)
                what = "not\nrun" if label.startswith("base:") else "not\npublished"
                bars.text(x, 1, what, ha="center", va="bottom", fontsize=6, rotation=90)
    bars.set_xticks(range(len(tasks)), tasks)
    bars.set_ylabel("pass@1 (%)")
    bars.set_ylim(0, 100)
    bars.set_title("pass@1, mean over k samples (± s.e. across problems)")
    bars.legend(fontsize=8)
    for t in tasks:
        curve = results["tasks"][t].get("pass@k_curve") or {}
        ks = [int(k) for k in curve]
        curves.plot(ks, [100 * v for v in curve.values()], marker="o", label=t)
    percent_against_log2(curves, "k (samples drawn per problem)", "pass@k (%)", "pass@k (unbiased estimator)")
    fig.suptitle(f"distill eval: {results.get('model')}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_budgets(ax: Any, results: dict[str, Any], tasks: list[str]) -> None:
    """pass@1 against thinking budget (log scale), each task's unforced run as a star at its mean think length."""
    for name in tasks:
        t = results["tasks"][name]
        curve = t["budget_curve"]
        xs = [int(b) for b in curve]
        line = ax.errorbar(xs, [100 * p["pass@1"] for p in curve.values()],
                           yerr=[100 * (p.get("stderr") or 0) for p in curve.values()], marker="o", capsize=3,
                           label=name)
        unforced_x = max(xs) * 2 if t.get("mean_tokens") is None else max(1.0, t["mean_tokens"])
        ax.plot([unforced_x], [100 * t["pass@1"]], marker="*", markersize=12, color=line[0].get_color(),
                linestyle="none", label=f"{name} unforced")
    percent_against_log2(ax, "thinking budget B (tokens; star: unforced, at its mean response tokens)", "pass@1 (%)",
                         "accuracy against thinking budget (budget forcing)")


def percent_against_log2(ax: Any, xlabel: str, ylabel: str, title: str) -> None:
    """A 0-100 % axis against a log2 one whose ticks read as plain numbers (2, 64, 1024)."""
    import matplotlib.ticker

    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(fontsize=8)
