"""Hooks of the r1_math tasks. They live in the distill package (distill/eval/math_hooks.py) so that every task
family under eval/ shares one prompt builder, one prefill and one grader; lm-eval loads them from here."""

from distill.eval.math_hooks import ReasoningTask, doc_to_text, grade_all, process_docs, process_results

__all__ = ["ReasoningTask", "doc_to_text", "grade_all", "process_docs", "process_results"]
