"""Hooks of the humaneval task: the R1-protocol task class shared by every family (distill/eval_tasks.py) and the
code hooks (distill/code_tasks.py: docs, prompt, scoring in the sandbox); lm-eval loads them from here."""

from distill.code_tasks import doc_to_text, grade_all, process_docs, process_results
from distill.eval_tasks import ReasoningTask

__all__ = ["ReasoningTask", "doc_to_text", "grade_all", "process_docs", "process_results"]
