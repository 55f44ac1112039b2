"""The one grader of the project: find a completion's final answer and decide whether it equals the reference.
Curate uses it to keep only correct traces, eval to score students; both must agree on what "correct" means.

    from distill.grading.answers import grade, is_equivalent, grade_many
    grade("<think>\\n6 * 7 = 42\\n</think>\\n\\nThe answer is $\\boxed{42}$.", "42")
    # Verdict(answer='42', correct=True, method='exact')
    is_equivalent("\\dfrac{1}{2}", "0.5")                     # True, decided without sympy
    grade_many(completions, golds)                             # many at once: cache + parallel symbolic checks

The R1 protocol: the answer is the last `\\boxed{...}` (or `\\fbox{...}`) AFTER `</think>`, or the boxes that end
the text side by side (`\\boxed{-2} and \\boxed{1}`: one multi-valued answer, `-2, 1`); a completion that never
closes its reasoning has no answer, whatever it boxed while thinking. Comparison runs in two tiers:

1. a cheap path, in-process, microseconds (Verdict.method exact, numeric or text). Normalisation first:
   `\\dfrac`/`\\tfrac`, `\\left`/`\\right`, spacing, degrees, percent, dollars, thousands separators, `\\text{}` and
   unit words, labels (`x =`, `AB =`, `|AB| =`, `f(x) =`), chains (`n = 2 + 3 = 5`), `\\approx`, AIME zero
   padding. Then values: numbers compare as exact fractions; constant expressions (radicals, pi, i, trig/log)
   are evaluated, exactly where possible; expressions in single-letter variables are compared at three
   generic points; tuples, intervals, sets (with `\\pm`, or of points), matrices element-wise; word and
   choice answers as words. It decides ~97-99% of real pairs, wrong ones included.
   It says "equal" when it is sure and "unequal" only when it is sure too: an equation it cannot reduce to a
   value (`2x - y + 3 = 0`) goes to the judge whole.
2. math-verify's symbolic comparison for the rest (relations, unions of intervals, `e`, subscripts, ...). It
   runs in a separate "judge" process that the caller kills when it overruns `timeout`: math-verify's own
   timeout is signal.alarm, which works only in the main thread of the main interpreter and cannot interrupt
   sympy stuck in C (a huge integer power), so a hard limit needs a process boundary. Judges are started
   with subprocess (not multiprocessing), so callers may be threads, daemonic pool workers or forked
   children. A pair that times out counts as not equivalent (Verdict.method == "timeout").

Verdicts of (normalised pred, normalised gold) are cached per process, so the k samples of one prompt that box
the same answer cost one symbolic check. Public API: split_think, normalize_tags, extract_boxed, extract_answer,
is_equivalent, grade, Verdict, grade_many, equivalent_many (batches), judge_pair (verdict + method),
normalize_answer, strip_label, is_label.
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


# What may stand between two boxes of one answer: spacing, math delimiters, commas, "and"/"or" (bare or in
# \text{}), line breaks. Anything else (a word, a sentence) means the earlier box is a separate statement.
_BOX_GAP = re.compile(
    r"^(?:\s|\$|\\[()\[\]]|[,;&]|\\\\|\\q?quad\b|\\[,;:! ]|~|\band\b|\bor\b"
    # one way only to match each space: runs of optional spaces side by side backtrack quadratically on a
    # long unclosed `\text{`, and this runs in the caller's process, outside any time limit
    r"|\\(?:text|mathrm|textnormal)\s*\{\s*(?:,\s*)?(?:(?:and|or)\s*)?\})*$"
)


def extract_boxed(text: str) -> str | None:
    """Content of the last complete `\\boxed{...}`/`\\fbox{...}` in `text` (nested braces kept; `\\boxed 5`
    accepted), stripped; None when there is none. A box cut off by truncation is skipped.

    Several boxes that end the text side by side (`\\boxed{-2} \\quad \\text{and} \\quad \\boxed{1}`) are one
    multi-valued answer, returned as the list `-2, 1` (repeats dropped), which the grader compares with a
    multi-valued reference as a set, as math-verify does. Boxes with words between them are separate
    statements ("first \\boxed{1}, finally \\boxed{2}"): the last one is the answer."""
    boxes = []  # (content, start, end) of complete boxes, in order
    for m in _BOX_RE.finditer(text):
        span = _box_span(text, m.end())
        if span and span[0]:
            boxes.append((span[0], m.start(), span[1]))
    if not boxes:
        return None
    group = [boxes[-1]]
    for box in reversed(boxes[:-1]):
        if box[2] > group[-1][1] or not _BOX_GAP.match(text[box[2] : group[-1][1]]):
            break  # overlapping (a box inside a box) or separated by words
        group.append(box)
    items = list(dict.fromkeys(content for content, _, _ in reversed(group)))
    return ", ".join(items)


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
_PERCENT = re.compile(r"\\%|%|\bpercent(?:age)?\b|\bpct\b")
_DOLLARS = re.compile(r"\\\$|\$|\bdollars?\b|\\textdollar\b")
# Relation signs that may end a label (`x =`, `AB =`, `x \\in`, `x \\approx`); `=` of `<=`, `>=`, `!=`, `\\=` excluded.
_RELATION = re.compile(r"(?<![<>!\\])=(?!=)|\\approx(?![a-zA-Z])|≈|\\in(?![a-zA-Z])")
# What a label may be made of: letters, Greek and geometry commands, bars, colons, brackets; no digit, no operator
# (digits in subscripts and function arguments are removed first: a_1, S_{10}, f(2))
_LABEL_TOKEN = re.compile(
    r"[A-Za-z|:,()\[\]{}' ]|\\(?:alpha|beta|gamma|delta|theta|phi|varphi|psi|omega|lambda|mu|rho|sigma|tau|"
    r"angle|measuredangle|triangle|overline|overrightarrow|vec|hat|widehat|frac|dfrac|tfrac|sin|cos|tan|cot|sec|"
    r"csc|log|ln|lvert|rvert|vert|mid|text|mathrm|operatorname|mathbf|mathit|left|right|\{|\}|\|)(?![a-zA-Z])"
)
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
_THOUSANDS = re.compile(r"^[+-]?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?$")  # 0,111 is no thousands number
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


def clean_answer(text: str, keep_relations: bool = False) -> str:
    """Semantic normalisation that keeps spaces (the form handed to math-verify): delimiters, text wrappers,
    units, degrees, percent, dollars, labels (`x =`, `AB =`, `f(x) =`, see strip_label) and LaTeX spelling
    variants removed or unified. `keep_relations` keeps labels and equations whole: math-verify needs
    `y = 2x + 3` itself to compare it with the implicit `2x - y + 3 = 0`."""
    s = _strip_delimiters(text)
    # `10,\!080` and `14{,}916` are thousands separators: written without the space that makes `32, 349` a list
    s = re.sub(r"(?<=\d)(?:,\\!|\{,\})\s*(?=\d{3}(?!\d))", ",", s)
    s = _unwrap_commands(s, _TEXT_CMDS)
    s = s.replace("\\left", "").replace("\\right", "").replace("\\bigl", "").replace("\\bigr", "")
    s = re.sub(r"\\[dtc]frac(?![a-zA-Z])", r"\\frac", s)
    s = _SPACES.sub(" ", s)
    s = _DEGREES.sub("", s)
    s = _PERCENT.sub("", s)
    s = _DOLLARS.sub("", s)
    s = _strip_units(s.strip())
    s = s if keep_relations else strip_label(s)
    s = re.sub(r"\\frac\s*(\d)\s*(\d)", r"\\frac{\1}{\2}", s)  # \frac12, \frac 59
    s = re.sub(r"\\frac\s*(\d)\s*\{", r"\\frac{\1}{", s)  # \frac9{19}
    s = re.sub(r"\\frac\s*(\{[^{}]*\})\s*(\d)", r"\\frac\1{\2}", s)  # \frac{1}2
    s = re.sub(r"\\sqrt\s*(\d|[a-zA-Z](?![a-zA-Z]))", r"\\sqrt{\1}", s)  # \sqrt2
    s = re.sub(r"_\{(\w+)\}", r"_\1", s)  # 4210_{5} -> 4210_5
    s = re.sub(r"\^\{(\w)\}", r"^\1", s)  # x^{2} -> x^2
    return _strip_delimiters(s).strip()


def _split_relations(s: str) -> tuple[list[str], list[str]]:
    """(parts, signs) of `s` cut at the relation signs outside brackets: `x = 5+1 = 6` -> ([x, 5+1, 6], [=, =])."""
    parts, signs, depth, start = [], [], 0, 0
    for m in re.finditer(r"[([{]|[)\]}]|" + _RELATION.pattern, s):
        token = m.group(0)
        if token in "([{":
            depth += 1
        elif token in ")]}":
            depth -= 1
        elif depth == 0:
            parts.append(s[start : m.start()].strip())
            signs.append(token)
            start = m.end()
    parts.append(s[start:].strip())
    return parts, signs


def is_label(s: str) -> bool:
    """Whether the left-hand side of an answer names the quantity rather than computes it: `x`, `AB`, `|AB|`,
    `A:B`, `f(x)`, `a_{10}`, `\\frac{NO}{BO}`, `\\angle ABC`, `(p,q,r)`. Digits and operators make it an
    expression (`2x - y + 3`), whose equation the grader must not cut in two."""
    s = re.sub(r"_\{[^{}]*\}|_\w", "", s)  # subscripts: a_1, S_{10}
    s = re.sub(r"(?<=[A-Za-z])\([^()]*\)", "", s)  # function arguments: f(2), P(A)
    rest = _LABEL_TOKEN.sub("", s)
    return not rest and bool(re.search(r"[A-Za-z]", s))


def strip_label(s: str) -> str:
    """The value of a labelled or chained answer: `AB = 4`, `|AB| = 4`, `f(x) = 4`, `x \\approx 4`, `n = 2 + 2 = 4`
    and `5 - 1 = 4` all -> `4`; `x = \\frac{1}{3} \\approx 0.33` -> `\\frac{1}{3}` (the exact value, not its
    approximation); `x \\in [1,2]` -> `[1,2]`. An equation whose left side is an expression in variables
    (`2x - y + 3 = 0`, `0 = x - 1`) is kept whole, and so is a list (`x=1, y=2`: items are read one by one)."""
    if "=" not in s and "\\approx" not in s and "≈" not in s and "\\in" not in s:
        return s
    parts, signs = _split_relations(s)
    if len(parts) < 2 or not all(parts) or len(_split_top_level(s)) > 1:
        return s
    if any(sign.startswith("\\in") for sign in signs[1:]):
        return s  # `x = y \\in ...`: not a label
    constant_chain = all(as_value(_squash(p)) is not None for p in parts)
    if not (is_label(parts[0]) or constant_chain):
        return s
    signs = ["\\approx" if sign == "≈" else sign for sign in signs]  # models write both
    if "\\approx" in signs and signs[0] != "\\approx":
        return parts[signs.index("\\approx")]  # the exact value the approximation follows
    return parts[-1]


def _squash(s: str) -> str:
    return re.sub(r"\s+", "", s)


_WHITESPACE = re.compile(r"(\\[a-zA-Z]+)\s+(?=[a-zA-Z])|\s+")


@functools.lru_cache(maxsize=65536)  # golds repeat k times per prompt, and answers repeat across samples
def normalize_answer(text: str) -> str:
    """The canonical string of an answer: `clean_answer` without any whitespace, thousands separators,
    zero padding or choice parentheses; equal strings mean equal answers (the converse needs more work)."""
    # drop all whitespace but the space that ends a command before a letter: `\\cot x` must not become `\\cotx`
    clean = clean_answer(text)
    s = _WHITESPACE.sub(lambda m: m.group(1) + " " if m.group(1) else "", clean)
    if _THOUSANDS.match(s) and not re.search(r",\s", clean):  # `32, 349` is a list of two numbers
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
    but 0.33 != 1/3 and 3.14159 != pi), and also within a relative 1e-4 (about 4 significant digits): 6 fixed
    places alone call 0.0000671 equal to 0.0000672 (math-verify does), while 0.00199 = 2/1005 still holds.
    Other irrationals within a relative 1e-9, far below any difference between two distinct contest answers."""
    x, y = a[0], b[0]
    if x == y:
        return True
    if isinstance(x, Fraction) and isinstance(y, Fraction) and not (a[1] or b[1]):
        return False
    x, y = complex(x), complex(y)
    if not (cmath.isfinite(x) and cmath.isfinite(y)):
        return False
    if a[1] or b[1]:
        places = round(x.real, 6) == round(y.real, 6) and round(x.imag, 6) == round(y.imag, 6)
        return places and abs(x - y) <= 1e-4 * max(abs(x), abs(y))
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


def _encloses(s: str) -> bool:
    """Whether the bracket that opens `s` is the one that closes it: `(1,2)`, not `(1,2),(3,4)` or `(0,9)\\cup(9,36)`."""
    depth = 0
    for i, c in enumerate(s):
        depth += 1 if c in "([{" else -1 if c in ")]}" else 0
        if depth == 0:
            return i == len(s) - 1
    return False


def _as_collection(s: str) -> tuple[str, list[str]] | None:
    """(kind, items) of a tuple/interval ("ordered" plus its brackets), or of a set or bare list ("set")."""
    if s.startswith("\\{") and s.endswith("\\}") and _encloses(s[1:]):
        return "set", _split_top_level(s[2:-2])
    if len(s) >= 2 and s[0] in "([" and s[-1] in ")]" and _encloses(s):
        items = _split_top_level(s[1:-1])
        return ("ordered" + s[0] + s[-1], items) if len(items) >= 2 and all(items) else None
    items = _split_top_level(s)
    return ("set", _same_label_values(items)) if len(items) >= 2 and all(items) else None


def _same_label_values(items: list[str]) -> list[str]:
    """`x=1, x=-2` -> `1, -2`: the roots of one unknown. Items under different labels (`x=1, y=2`) stay as they
    are: they make a point, not a set, and are left to math-verify."""
    split = [_split_relations(x) for x in items]
    if all(len(parts) == 2 and signs == ["="] and is_label(parts[0]) for parts, signs in split):
        if len({parts[0] for parts, _ in split}) == 1:
            return [parts[1] for parts, _ in split]
    return items


def _numeric_collection(s: str) -> tuple[str, list[tuple[Fraction, bool]]] | None:
    """A collection of constants; `a \\pm b` counts as the set {a + b, a - b}."""
    coll = _as_collection(s) or (("set", [s]) if "\\pm" in s else None)
    if coll is None:
        return None
    items = coll[1]
    if coll[0] == "set" and any("\\pm" in x for x in items):
        items = [y for x in items for y in ([x.replace("\\pm", "+", 1), x.replace("\\pm", "-", 1)]
                                            if x.count("\\pm") == 1 else [x])]
    # an item is a constant or a tuple of constants: `(2,2),(6,2)` is a set of two points
    numbers = [as_value(x) or (_numeric_collection(x) if x[:1] in "([" and _encloses(x) else None) for x in items]
    return (coll[0], numbers) if all(numbers) else None


def _collections_equal(a: tuple[str, list], b: tuple[str, list]) -> bool:
    if len(a[1]) != len(b[1]) or (a[0] == "set") != (b[0] == "set"):
        return False
    if a[0] == "set":
        return _same_multiset(a[1], b[1])
    return a[0] == b[0] and all(_items_equal(x, y) for x, y in zip(a[1], b[1], strict=True))


def _items_equal(x: tuple, y: tuple) -> bool:
    """Two collection items: constants (value, decimal) or collections (kind, items), never one of each."""
    if isinstance(x[1], list) or isinstance(y[1], list):
        return isinstance(x[1], list) and isinstance(y[1], list) and _collections_equal(x, y)
    return _numbers_equal(x, y)


def _same_multiset(xs: list, ys: list) -> bool:
    """Unordered comparison of values (complex ones cannot be sorted): match each x to an unused equal y."""
    unused = list(ys)
    for x in xs:
        match = next((i for i, y in enumerate(unused) if _items_equal(x, y)), None)
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
    if _RELATION.search(pred + gold):
        return None  # an equation left whole (`2x - y + 3 = 0`): only math-verify can say it is not the answer
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
        p, g = clean_answer(pred), clean_answer(gold)
        if _RELATION.search(p + g) or _relabelled(pred, gold):
            # an equation is left on one side: math-verify compares it with the other side's own equation
            # (`2x - y + 3 = 0` with `y = 2x + 3`), which stripping `y =` from the reference would have lost
            p, g = clean_answer(pred, keep_relations=True), clean_answer(gold, keep_relations=True)
        try:
            ok = judge.ask(p, g, timeout)
        except RuntimeError:
            return False, "error"
    return (False, "timeout") if ok is None else (ok, "symbolic")


def _relabelled(pred: str, gold: str) -> bool:
    """Both sides are equations in variables under different labels (`x = 2y + 3` against `y = (x - 3)/2`): their
    right-hand sides alone cannot tell that the lines are the same, so the pair is compared as equations."""
    if "=" not in pred or "=" not in gold:
        return False
    split = [_split_relations(clean_answer(x, keep_relations=True)) for x in (pred, gold)]
    if not all(len(parts) == 2 and signs == ["="] and is_label(parts[0]) for parts, signs in split):
        return False
    # `x = 5` against `y = 5`: a value under another name is still the value asked for (as before)
    constants = all(as_value(normalize_answer(parts[1])) is not None for parts, _ in split)
    return not constants and _squash(split[0][0][0]) != _squash(split[1][0][0])


def _pair_key(pred: str, gold: str) -> tuple[str, str]:
    """The cache key and the cheap path's input: both answers normalised; relabelled equations keep their
    labels (their key then holds `=`, so the cheap path leaves them to the judge, and the cache keeps them
    apart from the bare values)."""
    if _relabelled(pred, gold):
        return _squash(clean_answer(pred, keep_relations=True)), _squash(clean_answer(gold, keep_relations=True))
    return normalize_answer(pred), normalize_answer(gold)


def judge_pair(pred: str | None, gold: str, timeout: float = 5.0) -> tuple[bool, str]:
    """(equivalent, method): the cheap path, then the cache, then a judge process."""
    if pred is None or not pred.strip():
        return False, "no_answer"
    key = _pair_key(pred, gold)
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
        key = _pair_key(pred, gold)
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
