"""Print a `distill plan` result: one table of stages (tokens, GPU-hours, wall time, cost), the SFT memory
check, every assumption with its source, and the commands to run.

    print_plan(plan(cfg))
"""

from __future__ import annotations

from typing import Any


def fmt_hours(hours: float) -> str:
    if hours <= 0:
        return "-"
    if hours < 1:
        return f"{hours * 60:.0f} min" if hours * 60 >= 1 else f"{hours * 3600:.0f} s"
    return f"{hours:,.1f} h" if hours < 48 else f"{hours / 24:,.1f} days"


def stage_rows(result: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(stage, work, GPU-hours, wall time, cost) per stage, then the total."""
    s = result["stages"]
    if "opd" in s:
        return [_format(*row) for row in opd_rows(result)]
    gen, cur = s["generate"], s["curate"]
    rows = [("generate", f"{gen['traces']:,} traces, {gen['completion_tokens']:,} output + {gen['prompt_tokens']:,} "
             f"prompt tokens; {gen['serving']}", gen),
            ("curate", f"keeps {cur['kept']:,} of {cur['input_traces']:,} ({cur['traces_per_kept']:.2f} generated per "
             f"kept); {cur['note']}", cur)]
    if "sft" in s:
        sft = s["sft"]
        packed = f", packed {sft['rows']:,} rows of {sft['max_length']:,} ({sft['packing_fill']:.0%} full)" \
            if sft["packing_fill"] else ""
        dropped = f", {sft['dropped_too_long']:,} longer than max_length dropped" if sft["dropped_too_long"] else ""
        rows.append(("sft", f"{sft['examples']:,} examples x {sft['epochs']:g} epochs = {sft['tokens']:,} tokens"
                     f"{packed}{dropped}; {sft['params'] / 1e9:.2f}B params, {sft['sharding']}, {sft['bound']}-bound "
                     f"({sft['step_s']:.1f} s per micro-batch)", sft))
        ev = s["eval"]
        tasks = ", ".join(f"{n} {t['problems']}x{t['k']}" for n, t in ev["tasks"].items())
        rows.append(("eval", f"{tasks}: {ev['tokens']:,} tokens (TP {ev['tensor_parallel']}, DP "
                     f"{ev['data_parallel']})", ev))
    rows.append(("total", "", result["total"]))
    return [_format(*row) for row in rows]


def _format(name: str, work: str, st: dict[str, Any]) -> tuple[str, str, str, str, str]:
    return (name, work, f"{st['gpu_hours']:,.1f}" if st["gpu_hours"] else "-", fmt_hours(st["wall_hours"]),
            f"${st['cost']:,.0f}" if st.get("cost") else "-")


def params(n: float) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


OPD_PARTS = {"rollouts": "student samples (decode)", "teacher_scoring": "teacher scores every token (prefill)",
             "student_update": "student update (forward + backward)"}


def opd_rows(result: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """The opd stage, its three parts (busy GPU-hours on their own GPUs), eval, the total, and SFT on the same
    prompts for comparison (not in the total)."""
    s = result["stages"]
    opd, ev = s["opd"], s["eval"]
    where = f"teacher served on {opd['teacher_gpus']} GPU(s)" if opd["served"] else "teacher in-process"
    rows = [("opd", f"{opd['sequences']:,} samples ({opd['sequences_from']}), {opd['completion_tokens']:,} sampled "
             f"tokens; student {params(opd['student_params'])} on {opd['student_gpus']} GPU(s), {where}; "
             f"GPU-hours count every GPU held", opd)]
    rows += [(f"  {name}", f"{OPD_PARTS[name]} on {part['gpus']} GPU(s), busy", part)
             for name, part in opd["parts"].items()]
    tasks = ", ".join(f"{n} {t['problems']}x{t['k']}" for n, t in ev["tasks"].items())
    rows.append(("eval", f"{tasks}: {ev['tokens']:,} tokens (TP {ev['tensor_parallel']}, DP {ev['data_parallel']})",
                 ev))
    rows.append(("total", "", result["total"]))
    sft = opd["sft_same_prompts"]
    traces = (f"generating them: {sft['generate_gpu_hours']:,.1f} GPU-hours of it" if "generate_gpu_hours" in sft
              else "their generation not counted: the teacher is not in the registry")
    rows.append(("(sft instead)", f"for comparison, not in the total: SFT on one teacher trace for each of the "
                 f"{sft['prompts']:,} prompts ({traces})", sft))
    return rows


def print_plan(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if Console().is_terminal else 160)
    i = result["inputs"]
    table = Table(title=f"distill plan: {i['teacher']} -> {i['student'] or '(no student)'} on {i['nodes']} x "
                  f"{i['gpus_per_node']} {i['gpu']}", title_justify="left")
    for col, justify in (("stage", "left"), ("work", "left"), ("GPU-hours", "right"), ("wall time", "right"),
                         ("cost", "right")):
        table.add_column(col, justify=justify)
    for row in stage_rows(result):
        table.add_row(*row)
    console.print(table)
    if result["stages"].get("generate", {}).get("warning"):
        console.print(f"[bold red]generate:[/] {result['stages']['generate']['warning']}")
    sft = result["stages"].get("sft")
    if sft:
        console.print(memory_line(sft))
    assumptions = Table(title="assumptions (override with --set NAME=VALUE)", title_justify="left")
    assumptions.add_column("name")
    assumptions.add_column("value", justify="right")
    assumptions.add_column("source")
    for name, a in result["assumptions"].items():
        value = a["value"]
        assumptions.add_row(name, f"{value:,.4g}" if isinstance(value, float) else str(value), a["source"])
    console.print(assumptions)
    console.print("commands:")
    for line in result["commands"]:
        console.print(f"  {line}", markup=False, highlight=False)


def memory_line(sft: dict[str, Any]) -> str:
    m = sft["memory"]
    head = f"sft memory (distill sft's estimate): {m['per_gpu_gib']:,.1f} GiB per GPU of {m['gpu_gib']:g}"
    if m["fits"]:
        return head + ": fits"
    if m.get("note"):
        return f"{head}: [bold red]{m['note']}[/]"
    more = f"; fits on {m['fits_on_gpus']} GPUs with ZeRO-3" if m.get("fits_on_gpus") else ""
    fixes = "each alone makes it fit: " + "; ".join(m["fixes"]) if m["fixes"] else "try: " + "; ".join(m["helps"])
    return f"{head}: [bold red]does not fit[/]{more}; {fixes}"
