"""Hooks of the gpqa tasks; they live in the distill package (distill/eval/choice_hooks.py), lm-eval loads them
from here."""

from distill.eval.choice_hooks import ChoiceTask, doc_to_text, keep_all, process_docs, process_results

__all__ = ["ChoiceTask", "doc_to_text", "keep_all", "process_docs", "process_results"]
