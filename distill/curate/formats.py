"""Curate's input formats: the shapes published reasoning-trace sets come in, each mapped onto TRACE rows
(distill/core/schema.py) so that the filter chain sees one kind of row whatever the source.

    layout = resolve_layout({path: file_columns(path)}, CurateConfig(src=..., out=...))
    print(layout.describe())         # what was detected and how each trace field was mapped
    for trace in to_traces(row, layout.to_dict()):   # 0..k TRACE rows per input row
        ...

The formats (`--input-format NAME`; detected from the columns when not given):
    trace          distill's own trace rows (`distill generate`): id, prompt_id, completion, finish_reason, ...
    flat           one completion per row: {"problem": ..., "completion": ..., "answer": "27", "id": ...}
    generations    k completions per row, exploded to k traces (OpenR1-Math-220k):
                   {"problem": ..., "answer": "6", "uuid": ..., "generations": ["<think>...", ...],
                    "finish_reasons": ["stop", "length"], "correctness_math_verify": [true, false], ...}
    conversations  a chat whose last assistant turn is the completion (OpenThoughts, Bespoke-Stratos, Sky-T1):
                   {"system": "...", "conversations": [{"from": "user", "value": ...}, {"from": "assistant", ...}]}
                   or {"messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}]}
    s1k            question, reasoning trajectory and attempt in separate fields, joined into
                   `<think>\\n...\\n</think>\\n\\n attempt` (s1K: thinking_trajectories + attempt; s1K-1.1: one
                   pair per teacher, deepseek_thinking_trajectory + deepseek_attempt, gemini_...)

Missing provenance is never invented: a row without a finish reason gets `unknown` (the `truncated` filter
then decides from the text), a row without a prompt id gets a hash of its problem text (the same id
`distill generate` gives an id-less prompt, so k completions of one problem group for dedup and the cap).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from distill.core.errors import DistillError
from distill.core.manifest import atomic_path
from distill.core.protocol import THINK_CLOSE, THINK_OPEN, problem_id
from distill.core.readers import PROMPT_FILE_SUFFIXES, hub_dataset, iter_jsonl, looks_local, read_file
from distill.grading.answers import extract_boxed

# the columns a row of distill's own traces must have (distill/core/schema.py TRACE has the rest)
TRACE_REQUIRED = ("id", "prompt_id", "completion", "finish_reason")

# Field names public sets use, in the order they are tried; --problem-field etc. override them.
ALIASES = {
    "problem": ("problem", "question", "prompt", "instruction", "input"),
    "completion": ("completion", "response", "output", "generation", "model_output"),
    "answer": ("answer", "reference_answer", "gold_answer", "ground_truth", "expected_answer", "final_answer",
               "solution"),
    "id": ("id", "uuid", "problem_id", "idx"),
    "source": ("source", "source_type", "data_source", "benchmark", "dataset", "domain"),
    "finish_reason": ("finish_reason", "stop_reason"),
    "label": ("label_correct", "is_correct", "correct"),
    "model": ("model", "model_name", "generator"),
    "teacher": ("teacher",),
}
FLAGS = {"problem": "--problem-field", "completion": "--completion-field", "answer": "--answer-field",
         "id": "--id-field", "source": "--source-field"}
ROLES = {"user": "user", "human": "user", "prompter": "user", "assistant": "assistant", "gpt": "assistant",
         "model": "assistant", "bot": "assistant", "chatgpt": "assistant", "system": "system"}
_TRAJECTORY = re.compile(r"^(?:(.+)_)?thinking_trajector(?:y|ies)$")


@dataclass
class Layout:
    """The chosen format and where each trace field comes from (column names; None: absent)."""

    format: str
    detected: bool  # False: forced with --input-format
    fields: dict[str, str | None] = field(default_factory=dict)
    pairs: list[list[str]] = field(default_factory=list)  # s1k: [trajectory, attempt, teacher, grade] per teacher
    files: dict[str, list[str]] = field(default_factory=dict)  # format -> input files (for the record)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def columns(self) -> list[str]:
        """The input columns this layout reads (parquet reads only these)."""
        names = [c for c in self.fields.values() if c] + [c for p in self.pairs for c in (p[0], p[1], p[3]) if c]
        return list(dict.fromkeys(names))

    def describe(self) -> str:
        how = "detected from the columns" if self.detected else "forced with --input-format"
        return f"input format '{self.format}' ({how}): " + "; ".join(f"{k} <- {v}" for k, v in self.mapping().items())

    def mapping(self) -> dict[str, str]:
        """Trace field -> where it comes from, in words (printed once, kept in the manifest and the card)."""
        return FORMATS[self.format].explain(self)


# ---------------------------------------------------------------- reading a file's columns


def file_columns(path: Path) -> list[str]:
    """Column names of one input file (parquet schema; jsonl: the first row's keys; json: the first rows')."""
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return pq.read_schema(path).names
        except (pa.ArrowInvalid, OSError) as err:
            raise DistillError(f"cannot read '{path}' as parquet ({err}); pass a valid .parquet file") from None
    rows = first_rows(path, 100 if path.suffix == ".json" else 1)
    if not rows:
        raise DistillError(f"trace file '{path}' is empty; pass a file with at least one trace")
    return list(dict.fromkeys(k for r in rows for k in r))


def first_rows(path: Path, n: int | None = None) -> list[dict[str, Any]]:
    """The first `n` rows (all: None) of a .jsonl or .json file, read the way generate reads prompt files."""
    if path.suffix == ".json":
        rows = read_file(path, what="traces")
        rows = rows if n is None else rows[:n]
    else:
        rows = []
        for row in iter_jsonl(path):
            rows.append(row)
            if n is not None and len(rows) >= n:
                break
    bad = next((i for i, r in enumerate(rows) if not isinstance(r, dict)), None)
    if bad is not None:
        raise DistillError(f"row {bad + 1} of '{path}' is not a JSON object; each row must be one trace")
    return rows


# ---------------------------------------------------------------- hub datasets


def load_hub(dataset_id: str, split: str, subset: str | None) -> Any:
    """A hub dataset of traces (generate's hub loading, with its one-line errors)."""
    if Path(dataset_id).suffix in PROMPT_FILE_SUFFIXES or looks_local(dataset_id):
        raise DistillError(f"traces '{dataset_id}' not found; pass a generate output directory, .jsonl/.json/.parquet "
                           "trace files or a directory of them, or a hub dataset id")
    return hub_dataset(dataset_id, split, subset, what="traces")


def write_hub(dataset: Any, directory: Path) -> Path:
    """The hub dataset as one parquet file in curate's work dir, so that it is cut into resumable units like any
    file (datasets writes a row group per 1,000 rows). Written once per run: a resumed run reuses it."""
    path = directory / "hub.parquet"
    if not path.is_file():
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            dataset.to_parquet(str(tmp))
    return path


# ---------------------------------------------------------------- detection


def _first(columns: list[str], role: str) -> str | None:
    return next((c for c in ALIASES[role] if c in columns), None)


def _has(cols: list[str], role: str, given: dict[str, str]) -> bool:
    """A field named on the command line counts as found, so flags alone can make odd names detectable."""
    return given.get(role) in cols or _first(cols, role) is not None


def _is_trace(cols: list[str], given: dict[str, str]) -> bool:
    # prompt_id + finish_reason are what only distill's own traces carry; a file with them but a missing or
    # mistyped column is still meant as traces, and is told what is wrong with it
    return set(TRACE_REQUIRED) <= set(cols) or {"prompt_id", "finish_reason"} <= set(cols)


def _is_generations(cols: list[str], given: dict[str, str]) -> bool:
    return "generations" in cols and _has(cols, "problem", given)


def _is_s1k(cols: list[str], given: dict[str, str]) -> bool:
    return any(_TRAJECTORY.match(c) for c in cols) and _has(cols, "problem", given)


def _is_conversations(cols: list[str], given: dict[str, str]) -> bool:
    return "conversations" in cols or "messages" in cols


def _is_flat(cols: list[str], given: dict[str, str]) -> bool:
    return _has(cols, "problem", given) and _has(cols, "completion", given)


def detect(columns: list[str], where: str, given: dict[str, str] | None = None) -> str:
    """The format of a file from its columns (and the fields named by flag). More specific shapes win (OpenR1's
    rows also carry `messages`, one of their generations as a chat: the k generations are the data); flat and
    conversational columns side by side are ambiguous unless --completion-field says which."""
    given = given or {}
    for name in ("trace", "generations", "s1k"):
        if FORMATS[name].detect(columns, given):
            return name
    conv, flat = _is_conversations(columns, given), _is_flat(columns, given)
    if conv and flat and given.get("completion"):
        conv = given["completion"] in ("conversations", "messages")
        flat = not conv
    if conv and flat:
        raise DistillError(f"'{where}' fits both the conversations and the flat input format (columns "
                           f"{', '.join(columns[:12])}); pass --input-format conversations or --input-format flat")
    if conv:
        return "conversations"
    if flat:
        return "flat"
    raise DistillError(
        f"'{where}' matches no input format (columns: {', '.join(columns[:12])}); name the fields with "
        "--problem-field and --completion-field, or see the README section 'Curating published trace sets' "
        "and distill/core/schema.py for the shapes curate reads"
    )


def resolve_layout(columns_by_file: dict[Path, list[str]], cfg: Any) -> Layout:
    """One layout for all input files: every file must have the same shape (a directory mixing two is refused,
    naming the files of each), and every field named on the command line must exist."""
    forced = cfg.input_format
    if forced is not None and forced not in FORMATS:
        raise DistillError(f"unknown --input-format '{forced}'; choose from {', '.join(FORMATS)}")
    by_format: dict[str, list[str]] = {}
    for path, cols in columns_by_file.items():
        by_format.setdefault(forced or detect(cols, str(path), overrides(cfg)), []).append(str(path))
    if len(by_format) > 1:
        shapes = "; ".join(f"{name}: {_names(files)}" for name, files in by_format.items())
        raise DistillError(f"'{cfg.src}' mixes input formats ({shapes}); curate one shape per run: pass its files "
                           "or a directory holding only them")
    name = next(iter(by_format))
    columns = list(dict.fromkeys(c for cols in columns_by_file.values() for c in cols))
    layout = Layout(format=name, detected=forced is None, files=by_format)
    FORMATS[name].resolve(layout, columns, overrides(cfg), str(cfg.src))
    return layout


def _names(files: list[str], limit: int = 4) -> str:
    shown = ", ".join(Path(f).name for f in files[:limit])
    return shown + (f" and {len(files) - limit} more" if len(files) > limit else "")


def overrides(cfg: Any) -> dict[str, str]:
    return {role: getattr(cfg, f"{role}_field") for role in FLAGS if getattr(cfg, f"{role}_field", None)}


def _map(layout: Layout, columns: list[str], given: dict[str, str], src: str, roles: tuple[str, ...]) -> None:
    """Fill layout.fields for `roles`: a field named on the command line must exist; otherwise the first alias
    present, or None."""
    for role in roles:
        if role in given:
            if given[role] not in columns:
                raise DistillError(f"'{src}' has no '{given[role]}' field (fields: {', '.join(columns[:12])}); "
                                   f"fix {FLAGS[role]}")
            layout.fields[role] = given[role]
        else:
            layout.fields[role] = _first(columns, role)


def _need(layout: Layout, role: str, columns: list[str], src: str) -> None:
    if not layout.fields.get(role):
        raise DistillError(f"'{src}' has no {role} field for the '{layout.format}' input format (fields: "
                           f"{', '.join(columns[:12])}); name it with {FLAGS[role]}")


# ---------------------------------------------------------------- one format each


@dataclass(frozen=True)
class InputFormat:
    name: str
    doc: str
    detect: Any  # (columns, fields named by flag) -> bool
    resolve: Any  # (layout, columns, overrides, src) -> None: fills layout.fields / pairs
    convert: Any  # (row, layout dict) -> list of TRACE rows
    explain: Any  # (layout) -> {trace field: where it comes from}


def _resolve_trace(layout: Layout, columns: list[str], given: dict[str, str], src: str) -> None:
    if given:
        flags = ", ".join(FLAGS[r] for r in given)
        raise DistillError(f"{flags} map the fields of other input formats; distill's own traces already have "
                           "TRACE's field names (drop the flag, or pass --input-format flat)")


def _explain_trace(layout: Layout) -> dict[str, str]:
    return {"all fields": "as written by distill generate (TRACE schema, distill/core/schema.py)"}


def _resolve_flat(layout: Layout, columns: list[str], given: dict[str, str], src: str) -> None:
    _map(layout, columns, given, src, ("problem", "completion", "answer", "id", "source"))
    _need(layout, "problem", columns, src)
    _need(layout, "completion", columns, src)
    for role in ("finish_reason", "label", "model", "teacher"):
        layout.fields[role] = _first(columns, role)
    layout.fields["prompt_id"] = "prompt_id" if "prompt_id" in columns else None


def _resolve_generations(layout: Layout, columns: list[str], given: dict[str, str], src: str) -> None:
    given = {"completion": "generations", **given}
    _map(layout, columns, given, src, ("problem", "completion", "answer", "id", "source"))
    _need(layout, "problem", columns, src)
    layout.fields["finish_reason"] = "finish_reasons" if "finish_reasons" in columns else None
    layout.fields["label"] = next((c for c in ("correctness_math_verify", "correctness") if c in columns), None)
    layout.fields["model"] = _first(columns, "model")
    layout.fields["teacher"] = _first(columns, "teacher")


def _resolve_conversations(layout: Layout, columns: list[str], given: dict[str, str], src: str) -> None:
    chats = [c for c in ("conversations", "messages") if c in columns]
    if "completion" in given:
        chats = [given["completion"]]
        if chats[0] not in columns:
            raise DistillError(f"'{src}' has no '{chats[0]}' field (fields: {', '.join(columns[:12])}); "
                               "fix --completion-field")
    if len(chats) > 1:
        raise DistillError(f"'{src}' has both a 'conversations' and a 'messages' column; pick the chat with "
                           "--completion-field conversations or --completion-field messages")
    if not chats:
        raise DistillError(f"'{src}' has no conversations/messages column; name it with --completion-field")
    layout.fields["completion"] = chats[0]
    # the problem is the chat's last user turn unless a column is named (the dedup/decontamination text)
    _map(layout, columns, {k: v for k, v in given.items() if k != "completion"}, src, ("answer", "id", "source"))
    layout.fields["problem"] = given.get("problem")
    if layout.fields["problem"] and layout.fields["problem"] not in columns:
        raise DistillError(f"'{src}' has no '{layout.fields['problem']}' field; fix --problem-field")
    layout.fields["system"] = "system" if "system" in columns else None
    for role in ("finish_reason", "label", "model", "teacher"):
        layout.fields[role] = _first(columns, role)


def _resolve_s1k(layout: Layout, columns: list[str], given: dict[str, str], src: str) -> None:
    _map(layout, columns, {k: v for k, v in given.items() if k != "completion"}, src,
         ("problem", "answer", "id", "source"))
    _need(layout, "problem", columns, src)
    trajectories = [given["completion"]] if "completion" in given else [c for c in columns if _TRAJECTORY.match(c)]
    for column in trajectories:
        m = _TRAJECTORY.match(column)
        if column not in columns or not m:
            raise DistillError(f"'{src}' has no reasoning trajectory column '{column}' (a *thinking_trajectory "
                               "field); fix --completion-field")
        prefix = m.group(1)
        attempt = f"{prefix}_attempt" if prefix else "attempt"
        if attempt not in columns:
            raise DistillError(f"'{src}' has '{column}' but no '{attempt}' field to go after </think>")
        grade = f"{prefix}_grade" if prefix and f"{prefix}_grade" in columns else ""
        layout.pairs.append([column, attempt, prefix or "", grade])
    for role in ("model", "teacher"):
        layout.fields[role] = _first(columns, role)


def _explain_common(layout: Layout) -> dict[str, str]:
    f = layout.fields
    out = {
        "prompt_id": f"column {f['prompt_id']}" if f.get("prompt_id") else "hash of the problem text",
        "answer": (f"column {f['answer']} (its last \\boxed{{}}, or the text when it is one short line; a worked "
                   "solution without a box is no reference)") if f.get("answer") else "none: rows are not graded",
        "source": f"column {f['source']}" if f.get("source") else "none",
    }
    if f.get("label"):
        out["source verdict"] = f"column {f['label']} (compared with curate's verdicts in curation_report.json)"
    teacher = f.get("teacher") or f.get("model")  # the model that wrote the traces, when no registry name is given
    out["teacher"] = f"column {teacher}" if teacher else "unknown"
    return out


def _explain_flat(layout: Layout) -> dict[str, str]:
    f = layout.fields
    return {"problem": f"column {f['problem']}", "completion": f"column {f['completion']}",
            "id": f"column {f['id']}" if f.get("id") else "{prompt_id}/{hash of the completion}",
            "finish_reason": f"column {f['finish_reason']}" if f.get("finish_reason") else
            "unknown (the truncated filter decides from the text)", **_explain_common(layout)}


def _explain_generations(layout: Layout) -> dict[str, str]:
    f = layout.fields
    return {"problem": f"column {f['problem']}",
            "completion": f"each item of column {f['completion']} (one trace per generation)",
            "id": f"{{column {f['id']}}}/{{k}}" if f.get("id") else "{prompt_id}/{k}",
            "finish_reason": f"item k of column {f['finish_reason']}" if f.get("finish_reason") else
            "unknown (the truncated filter decides from the text)", **_explain_common(layout)}


def _explain_conversations(layout: Layout) -> dict[str, str]:
    f = layout.fields
    return {"problem": f"column {f['problem']}" if f.get("problem") else f"last user turn of {f['completion']}",
            "completion": f"last assistant turn of column {f['completion']}",
            "system": ("column system: read, not put into the SFT examples (R1 students train without one)"
                       if f.get("system") else "none"),
            "id": f"column {f['id']}" if f.get("id") else "{prompt_id}/{hash of the completion}",
            "finish_reason": f"column {f['finish_reason']}" if f.get("finish_reason") else
            "unknown (the truncated filter decides from the text)", **_explain_common(layout)}


def _explain_s1k(layout: Layout) -> dict[str, str]:
    f = layout.fields
    pairs = ", ".join(f"<think>{t}</think> + {a}" + (f" (teacher {p})" if p else "") for t, a, p, _ in layout.pairs)
    return {"problem": f"column {f['problem']}", "completion": pairs,
            "id": f"{{column {f['id']}}}/{{teacher}}" if f.get("id") else "{prompt_id}/{teacher}",
            "finish_reason": "unknown (the truncated filter decides from the text)", **_explain_common(layout),
            **({"source verdict": ", ".join(g for *_, g in layout.pairs if g) + " (Yes/No)"}
               if any(g for *_, g in layout.pairs) else {})}


# ---------------------------------------------------------------- rows


def reference(value: Any) -> str | None:
    """A gradable reference answer: the last \\boxed{} of a worked solution, else the text when it is one short
    line; None for a long solution without a box (grading the final answer against it would be noise)."""
    if value is None:
        return None
    text = str(value).strip()
    if "\\boxed" in text or "\\fbox" in text:
        return extract_boxed(text)
    return text if text and "\n" not in text and len(text) <= 200 else None


def _text(row: dict[str, Any], column: str | None) -> str | None:
    value = row.get(column) if column else None
    return None if value is None else str(value)


def _verdict(value: Any) -> bool | None:
    if isinstance(value, bool) or value is None:
        return value
    text = str(value).strip().lower()
    return True if text in ("yes", "true", "1", "correct") else False if text in ("no", "false", "0", "wrong") else None


def _trace(row: dict[str, Any], f: dict[str, str | None], problem: str, completion: str, *, sample: int,
           tag: str | None = None, finish: Any = None, correct: Any = None, messages: list | None = None,
           teacher: str | None = None) -> dict[str, Any]:
    """One TRACE row. `tag` names the sample within its input row (k, or a teacher); single-completion rows
    without an id are named by a hash of their completion, which is stable and ignores row order."""
    if not problem.strip():
        shown = _text(row, f.get("id")) or completion[:60]
        raise DistillError(f"an input row ({shown!r}) has an empty problem; fix or drop it, or name the problem "
                           "field with --problem-field")
    prompt_id = _text(row, f.get("prompt_id")) or problem_id(problem)
    row_id = _text(row, f.get("id"))
    if tag is not None:
        trace_id = f"{row_id or prompt_id}/{tag}"
    else:
        trace_id = row_id or f"{prompt_id}/{hashlib.sha1(completion.encode()).hexdigest()[:8]}"
    finish = finish if finish is not None else row.get(f["finish_reason"]) if f.get("finish_reason") else None
    return {
        "id": trace_id, "prompt_id": prompt_id, "sample": sample, "problem": problem,
        "answer": reference(row.get(f["answer"])) if f.get("answer") else None,
        "source": _text(row, f.get("source")), "messages": messages or [{"role": "user", "content": problem}],
        "completion": completion, "finish_reason": str(finish) if finish else "unknown",
        "teacher": teacher or _text(row, f.get("teacher")) or _text(row, f.get("model")) or "unknown",
        "model": _text(row, f.get("model")),
        "source_correct": _verdict(correct if correct is not None else row.get(f["label"]) if f.get("label") else None),
    }


def _convert_trace(row: dict[str, Any], layout: dict[str, Any]) -> list[dict[str, Any]]:
    return [row]


def _convert_flat(row: dict[str, Any], layout: dict[str, Any]) -> list[dict[str, Any]]:
    f = layout["fields"]
    prompt, completion = row.get(f["problem"]), row.get(f["completion"])
    # TRL's conversational prompt-completion rows hold turns, not text: the last user / assistant turn is meant
    turns = chat_turns(prompt, f["problem"]) if isinstance(prompt, (list, tuple)) else None
    if turns is not None:
        prompt = next((t["content"] for t in reversed(turns) if t["role"] == "user"), "")
    if isinstance(completion, (list, tuple)):
        completion = next((t["content"] for t in reversed(chat_turns(completion, f["completion"]))
                           if t["role"] == "assistant"), "")
    messages = [t for t in turns if t["role"] != "system"] if turns else None
    return [_trace(row, f, "" if prompt is None else str(prompt), "" if completion is None else str(completion),
                   sample=0, messages=messages)]


def _as_list(value: Any, column: str) -> list:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = None
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise DistillError(f"column '{column}' holds {type(value).__name__}, not a list; pick the list column "
                           "with --completion-field, or pass --input-format flat for one completion per row")
    return list(value)


def _convert_generations(row: dict[str, Any], layout: dict[str, Any]) -> list[dict[str, Any]]:
    f = layout["fields"]
    problem = _text(row, f["problem"]) or ""
    generations = _as_list(row.get(f["completion"]), f["completion"])
    finishes = _as_list(row.get(f["finish_reason"]), f["finish_reason"]) if f.get("finish_reason") else []
    labels = _as_list(row.get(f["label"]), f["label"]) if f.get("label") else []
    return [_trace(row, f, problem, str(g or ""), sample=k, tag=str(k),
                   finish=(finishes[k] if k < len(finishes) else None) or "unknown",
                   correct=labels[k] if k < len(labels) else None)
            for k, g in enumerate(generations)]


def chat_turns(value: Any, column: str) -> list[dict[str, str]]:
    """ShareGPT `{from, value}` or `{role, content}` turns as `{role, content}` with the roles normalised."""
    turns = []
    for turn in _as_list(value, column):
        if not isinstance(turn, dict):
            raise DistillError(f"column '{column}' holds a {type(turn).__name__} turn; expected {{from, value}} or "
                               "{role, content} objects")
        role = str(turn.get("role", turn.get("from", ""))).strip().lower()
        content = turn.get("content", turn.get("value"))
        turns.append({"role": ROLES.get(role, role), "content": "" if content is None else str(content)})
    return turns


def _convert_conversations(row: dict[str, Any], layout: dict[str, Any]) -> list[dict[str, Any]]:
    f = layout["fields"]
    turns = chat_turns(row.get(f["completion"]), f["completion"])
    last = max((i for i, t in enumerate(turns) if t["role"] == "assistant"), default=None)
    # no assistant turn: an empty completion, which the truncated filter drops with its reason
    prompt, completion = (turns, "") if last is None else (turns[:last], turns[last]["content"])
    system = _text(row, f.get("system"))
    if system and not any(t["role"] == "system" for t in prompt):
        prompt = [{"role": "system", "content": system}, *prompt]
    user = next((t["content"] for t in reversed(prompt) if t["role"] == "user"), "")
    problem = _text(row, f.get("problem")) or user
    return [_trace(row, f, problem, completion, sample=0, messages=[t for t in prompt if t["role"] != "system"]
                   or None)]


def _convert_s1k(row: dict[str, Any], layout: dict[str, Any]) -> list[dict[str, Any]]:
    f = layout["fields"]
    problem = _text(row, f["problem"]) or ""
    out = []
    for trajectory_col, attempt_col, prefix, grade in layout["pairs"]:
        attempt = _text(row, attempt_col)
        # s1K keeps a list of trajectories (one in practice); s1K-1.1 one string per teacher
        value = row.get(trajectory_col)
        thoughts = _as_list(value, trajectory_col) if not isinstance(value, str) else [value]
        for k, thought in enumerate(thoughts):
            if thought is None and attempt is None:
                continue
            completion = f"{THINK_OPEN}\n{(thought or '').strip()}\n{THINK_CLOSE}\n\n{(attempt or '').strip()}"
            tag = (prefix or "0") if len(thoughts) == 1 else f"{prefix or 'sample'}-{k}"
            out.append(_trace(row, f, problem, completion, sample=len(out), tag=tag, teacher=prefix or None,
                              correct=row.get(grade) if grade else None))
    return out


FORMATS: dict[str, InputFormat] = {
    f.name: f
    for f in [
        InputFormat("trace", "distill's own trace rows (distill generate)", _is_trace, _resolve_trace,
                    _convert_trace, _explain_trace),
        InputFormat("flat", "one problem, one completion, an optional reference per row", _is_flat, _resolve_flat,
                    _convert_flat, _explain_flat),
        InputFormat("generations", "one problem with a list of k completions per row (OpenR1-Math-220k)",
                    _is_generations, _resolve_generations, _convert_generations, _explain_generations),
        InputFormat("conversations", "a chat per row, the last assistant turn is the completion (OpenThoughts, "
                    "Bespoke-Stratos, Sky-T1)", _is_conversations, _resolve_conversations, _convert_conversations,
                    _explain_conversations),
        InputFormat("s1k", "question, reasoning trajectory and attempt in separate fields (s1K, s1K-1.1)", _is_s1k,
                    _resolve_s1k, _convert_s1k, _explain_s1k),
    ]
}


def to_traces(row: dict[str, Any], layout: dict[str, Any]) -> list[dict[str, Any]]:
    """The TRACE rows of one input row under `layout` (Layout.to_dict(): it travels to the worker processes)."""
    return FORMATS[layout["format"]].convert(row, layout)


def verdict_key(source_correct: bool, reason: str | None, graded: bool) -> str:
    """How curate's verdict on a row compares with its source's own label, for the report's agreement table."""
    if reason in ("wrong_answer", "no_answer"):
        ours = "wrong"
    elif graded:
        ours = "correct"
    else:
        ours = "not graded"
    return f"source {'correct' if source_correct else 'wrong'}, curate {ours}"


# ---------------------------------------------------------------- inputs


@dataclass
class Source:
    files: list[Path]
    generate_dir: Path | None  # the generate stage directory, when there is one (lineage, provenance)
    lineage_inputs: list[str]
    hub: Any = None  # a hub dataset (datasets.Dataset), written to parquet in OUT/.curate when planned
    layout: Any = None  # trace_formats.Layout: the input format and its field mapping


def input_record(layout) -> dict[str, Any]:
    """What the manifest, the report and the card say about the input format."""
    return {"format": layout.format, "detected": layout.detected, "mapping": layout.mapping(), "fields": layout.fields}
