"""The R1 protocol every stage shares, in one place: the think tags and how a completion splits at them, the
prefill a chat template may already hold, the user turn (the problem, then the instruction line), the id of a
prompt that has none, and the per-sample seeds. Standard library only.

    split_think("<think>\nR\n</think>\n\nA")     # ("R", "A")
    user_prompt("What is 1 + 1?", R1_PROMPT_SUFFIX)  # "What is 1 + 1?\nPlease reason step by step, ..."
"""

from __future__ import annotations

import hashlib

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
THINK_PREFILL = THINK_OPEN + "\n"  # what a reasoning prompt ends with: the model's first token is the reasoning

# DeepSeek's usage advice for R1 and its distilled students: no system prompt, temperature 0.5-0.7 (0.6),
# top-p 0.95, and for math a user prompt that asks for the boxed final answer.
R1_PROMPT_SUFFIX = "Please reason step by step, and put your final answer within \\boxed{}."
# For code prompts (rows with tests) the answer is a program, which curate and the code eval read from the last
# fenced block after </think> (distill/grading/programs.py), so the instruction asks for exactly that.
CODE_PROMPT_SUFFIX = ("Please reason step by step, then give your complete solution as a Python program in a single "
                      "```python code block.")


def user_prompt(problem: str, suffix: str | None) -> str:
    """The user turn: the problem, then the instruction line (R1's advice for math: ask for a boxed answer).
    The eval tasks build their prompts the same way, so students see at test time what they trained on."""
    return f"{problem.strip()}\n{suffix}" if suffix else problem.strip()


def build_messages(problem: str, suffix: str | None, system_prompt: str | None = None) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return messages + [{"role": "user", "content": user_prompt(problem, suffix)}]


def split_think(completion: str) -> tuple[str | None, str | None]:
    """(reasoning, answer text), both stripped. Conventions:
    "<think>R</think>A" -> (R, A); "R</think>A" -> (R, A) (the chat template opened the block, as R1's does);
    "<think>R" (never closed: truncated) -> (R, None); "A" with no think tags -> (None, A).
    With several `</think>` the answer is what follows the last one."""
    close = completion.rfind(THINK_CLOSE)
    if close < 0:
        open_ = completion.find(THINK_OPEN)
        if open_ < 0:
            return None, completion.strip()
        return completion[open_ + len(THINK_OPEN):].strip(), None
    head = completion[:close]
    open_ = head.find(THINK_OPEN)
    reasoning = head[open_ + len(THINK_OPEN):] if open_ >= 0 else head
    return reasoning.strip(), completion[close + len(THINK_CLOSE):].strip()


def prefilled_think(prompt_text: str) -> str:
    """The `<think>` opening that a rendered prompt already ends with ("" when none): R1-0528, QwQ and chatml_r1
    templates put it in their generation prompt, so the model never generates it."""
    stripped = prompt_text.rstrip(" ")
    for tail in (THINK_PREFILL, THINK_OPEN):
        if stripped.endswith(tail):
            return tail
    return ""


def problem_id(problem: str) -> str:
    """The id of a prompt that has none: a content hash, stable across runs (so a resumed run skips what it
    wrote) and across stages (curate gives an id-less trace set the ids generate would have given)."""
    return hashlib.sha1(problem.encode()).hexdigest()[:12]


# Per-sample seeds. Each depends only on the run's seed and what the sample is, never on its batch or order, so
# a resumed or re-batched run draws the same samples. Generate seeds a trace row by its id with 32 bits; eval
# seeds the k draws of one prompt with 31 bits (a non-negative int32, which every server's request schema
# takes). The two rules stay as they are: changing either would redraw the samples of runs already on disk (a
# resumed generate, an eval resumed against its fingerprint).


def sample_seed(base: int, row_id: str) -> int:
    """Generate's seed of one trace row ("prompt_id/sample")."""
    return int.from_bytes(hashlib.sha256(f"{base}:{row_id}".encode()).digest()[:4], "little")


def draw_seed(base: int, prompt: str, draw: int) -> int:
    """Eval's seed of the draw-th of the k samples of one rendered prompt."""
    digest = hashlib.sha256(f"{base}\x00{draw}\x00{prompt}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF
