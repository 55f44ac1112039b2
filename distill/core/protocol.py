"""The R1 protocol every stage shares: the think tags, the user turn (the problem, then the instruction line),
the messages a teacher or a student sees. Standard library only."""

from __future__ import annotations


def user_prompt(problem: str, suffix: str | None) -> str:
    """The user turn: the problem, then the instruction line (R1's advice for math: ask for a boxed answer).
    The eval tasks build their prompts the same way, so students see at test time what they trained on."""
    return f"{problem.strip()}\n{suffix}" if suffix else problem.strip()


def build_messages(problem: str, suffix: str | None, system_prompt: str | None = None) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return messages + [{"role": "user", "content": user_prompt(problem, suffix)}]
