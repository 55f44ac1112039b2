"""Hooks of the contest tasks: the r1_math ones (distill/eval/math_hooks.py), for the base they include."""

from distill.eval.math_hooks import ReasoningTask, doc_to_text, grade_all, process_docs, process_results

__all__ = ["ReasoningTask", "doc_to_text", "grade_all", "process_docs", "process_results"]
