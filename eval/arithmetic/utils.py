"""Hooks of the arithmetic tasks: the R1-protocol hooks shared by every family (distill/eval/math_hooks.py) plus the
loader that generates the held-out problems of the demo's task pack."""

from distill.eval.math_hooks import ReasoningTask, doc_to_text, grade_all, process_docs, process_results

__all__ = ["ReasoningTask", "doc_to_text", "grade_all", "load_problems", "process_docs", "process_results"]


def load_problems(terms=10, digits=1, n=200, seed=0, data_dir=None, data_file=None, **metadata):
    """The file `data_dir/data_file` when --data-dir holds one (`distill demo` writes its held-out set there), else
    the test split of SumTask(terms, digits): problems no train prompt of the task can contain. A --data-dir
    meant for other tasks (aime24.jsonl, math500.jsonl, ...) leaves this task on its generated split."""
    from pathlib import Path

    import datasets

    from distill.tasks.arithmetic import SumTask

    path = Path(data_dir).expanduser() / data_file if data_dir and data_file else None
    if path is not None and path.is_file():
        return datasets.DatasetDict({"test": datasets.Dataset.from_json(str(path))})
    rows = SumTask(int(terms), int(digits)).prompts("test", int(n), int(seed))
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})
