"""The one grader of the project: find a completion's final answer and decide whether it equals the reference.
Curate uses it to keep only correct traces, eval to score students; both must agree on what "correct" means.

    from distill.grading.answers import grade, is_equivalent, grade_many
    grade("<think>\\n6 * 7 = 42\\n</think>\\n\\nThe answer is $\\boxed{42}$.", "42")
    # Verdict(answer='42', correct=True, method='exact')
    is_equivalent("\\dfrac{1}{2}", "0.5")                     # True, decided without sympy
    grade_many(completions, golds)                             # many at once: cache + parallel symbolic checks

The R1 protocol: the answer is the last `\\boxed{...}` (or `\\fbox{...}`) AFTER `</think>`; a completion that never
closes its reasoning has no answer, whatever it boxed while thinking. Comparison runs in two tiers:

1. a cheap path, in-process, microseconds (Verdict.method exact, numeric or text). Normalisation first:
   `\\dfrac`/`\\tfrac`, `\\left`/`\\right`, spacing, degrees, percent, dollars, thousands separators, `\\text{}` and
   unit words, `x =` prefixes, AIME zero padding. Then values: numbers compare as exact fractions; constant
   expressions (radicals, pi, i, trig/log) are evaluated, exactly where possible; expressions in single-letter
   variables are compared at three generic points; tuples, intervals, sets (with `\\pm`), matrices
   element-wise; word and choice answers as words. It decides ~97-99% of real pairs, wrong ones included.
2. math-verify's symbolic comparison for the rest (relations, unions of intervals, `e`, subscripts, ...). It
   runs in a separate "judge" process that the caller kills when it overruns `timeout`: math-verify's own
   timeout is signal.alarm, which works only in the main thread of the main interpreter and cannot interrupt
   sympy stuck in C (a huge integer power), so a hard limit needs a process boundary. Judges are started
   with subprocess (not multiprocessing), so callers may be threads, daemonic pool workers or forked
   children. A pair that times out counts as not equivalent (Verdict.method == "timeout").

Verdicts of (normalised pred, normalised gold) are cached per process, so the k samples of one prompt that box
the same answer cost one symbolic check. Public API: split_think, normalize_tags, extract_boxed, extract_answer,
is_equivalent, grade, Verdict, grade_many, equivalent_many (batches), judge_pair (verdict + method),
normalize_answer, close_judges.
"""

from __future__ import annotations

import atexit
import cmath
import functools
import json
import math
import os
import re
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction

from distill.core.paths import ROOT
from distill.core.protocol import THINK_CLOSE, THINK_OPEN, split_think  # re-exported: part of the grader's API

# Sky-T1 / Bespoke-Stratos style tags: reasoning pair -> <think>, answer pair -> unwrapped.
SKY_T1_THINK = ("<|begin_of_thought|>", "<|end_of_thought|>")
SKY_T1_ANSWER = ("<|begin_of_solution|>", "<|end_of_solution|>")


@dataclass(frozen=True)
class Verdict:
    """answer: what was extracted (None: nothing to grade); correct: equivalent to the reference;
    method: which tier decided: no_answer, exact, numeric, text, symbolic, timeout, error."""

    answer: str | None
    correct: bool
    method: str


# ---------------------------------------------------------------- think blocks and tags


def normalize_tags(
    completion: str,
    pairs: Iterable[Sequence[str]] = (),
    answer_pairs: Iterable[Sequence[str]] = (),
) -> str:
    """Rewrite a completion into the `<think>\\n...\\n</think>\\n\\n...` form.

    `pairs` are extra (open, close) reasoning tags mapped to <think>/</think>; `answer_pairs` wrap the final
    answer and are removed. Sky-T1's <|begin_of_thought|>/<|begin_of_solution|> pairs are always known. An
    unclosed tag is kept as an unclosed <think> so that a truncated trace still looks truncated. A completion
    with only `</think>` (R1's template opens the block in the prompt) gets its `<think>` back."""
    text = completion
    for open_, close in [SKY_T1_THINK, *pairs]:
        text = text.replace(open_, THINK_OPEN).replace(close, THINK_CLOSE)
    for open_, close in [SKY_T1_ANSWER, *answer_pairs]:
        text = text.replace(open_, "").replace(close, "")
    if THINK_CLOSE in text and THINK_OPEN not in text:
        text = THINK_OPEN + "\n" + text
    if text.count(THINK_OPEN) != 1 or text.count(THINK_CLOSE) > 1:
        return text  # malformed: leave it for the bad_think_format filter to see as it is
    reasoning, answer = split_think(text)
    if answer is None:
        return f"{THINK_OPEN}\n{reasoning}"
    if text.lstrip().startswith(THINK_OPEN):
        return f"{THINK_OPEN}\n{reasoning}\n{THINK_CLOSE}\n\n{answer}"
    return text  # text before <think>: not ours to move


# ---------------------------------------------------------------- extraction

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\b")


def extract_boxed(text: str) -> str | None:
    """Content of the last complete `\\boxed{...}`/`\\fbox{...}` in `text` (nested braces kept; `\\boxed 5`
    accepted), stripped; None when there is none. A box cut off by truncation is skipped."""
    for m in reversed(list(_BOX_RE.finditer(text))):
        span = _box_span(text, m.end())
        if span and span[0]:
            return span[0]
    return None


def _box_span(text: str, start: int) -> tuple[str, int] | None:
    """(stripped content, index after the box) of the box whose argument starts at `start`; None if cut off."""
    i = start
    while i < len(text) and text[i] in " \t":
        i += 1
    if i >= len(text):
        return None
    if text[i] != "{":  # `\boxed 5`: the token up to whitespace or a math delimiter
        m = re.match(r"[^\s$\\]+", text[i:])
        return (m.group(0).rstrip(".,;:"), i + m.end()) if m else None
    depth = 0
    for j in range(i, len(text)):
        c = text[j]
        if c == "{" and text[j - 1] != "\\":
            depth += 1
        elif c == "}" and text[j - 1] != "\\":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j].strip(), j + 1
    return None  # unbalanced: cut off mid-box


def extract_answer(completion: str) -> str | None:
    """The final answer of a reasoning completion: the last box after `</think>`; None without `</think>`
    (the reasoning never finished) or without a box after it."""
    close = completion.rfind(THINK_CLOSE)
    if close < 0:
        return None
    return extract_boxed(completion[close + len(THINK_CLOSE):])


# ---------------------------------------------------------------- the cheap normalising path

_TEXT_CMDS = r"\\(?:text|textbf|textit|textrm|textnormal|mathrm|mathbf|mathit|mbox|operatorname|hbox)\s*\{"
_SPACES = re.compile(r"(?<!\\)\\[!,:;> ]|\\q?quad\b|~|\\displaystyle|\\limits")
_DEGREES = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|°|\\degree\b|\bdegrees?\b")
_PERCENT = re.compile(r"\\%|%|\bpercent\b")
_DOLLARS = re.compile(r"\\\$|\$|\bdollars?\b|\\textdollar\b")
_ASSIGN = re.compile(r"^\s*[a-zA-Z](?:_\{?\w+\}?)?\s*(?:=|\\in\b)\s*(?=\S)")
_UNITS = {
    "cm", "mm", "km", "inch", "inches", "ft", "foot", "feet", "yd", "yard", "yards", "mile",
    "miles", "meter", "meters", "metre", "metres", "centimeter", "centimeters", "kilometer", "kilometers",
    "unit", "units", "sq", "square", "cubic", "cents", "cent", "hours", "hour", "hr", "minutes", "minute", "min",
    "seconds", "second", "days", "day", "weeks", "week", "years", "year", "mph", "kg", "gram", "grams",
    "pounds", "pound", "lb", "lbs", "ounces", "oz", "liters", "liter", "ml", "gallons", "gallon",
    "people", "students", "ways", "times", "points", "dots", "sides", "coins", "marbles", "cups", "pages",
}
_SQUARED = re.compile(r"\^\s*\{?[23]\}?\s*$")
_GLUED_UNIT = re.compile(r"^([\d.]*\d)([a-zA-Z]+)$")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_INT = re.compile(r"^[+-]?\d+$")
_DECIMAL = re.compile(r"^[+-]?(?:\d+\.\d*|\.\d+)$")
_FRAC = re.compile(r"^(?P<sign>[+-]?)\\frac\{(?P<num>[+-]?\d+)\}\{(?P<den>[+-]?\d+)\}$")
_MIXED = re.compile(r"^(?P<sign>[+-]?)(?P<whole>\d+)\\frac\{(?P<num>\d+)\}\{(?P<den>\d+)\}$")
_SLASH = re.compile(r"^(?P<num>[+-]?\d+)/(?P<den>[+-]?\d+)$")
_BASE = re.compile(r"^(?P<digits>\d+)_\d+$")  # 52_8: digits in base 8; compared digit for digit, as math-verify does
_CHOICE = re.compile(r"^\(?(?P<letter>[A-E])\)?$")
_WORD = re.compile(r"^[a-z][a-z ]*[a-z]$")


def _unwrap_commands(s: str, pattern: str) -> str:
    """`\\text{abc}` -> `abc` for every command matching `pattern` (which ends at the opening brace)."""
    for _ in range(20):  # nested wrappers; bounded so a pathological string cannot loop
        m = re.search(pattern, s)
        if not m:
            return s
        depth, end = 1, None
        for j in range(m.end(), len(s)):
            depth += {"{": 1, "}": -1}.get(s[j], 0)
            if depth == 0:
                end = j
                break
        if end is None:
            return s
        s = s[: m.start()] + s[m.end() : end] + s[end + 1 :]
    return s


def _strip_delimiters(s: str) -> str:
    """Remove math delimiters, a trailing full stop and a box around the whole answer, repeatedly."""
    for _ in range(4):
        s = s.strip().rstrip(".").strip()
        for open_, close in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
            if s.startswith(open_) and s.endswith(close) and len(s) >= len(open_) + len(close):
                s = s[len(open_) : len(s) - len(close)]
                break
        else:
            m = _BOX_RE.match(s)
            span = _box_span(s, m.end()) if m else None
            if span is None or span[1] != len(s):
                return s
            s = span[0]
    return s


def _strip_units(s: str) -> str:
    """`5.4 cents`, `864 inches^2`, `15cm` -> the number; a word answer or an expression keeps its letters.
    Done word by word rather than with one regex: a nested-quantifier regex backtracks exponentially on a
    long prose "answer", and this runs in the caller's process, outside any time limit."""
    words = _SQUARED.sub("", s).split()
    if not words:
        return s
    glued = _GLUED_UNIT.match(words[-1])
    if glued and glued.group(2).lower() in _UNITS:
        words[-1:] = [glued.group(1), glued.group(2)]
    keep = len(words)
    while keep > 0 and words[keep - 1].lower() in _UNITS:
        keep -= 1
    head = " ".join(words[:keep])
    if keep == len(words) or not head or not (head[-1].isdigit() or head[-1] == "}"):
        return s
    return head


def clean_answer(text: str) -> str:
    """Semantic normalisation that keeps spaces (the form handed to math-verify): delimiters, text wrappers,
    units, degrees, percent, dollars, `x =` prefixes and LaTeX spelling variants removed or unified."""
    s = _strip_delimiters(text)
    s = _unwrap_commands(s, _TEXT_CMDS)
    s = s.replace("\\left", "").replace("\\right", "").replace("\\bigl", "").replace("\\bigr", "")
    s = re.sub(r"\\[dtc]frac(?![a-zA-Z])", r"\\frac", s)
    s = _SPACES.sub(" ", s)
    s = _DEGREES.sub("", s)
    s = _PERCENT.sub("", s)
    s = _DOLLARS.sub("", s)
    s = _strip_units(s.strip())
    s = _ASSIGN.sub("", s) if s.count("=") <= 1 else s
    s = re.sub(r"\\frac\s*(\d)\s*(\d)", r"\\frac{\1}{\2}", s)  # \frac12, \frac 59
    s = re.sub(r"\\frac\s*(\d)\s*\{", r"\\frac{\1}{", s)  # \frac9{19}
    s = re.sub(r"\\frac\s*(\{[^{}]*\})\s*(\d)", r"\\frac\1{\2}", s)  # \frac{1}2
    s = re.sub(r"\\sqrt\s*(\d|[a-zA-Z](?![a-zA-Z]))", r"\\sqrt{\1}", s)  # \sqrt2
    s = re.sub(r"_\{(\w+)\}", r"_\1", s)  # 4210_{5} -> 4210_5
    s = re.sub(r"\^\{(\w)\}", r"^\1", s)  # x^{2} -> x^2
    return _strip_delimiters(s).strip()


_WHITESPACE = re.compile(r"(\\[a-zA-Z]+)\s+(?=[a-zA-Z])|\s+")


@functools.lru_cache(maxsize=65536)  # golds repeat k times per prompt, and answers repeat across samples
def normalize_answer(text: str) -> str:
    """The canonical string of an answer: `clean_answer` without any whitespace, thousands separators,
    zero padding or choice parentheses; equal strings mean equal answers (the converse needs more work)."""
    # drop all whitespace but the space that ends a command before a letter: `\\cot x` must not become `\\cotx`
    s = _WHITESPACE.sub(lambda m: m.group(1) + " " if m.group(1) else "", clean_answer(text))
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    if _INT.match(s):
        return str(int(s))  # AIME's "025" is 25; "+5" is 5
    choice = _CHOICE.match(s)
    if choice:
        return choice.group("letter")
    return s.lower() if _WORD.match(s.lower()) and not s.startswith("\\") else s


def as_number(s: str) -> tuple[Fraction, bool] | None:
    """(exact value, written as a decimal) of a normalised plain number: int, decimal, \\frac{a}{b}, a/b,
    mixed number 1\\frac{4}{5}; None for anything else."""
    try:
        if _INT.match(s):
            return Fraction(int(s)), False
        base = _BASE.match(s)
        if base:
            return Fraction(int(base["digits"])), False
        if _DECIMAL.match(s):
            return Fraction(s), True
        for pattern in (_FRAC, _MIXED, _SLASH):
            m = pattern.match(s)
            if m:
                value = Fraction(int(m["num"]), int(m["den"])) + int(m.groupdict().get("whole") or 0)
                return (-value if m.groupdict().get("sign") == "-" else value), False
    except (ValueError, ZeroDivisionError):
        return None
    return None


_EVAL_TOKEN = re.compile(r"\d+(?:\.\d*)?|\.\d+|\\[a-zA-Z]+|\S")
_FUNCTIONS = {
    "\\sin": cmath.sin, "\\cos": cmath.cos, "\\tan": cmath.tan, "\\cot": lambda z: 1 / cmath.tan(z),
    "\\sec": lambda z: 1 / cmath.cos(z), "\\csc": lambda z: 1 / cmath.sin(z), "\\ln": cmath.log,
    "\\log": cmath.log, "\\exp": cmath.exp, "\\arcsin": cmath.asin, "\\arccos": cmath.acos, "\\arctan": cmath.atan,
}
_PRIMARY_START = {"(", "{", "\\frac", "\\sqrt", "\\pi", "i", *_FUNCTIONS}


class _NotNumeric(Exception):
    pass


class _Evaluator:
    """Exact-then-complex evaluation of a constant LaTeX expression: numbers, + - * / ^, \\frac, \\sqrt (and
    \\sqrt[n]), \\pi, i, \\infty, implicit products (2\\sqrt{3}, 3\\pi, 2i). Rationals stay exact Fractions; an
    irrational step switches to complex floats. Anything else (a variable, a function) raises _NotNumeric,
    and so do results too large to compute quickly: this runs in the caller's process, with no time limit."""

    def __init__(self, text: str, env: dict[str, complex] | None = None):
        self.tokens = _EVAL_TOKEN.findall(text)
        self.pos = 0
        self.decimal = False
        self.env = env or {}

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise _NotNumeric
        self.pos += 1
        return token

    def run(self):
        value = self.expr()
        if self.peek() is not None:
            raise _NotNumeric
        return value

    def expr(self):
        value = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            value = _arith(value, self.term(), op)
        return value

    def term(self):
        value = self.factor()
        while True:
            token = self.peek()
            if token in ("*", "/", "\\cdot", "\\times"):
                self.take()
                value = _arith(value, self.factor(), "/" if token == "/" else "*")
            elif token is not None and (token[0].isdigit() or token in _PRIMARY_START or token in self.env):
                value = _arith(value, self.factor(), "*")  # implicit product
            else:
                return value

    def factor(self):
        if self.peek() in ("+", "-"):
            sign = self.take()
            value = self.factor()
            return -value if sign == "-" else value
        base = self.primary()
        if self.peek() == "^":
            self.take()
            return _power(base, self.factor() if self.peek() != "{" else self.group())
        return base

    def function(self, fn):
        """`\\cot x`, `\\sin(2x)`, `\\sin^2 x`: an optional power, then a bracketed argument or, as LaTeX
        writers mean it, the product of the plain factors that follow (`\\sin 2x` is sin(2x))."""
        power = None
        if self.peek() == "^":
            self.take()
            power = self.group()
        if self.peek() in ("(", "{"):
            argument = self.primary()
        else:
            argument = self.primary()
            while self.peek() is not None and (self.peek()[0].isdigit() or self.peek() in self.env):
                argument = _arith(argument, self.primary(), "*")
        try:
            value = fn(complex(argument))
        except (ValueError, ZeroDivisionError, OverflowError):
            raise _NotNumeric from None
        return value if power is None else _power(value, power)

    def group(self):
        if self.peek() == "{":
            self.take()
            value = self.expr()
            self.take("}")
            return value
        return self.primary()

    def primary(self):
        token = self.take()
        if token[0].isdigit() or token[0] == ".":
            self.decimal |= "." in token
            return Fraction(token)
        if token in ("(", "{"):
            value = self.expr()
            self.take(")" if token == "(" else "}")
            return value
        if token == "\\frac":
            return _arith(self.group(), self.group(), "/")
        if token == "\\sqrt":
            index = Fraction(2)
            if self.peek() == "[":
                self.take()
                index = self.expr()
                self.take("]")
            return _power(self.group(), 1 / index if isinstance(index, Fraction) and index else _not_numeric())
        if token in _FUNCTIONS:
            return self.function(_FUNCTIONS[token])
        if token == "\\pi":
            return complex(math.pi)
        if token == "\\infty":
            return complex(math.inf)
        if token == "i":
            return 1j
        if token in self.env:
            return self.env[token]
        raise _NotNumeric


def _not_numeric():
    raise _NotNumeric


def _arith(a, b, op: str):
    try:
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        return a / b
    except (ZeroDivisionError, OverflowError):
        raise _NotNumeric from None


def _power(base, exponent):
    """base ** exponent, exact for rationals to integer powers and perfect roots; refuses huge results."""
    if isinstance(exponent, Fraction) and isinstance(base, Fraction):
        if exponent.denominator == 1:
            size = max(abs(base.numerator), abs(base.denominator), 2).bit_length() * abs(exponent.numerator)
            if size > 4096:
                raise _NotNumeric  # 10^{10^{10}}: would take minutes (and gigabytes) to compute exactly
            return base**exponent.numerator
        root = _exact_root(base, exponent)
        if root is not None:
            return root
    try:
        value = complex(base) ** complex(exponent)
    except (OverflowError, ZeroDivisionError):
        raise _NotNumeric from None
    if not cmath.isfinite(value):
        raise _NotNumeric
    return value


def _exact_root(base: Fraction, exponent: Fraction) -> Fraction | None:
    """base ** (p/q) when it is rational (sqrt(4/9) = 2/3), else None."""
    if base < 0 or exponent.numerator > 64 or exponent.denominator > 16:
        return None
    q = exponent.denominator
    num, den = round(base.numerator ** (1 / q)), round(base.denominator ** (1 / q))
    if num**q == base.numerator and den**q == base.denominator:
        return Fraction(num, den) ** exponent.numerator
    return None


def as_value(s: str, env: dict[str, complex] | None = None) -> tuple[Fraction | complex, bool] | None:
    """(value, written with a decimal) of an answer: a plain number (exact), or an expression of numbers,
    radicals, pi, i and the variables in `env`; None when it holds anything else."""
    number = as_number(s)
    if number is not None or len(s) > 200 or not s:
        return number
    evaluator = _Evaluator(s, env)
    try:
        value = evaluator.run()
    except (_NotNumeric, ValueError, RecursionError):
        return None
    return value, evaluator.decimal


def variables_of(s: str) -> set[str] | None:
    """Single-letter variables of an expression; None when it uses `e` (Euler's number or a variable?) or a
    subscripted name, which only the symbolic path can read."""
    tokens = _EVAL_TOKEN.findall(s)
    letters = {t for t in tokens if len(t) == 1 and t.isalpha() and t != "i"}
    return None if "e" in letters or "_" in tokens else letters


# Points at which two expressions in the same variables are compared. Polynomials and rational functions that
# agree at three generic points (mixed signs, irrational-looking) are the same function for any answer a
# contest asks for; one disagreement proves them different. Mixed signs separate sqrt(x^2) from x.
_POINTS = [(0.5773502, 0.1371), (-1.3127641, 0.2263), (2.1731052, -0.3119)]


def expressions_equal(pred: str, gold: str) -> bool | None:
    """Compare two expressions in single-letter variables by evaluating both at the same generic points;
    None when either cannot be evaluated (functions, relations, ...)."""
    names = (variables_of(pred) or set()) | (variables_of(gold) or set())
    if variables_of(pred) is None or variables_of(gold) is None or not names or len(names) > 6:
        return None
    for base, step in _POINTS:
        env = {v: complex(base + step * k) for k, v in enumerate(sorted(names))}
        a, b = as_value(pred, env), as_value(gold, env)
        if a is None or b is None:
            return None
        if not _numbers_equal(a, b):
            return False
    return True


def _numbers_equal(a: tuple[Fraction | complex, bool], b: tuple[Fraction | complex, bool]) -> bool:
    """Exact for rationals; a decimal matches to 6 places, as math-verify rounds (3.210 = 3.21, 0.333333 = 1/3,
    but 0.33 != 1/3 and 3.14159 != pi); other irrationals within a relative 1e-9, far below any difference
    between two distinct contest answers."""
    x, y = a[0], b[0]
    if x == y:
        return True
    if isinstance(x, Fraction) and isinstance(y, Fraction) and not (a[1] or b[1]):
        return False
    x, y = complex(x), complex(y)
    if not (cmath.isfinite(x) and cmath.isfinite(y)):
        return False
    if a[1] or b[1]:
        return round(x.real, 6) == round(y.real, 6) and round(x.imag, 6) == round(y.imag, 6)
    return abs(x - y) <= 1e-9 * max(1.0, abs(x), abs(y))


def _split_top_level(s: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, c in enumerate(s):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(s[start:i])
            start = i + 1
    parts.append(s[start:])
    return parts


def _as_collection(s: str) -> tuple[str, list[str]] | None:
    """(kind, items) of a tuple/interval ("ordered" plus its brackets), or of a set or bare list ("set")."""
    if s.startswith("\\{") and s.endswith("\\}"):
        return "set", _split_top_level(s[2:-2])
    if len(s) >= 2 and s[0] in "([" and s[-1] in ")]":
        items = _split_top_level(s[1:-1])
        return ("ordered" + s[0] + s[-1], items) if len(items) >= 2 and all(items) else None
    items = _split_top_level(s)
    return ("set", items) if len(items) >= 2 and all(items) else None


def _numeric_collection(s: str) -> tuple[str, list[tuple[Fraction, bool]]] | None:
    """A collection of constants; `a \\pm b` counts as the set {a + b, a - b}."""
    coll = _as_collection(s) or (("set", [s]) if "\\pm" in s else None)
    if coll is None:
        return None
    items = coll[1]
    if coll[0] == "set" and any("\\pm" in x for x in items):
        items = [y for x in items for y in ([x.replace("\\pm", "+", 1), x.replace("\\pm", "-", 1)]
                                            if x.count("\\pm") == 1 else [x])]
    numbers = [as_value(x) for x in items]
    return (coll[0], numbers) if all(numbers) else None


def _collections_equal(a: tuple[str, list], b: tuple[str, list]) -> bool:
    if len(a[1]) != len(b[1]) or (a[0] == "set") != (b[0] == "set"):
        return False
    if a[0] == "set":
        return _same_multiset(a[1], b[1])
    return a[0] == b[0] and all(_numbers_equal(x, y) for x, y in zip(a[1], b[1], strict=True))


def _same_multiset(xs: list, ys: list) -> bool:
    """Unordered comparison of values (complex ones cannot be sorted): match each x to an unused equal y."""
    unused = list(ys)
    for x in xs:
        match = next((i for i, y in enumerate(unused) if _numbers_equal(x, y)), None)
        if match is None:
            return False
        unused.pop(match)
    return True


def cheap_verdict(pred: str, gold: str) -> tuple[bool, str] | None:
    """(equivalent, method) when normalised strings, plain numbers, collections of numbers or word answers
    decide the pair; None when only symbolic comparison can."""
    if pred == gold:
        return True, "exact"
    a, b = as_value(pred), as_value(gold)
    if a and b:
        return _numbers_equal(a, b), "numeric"
    ca, cb = _numeric_collection(pred), _numeric_collection(gold)
    if ca and cb:
        # a bare list against a tuple is left to math-verify; a set against a bare list is not
        if (ca[0] == "set") == (cb[0] == "set"):
            return _collections_equal(ca, cb), "numeric"
        return None
    if (a and cb) or (b and ca):
        return False, "numeric"  # one number against several
    ma, mb = _matrix(pred), _matrix(gold)
    if ma is not None and mb is not None:
        return _matrices_equal(ma, mb), "numeric"
    if _CHOICE.match(gold) and _CHOICE.match(pred):
        return False, "text"  # two different choice letters (equal ones were caught above)
    if _WORD.match(pred) and _WORD.match(gold) and min(len(pred), len(gold)) >= 3:
        return pred == gold, "text"
    if (a and _WORD.match(gold)) or (b and _WORD.match(pred)):
        return False, "text"  # a number against a word answer ("Evelyn", "even")
    if "=" not in pred + gold and "," not in pred + gold:
        same = expressions_equal(pred, gold)
        if same is not None:
            return same, "numeric"
    if (a and _varies(gold)) or (b and _varies(pred)):
        return False, "numeric"  # a constant against an expression in x, or against an interval/union/tuple
    return None


def _varies(s: str) -> bool:
    """Not a single constant: has a free single-letter variable (`\\cot x`), or is a union, tuple or matrix."""
    if "\\cup" in s or s.startswith("\\begin") or len(_split_top_level(s)) > 1:
        return True
    names = variables_of(s)
    return bool(names) and not re.search(r"\\text|\\operatorname|\\mathrm", s)


_MATRIX = re.compile(r"^\\begin\{([pbv]?matrix)\}(.*)\\end\{\1\}$", re.S)


def _matrix(s: str) -> list[list[tuple]] | None:
    """Rows of constant values of a pmatrix/bmatrix/matrix; None if it is not one or holds non-constants."""
    m = _MATRIX.match(s)
    if not m:
        return None
    rows = [[as_value(cell) for cell in row.split("&")] for row in m.group(2).split("\\\\") if row.strip()]
    return rows if rows and all(all(row) for row in rows) else None


def _matrices_equal(a: list[list[tuple]], b: list[list[tuple]]) -> bool:
    if [len(r) for r in a] != [len(r) for r in b]:
        return False
    return all(_numbers_equal(x, y) for ra, rb in zip(a, b, strict=True) for x, y in zip(ra, rb, strict=True))


# ---------------------------------------------------------------- the symbolic path, in a judge process


def symbolic_equal(pred: str, gold: str, timeout: float | None = 5.0) -> bool:
    """math-verify's comparison of two answer strings, in THIS process (the judge calls it, and so does the
    naive baseline of benchmarks/curate_throughput.py). `timeout` uses math-verify's SIGALRM timer, so it
    works in the main thread only; None turns it off (the judge runs its own timer around the call)."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    seconds = None if timeout is None else max(1, round(timeout))
    config = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    parsed_gold = parse(f"${gold}$", extraction_config=config, parsing_timeout=seconds)
    parsed_pred = parse(f"${pred}$", extraction_config=config, parsing_timeout=seconds)
    if not parsed_gold or not parsed_pred:
        return False
    return bool(verify(parsed_gold, parsed_pred, timeout_seconds=seconds))


class _PairTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise _PairTimeout


def _judge_main() -> None:
    """Judge process loop: one JSON request per stdin line -> one JSON reply per line on the original stdout.
    Anything else that prints (sympy warnings) goes to stderr, so it cannot corrupt the replies. Its own
    timer (setitimer: sub-second, one for parse + verify) answers "timeout" before the caller has to kill it."""
    import logging
    import signal
    import warnings

    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    import math_verify  # noqa: F401  - imported before "ready" so that startup time is not billed to a pair

    signal.signal(signal.SIGALRM, _on_alarm)
    replies.write('{"ready": true}\n')
    for line in sys.stdin:
        request = json.loads(line)
        signal.setitimer(signal.ITIMER_REAL, max(0.05, 0.8 * request["timeout"]))
        try:
            reply = {"ok": symbolic_equal(request["pred"], request["gold"], None)}
        except _PairTimeout:
            reply = {"ok": False, "timeout": True}
        except BaseException as err:  # noqa: BLE001 - any failure of sympy means "not shown equal"
            reply = {"ok": False, "error": type(err).__name__}
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        replies.write(json.dumps(reply) + "\n")


class _Judge:
    """One judge process, used by one caller at a time; killed and restarted when a pair overruns."""

    STARTUP_LIMIT = 120.0  # importing sympy on a loaded 2-core machine can take a while

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self._buffer = b""

    def _start(self) -> None:
        package_root = str(ROOT)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from distill.grading.answers import _judge_main; _judge_main()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, close_fds=True,
        )
        self._buffer = b""
        if self._read_line(self.STARTUP_LIMIT) is None:
            self.close()
            raise RuntimeError("the math-verify judge process did not start; is math-verify installed?")

    def _read_line(self, seconds: float) -> bytes | None:
        deadline = time.monotonic() + seconds
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None  # the judge died (out of memory, killed)
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def ask(self, pred: str, gold: str, timeout: float) -> bool | None:
        """True/False from math-verify; None when it ran out of time (after `timeout` at the latest: a judge
        that does not answer by then is killed, and the next question starts a new one)."""
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        request = json.dumps({"pred": pred, "gold": gold, "timeout": timeout}) + "\n"
        try:
            self.proc.stdin.write(request.encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.close()
            return None
        line = self._read_line(timeout)
        if line is None:
            self.close()
            return None
        reply = json.loads(line)
        return None if reply.get("timeout") else bool(reply.get("ok"))

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            for stream in (self.proc.stdin, self.proc.stdout):
                stream.close()
            self.proc = None


class _JudgePool:
    """Idle judges of this process; a thread takes one, or starts one, for as long as it needs it. A forked
    child gets a fresh pool (the parent's judge pipes are not its own)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.idle: list[_Judge] = []
        self.every: list[_Judge] = []

    @contextmanager
    def judge(self):
        with self.lock:
            judge = self.idle.pop() if self.idle else None
            if judge is None:
                judge = _Judge()
                self.every.append(judge)
        try:
            yield judge
        finally:
            with self.lock:
                self.idle.append(judge)

    def close(self) -> None:
        if os.getpid() == self.pid:
            for judge in self.every:
                judge.close()
        self.idle, self.every = [], []


_POOL = _JudgePool()
_POOL_LOCK = threading.Lock()
atexit.register(lambda: _POOL.close())


def _pool() -> _JudgePool:
    global _POOL
    with _POOL_LOCK:
        if _POOL.pid != os.getpid():
            _POOL = _JudgePool()
        return _POOL


# ---------------------------------------------------------------- verdicts, cached

_CACHE: dict[tuple[str, str], tuple[bool, str]] = {}
_CACHE_MAX = 200_000


def _remember(key: tuple[str, str], verdict: tuple[bool, str]) -> tuple[bool, str]:
    if verdict[1] == "symbolic":  # a timeout may pass on a less loaded machine: do not make it permanent
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.clear()
        _CACHE[key] = verdict
    return verdict


def _symbolic_verdict(pred: str, gold: str, timeout: float) -> tuple[bool, str]:
    with _pool().judge() as judge:
        try:
            ok = judge.ask(clean_answer(pred), clean_answer(gold), timeout)
        except RuntimeError:
            return False, "error"
    return (False, "timeout") if ok is None else (ok, "symbolic")


def judge_pair(pred: str | None, gold: str, timeout: float = 5.0) -> tuple[bool, str]:
    """(equivalent, method): the cheap path, then the cache, then a judge process."""
    if pred is None or not pred.strip():
        return False, "no_answer"
    key = (normalize_answer(pred), normalize_answer(gold))
    cheap = cheap_verdict(*key)
    if cheap is not None:
        return cheap
    if key in _CACHE:
        return _CACHE[key]
    return _remember(key, _symbolic_verdict(pred, gold, timeout))


def is_equivalent(pred: str, gold: str, timeout: float = 5.0) -> bool:
    """Whether answer `pred` equals reference `gold` (both answer strings, not whole completions). Never
    takes much longer than `timeout` seconds, whatever sympy does; a timeout means False."""
    return judge_pair(pred, gold, timeout)[0]


def grade(completion: str, gold: str, timeout: float = 5.0) -> Verdict:
    """Extract the final answer of a reasoning completion and compare it with the reference."""
    answer = extract_answer(completion)
    correct, method = judge_pair(answer, gold, timeout)
    return Verdict(answer, correct, method)


def equivalent_many(
    pairs: Sequence[tuple[str | None, str]], timeout: float = 5.0, workers: int | None = None
) -> list[tuple[bool, str]]:
    """(equivalent, method) for many (pred, gold) pairs: cheap path and cache in-process, then each distinct
    undecided pair once, spread over up to `workers` judge processes (default: one per core)."""
    from concurrent.futures import ThreadPoolExecutor

    results: list[tuple[bool, str] | None] = [None] * len(pairs)
    pending: dict[tuple[str, str], list[int]] = {}
    raw: dict[tuple[str, str], tuple[str, str]] = {}
    for i, (pred, gold) in enumerate(pairs):
        if pred is None or not pred.strip():
            results[i] = (False, "no_answer")
            continue
        key = (normalize_answer(pred), normalize_answer(gold))
        results[i] = cheap_verdict(*key) or _CACHE.get(key)
        if results[i] is None:
            pending.setdefault(key, []).append(i)
            raw.setdefault(key, (pred, gold))
    if pending:
        # a judge costs ~1 s to start: only start as many as there is work for
        n = max(1, min(workers or os.cpu_count() or 1, len(pending) // 20 + 1))
        with ThreadPoolExecutor(max_workers=n) as ex:
            verdicts = ex.map(lambda key: _remember(key, _symbolic_verdict(*raw[key], timeout)), pending)
            for key, verdict in zip(pending, verdicts, strict=True):
                for i in pending[key]:
                    results[i] = verdict
    return results  # type: ignore[return-value]


def grade_many(
    completions: Sequence[str], golds: Sequence[str], timeout: float = 5.0, workers: int | None = None
) -> list[Verdict]:
    """`grade` for many completions at once (eval: k samples x N problems)."""
    answers = [extract_answer(c) for c in completions]
    verdicts = equivalent_many(list(zip(answers, golds, strict=True)), timeout, workers)
    return [Verdict(a, ok, method) for a, (ok, method) in zip(answers, verdicts, strict=True)]


def close_judges() -> None:
    """Stop this process's judge processes (they also exit on their own when it exits)."""
    _pool().close()
