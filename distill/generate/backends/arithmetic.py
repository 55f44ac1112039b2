"""The `arithmetic` backend: a program teacher for the demo's sum task (distill/tasks/arithmetic.py).

    distill generate --teacher arithmetic --prompts runs/demo/prompts/train.jsonl --out runs/gen
    distill generate --teacher arithmetic --model 'arithmetic?wrong_answer=0.1&truncated=0' ...   # other flaw rates

It writes what a strong reasoning model writes on these problems, a correct step-by-step trace in
`<think>...</think>` and a \\boxed{} answer, and, at set rates, the flaws real teachers produce, so that curate
has real work: `wrong_answer` (a slip in one running total, carried to the end), `truncated` (cut off inside
the reasoning, finish_reason "length"), `repetition` (a degenerate loop of one sentence) and `mixed_language`
(a line in Chinese). Each rate defaults to 4%; they are set in the model string, which every trace row records,
so a dataset always says how it was made. Deterministic: the same request seed gives the same completion.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from urllib.parse import parse_qsl

from distill.core.errors import DistillError
from distill.generate.backends import BackendOptions, Completion, Request
from distill.tasks import arithmetic as task
from distill.tasks.student import build_tokenizer, chat_prompt, count_tokens

FLAWS = ("wrong_answer", "truncated", "repetition", "mixed_language")
DEFAULT_FLAW_RATE = 0.04
LOOP_SENTENCE = "Wait, let me check that again."
# "We add the numbers one by one from left to right." / "So the sum is": R1's mixed-language failure mode
MIXED_LINES = ("我们从左到右把这些数一个一个地加起来。", "所以总和是")


def parse_flaw_rates(model: str) -> dict[str, float]:
    """Flaw rates from a model string `arithmetic?wrong_answer=0.1&truncated=0` (`flaw_rate=x` sets all four)."""
    _, _, query = model.partition("?")
    rates = dict.fromkeys(FLAWS, DEFAULT_FLAW_RATE)
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in (*FLAWS, "flaw_rate"):
            raise DistillError(f"unknown option '{key}' in --model '{model}'; valid: flaw_rate, {', '.join(FLAWS)}")
        try:
            rate = float(value)
        except ValueError:
            raise DistillError(f"'{key}={value}' in --model '{model}' is not a number; give a rate in [0, 1]") from None
        if not 0 <= rate <= 1:
            raise DistillError(f"'{key}={value}' in --model '{model}' is not a rate in [0, 1]")
        rates.update(dict.fromkeys(FLAWS, rate) if key == "flaw_rate" else {key: rate})
    if sum(rates.values()) > 1:
        raise DistillError(f"flaw rates in --model '{model}' add up to {sum(rates.values()):g}; keep the sum <= 1")
    return rates


def pick_flaw(rng: random.Random, rates: dict[str, float]) -> str | None:
    """One draw: a flaw with probability equal to its rate, else None (a correct trace)."""
    u, edge = rng.random(), 0.0
    for flaw in FLAWS:
        edge += rates[flaw]
        if u < edge:
            return flaw
    return None


def write_trace(terms: list[int], flaw: str | None, rng: random.Random) -> tuple[str, str]:
    """(completion text, finish reason) for a problem, with the given flaw (None: correct)."""
    think, answer = task.solve(terms)
    if flaw == "wrong_answer":
        think, answer = _slipped(terms, rng)
    elif flaw == "repetition":
        think = think + "\n" + "\n".join([LOOP_SENTENCE] * rng.randint(16, 24)) + "\n" + think
    elif flaw == "mixed_language":
        think = f"{MIXED_LINES[0]}\n{think}\n{MIXED_LINES[1]} {answer}。"
    text = task.completion_text(think, answer)
    if flaw == "truncated":
        # out of tokens mid-thought: no </think>, no answer, as a teacher that hit max_tokens leaves it
        body_start = len("<think>\n")
        cut = body_start + int(len(think) * rng.uniform(0.2, 0.9))
        return text[:cut], "length"
    return text, "stop"


def _slipped(terms: list[int], rng: random.Random) -> tuple[str, str]:
    """A trace with one addition off by a little, the error carried through every later total."""
    step = rng.randrange(len(terms))
    slip = rng.choice([-2, -1, 1, 2])
    totals = task.running_totals(terms)
    if totals[step] + slip < 0:
        slip = -slip
    totals = totals[:step] + [t + slip for t in totals[step:]]
    return task.format_totals(totals, task.total_width(terms)), str(totals[-1])


class ArithmeticTeacher:
    name = "arithmetic"

    def __init__(self, options: BackendOptions):
        self.model = options.model
        self.rates = parse_flaw_rates(options.model)

    def generate(self, requests: Iterable[Request]) -> Iterator[Completion]:
        for request in requests:
            yield self.complete(request)

    def complete(self, request: Request) -> Completion:
        prompt = chat_prompt(request.messages)
        terms = task.parse_problem(_user_turn(request.messages))
        if terms is None:
            return Completion(request.id, "", "error", count_tokens(prompt), 0, self.model,
                              error="the arithmetic teacher only solves sums like 'What is 3 + 8 + 5?'")
        rng = random.Random(request.seed)
        text, finish = write_trace(terms, pick_flaw(rng, self.rates), rng)
        text, finish = _limit_tokens(text, finish, request.max_tokens)
        return Completion(request.id, text, finish, count_tokens(prompt), count_tokens(text), self.model)

    def close(self) -> None:
        pass


def _user_turn(messages: list[dict[str, str]]) -> str:
    return next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")


def _limit_tokens(text: str, finish: str, max_tokens: int) -> tuple[str, str]:
    """Cut a completion at `max_tokens` tokens of the student tokenizer, as a served model would stop."""
    encoding = build_tokenizer().encode(text, add_special_tokens=False)
    if len(encoding.ids) <= max_tokens:
        return text, finish
    return text[: encoding.offsets[max_tokens - 1][1]], "length"


def create(options: BackendOptions) -> ArithmeticTeacher:
    return ArithmeticTeacher(options)
