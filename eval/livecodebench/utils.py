"""Hooks of the livecodebench task: the R1-protocol task class (distill/eval/math_hooks.py), the code hooks
(distill/eval/code_hooks.py: scoring in the sandbox) and the loader of LiveCodeBench's problems in a date window
(distill/eval/livecodebench.py); lm-eval loads them from here."""

from distill.core.protocol import CODE_PROMPT_SUFFIX, user_prompt
from distill.eval.code_hooks import grade_all, process_docs, process_results
from distill.eval.livecodebench import DEFAULT_RELEASE, DEFAULT_WINDOW
from distill.eval.math_hooks import ReasoningTask

__all__ = ["ReasoningTask", "doc_to_text", "grade_all", "load_problems", "process_docs", "process_results"]


def doc_to_text(doc):
    """The problem already carries its starter code or stdin instruction; then the line generate asks with."""
    return user_prompt(doc["problem"], CODE_PROMPT_SUFFIX)


def load_problems(livecodebench_window=DEFAULT_WINDOW, livecodebench_release=DEFAULT_RELEASE, data_dir=None,
                  data_file=None, **metadata):
    """`data_dir/data_file` (JSON lines with the hub's columns) when given, else the release's files from the hub;
    only the problems whose contest_date is in the window."""
    from pathlib import Path

    import datasets

    from distill.core.errors import DistillError
    from distill.eval.livecodebench import hub_files, load_rows, read_jsonl

    if data_dir:  # read as plain JSON: a datasets/pyarrow reader would retype dates and fill missing columns
        path = Path(data_dir).expanduser() / (data_file or "livecodebench.jsonl")
        rows, where = read_jsonl(path), str(path)
    else:
        files = hub_files(livecodebench_release)
        rows, where = datasets.load_dataset("json", data_files=files, split="train").to_list(), files[0]
    docs = load_rows(rows, livecodebench_window, where)
    if not docs:
        raise DistillError(f"no LiveCodeBench problem of {where} has a contest_date in {livecodebench_window}: "
                           "widen --set livecodebench.window=START:END or pick a release that covers it")
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})
