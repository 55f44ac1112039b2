"""Hooks of the humaneval task: the R1-protocol task class shared by every family (distill/eval/math_hooks.py) and the
code hooks (distill/eval/code_hooks.py: docs, prompt, scoring in the sandbox); lm-eval loads them from here."""

from distill.eval.code_hooks import doc_to_text, grade_all, process_docs, process_results
from distill.eval.math_hooks import ReasoningTask

__all__ = ["ReasoningTask", "doc_to_text", "grade_all", "process_docs", "process_results"]
