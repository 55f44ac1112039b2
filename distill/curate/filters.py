"""The curate filter chain: one pure function per filter, `(candidate, params) -> None | why`, and the FILTERS
registry that the config's `filters:` list names. A filter's name is the condition it rejects and the reason
recorded for every row it drops.

    from distill.curate.filters import FILTERS, Candidate
    FILTERS["repetition"].check(candidate, RepetitionParams())   # None (keep) or "unit repeated 57 times"

Row filters run in the curate workers, one trace at a time, in the configured order (the first that objects
drops the row). Set filters (`duplicate`, `per_prompt_cap`) need every surviving row and run afterwards, in
distill/curate/run.py's `select` (with dedup.py's keys and caps). A Candidate is a trace after tag normalisation:
    Candidate(id="math-train-0007/1", prompt_id="math-train-0007", reference="5", is_reasoning=True,
              user="What is $2+3$?\\nPlease reason step by step, ...", reasoning="2 plus 3 is 5.",
              answer_text="The answer is $\\\\boxed{5}$.", finish_reason="stop", ...)

Which rows a rule applies to: R1's chain-of-thought rules (mixed_language, long_paragraph, code_block) look at
the reasoning of reasoning rows only, and code_block at math rows only (a code trace reasons in code); the answer
rules (no_answer, wrong_answer) apply where a reference answer exists; the code rules (no_code, failed_tests,
code_timeout) to code rows, those with `tests` (their program runs in the sandbox, distill/curate/code_rows.py);
non-reasoning rows (deepseek-v3, no reference) meet only truncated, bad_think_format, repetition,
the length bounds, duplicates, the cap and decontamination.
"""

from __future__ import annotations

import collections
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from distill.core.errors import DistillError
from distill.core.manifest import read_manifest
from distill.core.protocol import THINK_CLOSE, THINK_OPEN
from distill.grading.answers import extract_boxed, judge_pair
from distill.grading.programs import describe, extract_code
from distill.grading.sandbox import Limits


@dataclass
class Candidate:
    """One trace as the filters see it (see the module docstring)."""

    id: str
    prompt_id: str
    source: str | None
    teacher: str
    finish_reason: str
    problem: str
    reference: str | None
    user: str
    completion: str  # after tag normalisation
    is_reasoning: bool
    reasoning: str | None
    answer_text: str | None
    prompt_tokens: int = 0  # as the teacher's backend counted them (0: unknown)
    completion_tokens: int = 0
    count_tokens: Callable[[Candidate], int] = field(repr=False, default=lambda c: 0)
    grader: dict[str, Any] = field(default_factory=dict, repr=False)  # verdict method, filled by wrong_answer
    tests: str | None = None  # code rows: their tests (schema.CODE); None on math rows
    entry_point: str | None = None
    code_result: Any = field(default=None, repr=False)  # the sandbox's Result, filled by distill.curate.code_rows

    @property
    def is_code(self) -> bool:
        return self.tests is not None

    @cached_property
    def code(self) -> str | None:
        """The program of a code row: the last fenced Python block after `</think>`."""
        return extract_code(self.completion) if self.is_code else None

    @cached_property
    def assistant(self) -> str:
        """The assistant turn of the SFT example: R1's `<think>\\n...\\n</think>\\n\\n answer` for reasoning rows,
        the plain response otherwise."""
        if self.is_reasoning:
            return f"{THINK_OPEN}\n{self.reasoning or ''}\n{THINK_CLOSE}\n\n{self.answer_text or ''}"
        return (self.answer_text or "").strip()

    @cached_property
    def num_tokens(self) -> int:
        return self.count_tokens(self)

    @cached_property
    def final_answer(self) -> str | None:
        return extract_boxed(self.answer_text) if self.answer_text else None

    def answer_correct(self, timeout: float = 5.0) -> bool:
        """The boxed final answer against the reference (distill.grading.answers), judged once per trace."""
        if "answer_correct" not in self.grader:
            ok, self.grader["method"] = judge_pair(self.final_answer, self.reference or "", timeout)
            self.grader["answer_correct"] = ok
        return self.grader["answer_correct"]

    def correct(self, timeout: float = 5.0) -> bool | None:
        """Whether this sample is correct as eval's pass@1 scores one sample: the last box after `</think>`
        against the reference, no `</think>` or no box is wrong; a sample generate cut off (finish_reason
        length or error) is wrong too. A code row is correct when its program passed the sandbox. None: not
        gradable (no reference; a code row whose program never ran)."""
        if self.is_code:
            return None if self.code_result is None else self.code_result.status == "passed"
        if self.reference is None:
            return None
        return self.finish_reason not in ("length", "error") and self.answer_correct(timeout)


# ---------------------------------------------------------------- parameters (config sections, one per filter)


@dataclass
class NoParams:
    pass


@dataclass
class NoAnswerParams:
    require_box_without_reference: bool = field(
        default=False, metadata={"help": "Also drop reasoning rows without a reference answer that box nothing."})


@dataclass
class WrongAnswerParams:
    timeout: float = field(default=5.0, metadata={"help": "Seconds per symbolic check; a timeout counts as wrong."})


@dataclass
class MixedLanguageParams:
    min_foreign_chars: int = field(
        default=2, metadata={"help": "Drop when the reasoning holds this many letters of a script the prompt does "
                             "not use (Latin is always allowed: it is the script of math notation)."})


@dataclass
class RepetitionParams:
    max_compression_ratio: float = field(
        default=6.0, metadata={"help": "zlib ratio above which text is a loop (finished real traces: <= 4.7)."})
    max_consecutive_repeats: int = field(
        default=8, metadata={"help": "The same sentence/line this many times in a row is a loop."})
    max_unit_repeats: int = field(
        default=30, metadata={"help": "The same sentence/line (>= 20 chars) this many times anywhere is a loop."})


@dataclass
class LongParagraphParams:
    max_chars: int = field(default=3000, metadata={"help": "Longest paragraph of reasoning allowed, in characters."})


@dataclass
class TooLongParams:
    max_tokens: int = field(default=32768, metadata={"help": "Longest example (prompt + response), in tokens."})


@dataclass
class TooShortParams:
    min_tokens: int = field(default=8, metadata={"help": "Shortest example (prompt + response), in tokens."})


@dataclass
class DuplicateParams:
    completions: bool = field(default=True, metadata={"help": "Drop exact duplicates of a normalised completion."})
    prompts: bool = field(default=True, metadata={"help": "Drop rows of prompts that near-duplicate an earlier "
                                                  "prompt (MinHash over word shingles)."})
    threshold: float = field(default=0.9, metadata={"help": "Estimated Jaccard similarity that makes a near-dup."})
    num_perm: int = field(default=128, metadata={"help": "MinHash permutations (more: slower, more precise)."})
    shingle_words: int = field(default=3, metadata={"help": "Words per shingle."})


@dataclass
class PerPromptCapParams:
    max_per_prompt: int = field(default=4, metadata={"help": "Keep at most this many traces per prompt."})
    strategy: Literal["shortest", "random"] = field(
        default="shortest", metadata={"help": "Which to keep: the shortest (ties by id) or a seeded random pick."})
    seed: int = field(default=0, metadata={"help": "Seed of the random strategy."})


@dataclass
class PassRateParams:
    min: float = field(default=0.0, metadata={"help": "Drop prompts whose pass rate (share of their k samples "
                                              "correct) is below this; 0 keeps the ones never solved."})
    max: float = field(default=1.0, metadata={"help": "Drop prompts whose pass rate is above this; 0.75 with k=4 "
                                              "drops exactly the prompts whose every sample was correct."})
    source: str | None = field(default=None, metadata={
        "help": "A second generate dir (a small model's samples of the same prompts, the LIMO / Light-R1 way): "
        "the pass rate is measured on its samples instead of the teacher's; a prompt it lacks has no rate and stays."})

    def __post_init__(self) -> None:
        if not 0 <= self.min <= self.max <= 1:
            raise DistillError(f"pass_rate needs 0 <= min <= max <= 1, got min={self.min} max={self.max}; "
                               "fix --set pass_rate.min/max")
        if self.source is not None:
            manifest = read_manifest(Path(self.source)) if Path(self.source).is_dir() else None
            if not manifest or manifest.get("stage") != "generate":
                raise DistillError(f"pass_rate.source '{self.source}' is not a distill generate output dir (no "
                                   "generate manifest.json); pass the --out of a distill generate run")


@dataclass
class ContaminatedParams:
    ngram: int = field(default=8, metadata={"help": "Word n-gram size; one shared n-gram with an eval problem drops "
                                            "the row (a shorter eval problem must appear whole)."})
    min_overlap: float = field(default=0.25, metadata={
        "help": "Share of an eval problem's distinct n-grams the prompt must contain (a copy has 1.0); 0: any one "
        "shared n-gram, the open-r1 rule, which also drops prompts that merely share boilerplate phrasing "
        "(data_cards/README.md has the measurements)."})
    benchmarks: list[str] = field(default_factory=lambda: ["aime24", "aime25", "math500"],
                                  metadata={"help": "Shipped eval sets to decontaminate against."})
    files: list[str] = field(default_factory=list, metadata={
        "help": "More eval sets: .jsonl/.json/.parquet files with a problem (or question/prompt) field."})


# ---------------------------------------------------------------- row filters


def truncated(c: Candidate, p: NoParams) -> str | None:
    """A trace that did not finish. Inputs that never recorded why generation stopped (finish_reason `unknown`,
    distill/curate/formats.py) are judged from the text: a reasoning block never closed, or nothing after it."""
    if c.finish_reason != "unknown":
        return None if c.finish_reason == "stop" else f"finish_reason={c.finish_reason}"
    if c.is_reasoning and c.answer_text is None:
        return "finish_reason unknown; from the text: no </think> (cut off in the reasoning)"
    if not (c.answer_text or "").strip():
        return f"finish_reason unknown; from the text: {'nothing after </think>' if c.is_reasoning else 'empty'}"
    return None


def bad_think_format(c: Candidate, p: NoParams) -> str | None:
    """Reasoning rows need exactly one `<think>` at the start, one `</think>`, non-empty text on both sides;
    a non-reasoning row must not carry think tags at all."""
    text = c.completion
    opens, closes = text.count(THINK_OPEN), text.count(THINK_CLOSE)
    if not c.is_reasoning:
        if opens or closes:
            return "think tags in a non-reasoning response"
        return None if text.strip() else "empty response"
    if opens != 1 or closes != 1:
        return f"{opens} <think> and {closes} </think> tags"
    if not text.lstrip().startswith(THINK_OPEN):
        return "text before <think>"
    if not (c.reasoning or "").strip():
        return "empty reasoning"
    if not (c.answer_text or "").strip():
        return "nothing after </think>"
    return None


def no_answer(c: Candidate, p: NoAnswerParams) -> str | None:
    """A row with a reference must box its final answer (after `</think>` for reasoning rows)."""
    if c.reference is None and not (c.is_reasoning and p.require_box_without_reference):
        return None
    return None if c.final_answer else "no \\boxed{} in the final answer"


def wrong_answer(c: Candidate, p: WrongAnswerParams) -> str | None:
    """Rejection sampling: the boxed answer must equal the reference (distill.grading.answers decides)."""
    if c.reference is None:
        return None
    if c.answer_correct(p.timeout):
        return None
    return f"{c.final_answer!r} != {c.reference!r} ({c.grader['method']})"


# Letters of scripts that signal a language switch. Greek is left out on purpose: it is math notation.
_SCRIPTS = {
    "han": "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff",
    "kana": "\u3040-\u30ff",
    "hangul": "\u1100-\u11ff\uac00-\ud7af",
    "cyrillic": "\u0400-\u04ff",
    "arabic": "\u0600-\u06ff",
    "hebrew": "\u0590-\u05ff",
    "devanagari": "\u0900-\u097f",
    "thai": "\u0e00-\u0e7f",
}
_SCRIPT_RES = {name: re.compile(f"[{ranges}]") for name, ranges in _SCRIPTS.items()}
_ANY_SCRIPT = re.compile("[" + "".join(_SCRIPTS.values()) + "]")


def scripts_in(text: str) -> collections.Counter:
    """Letters per non-Latin script (Latin and Greek are not counted: both are math notation)."""
    if text.isascii() or not _ANY_SCRIPT.search(text):
        return collections.Counter()
    return collections.Counter({n: len(r.findall(text)) for n, r in _SCRIPT_RES.items() if r.search(text)})


def mixed_language(c: Candidate, p: MixedLanguageParams) -> str | None:
    """R1's rule: a chain of thought that switches language. Scripts the prompt itself uses are allowed (a
    Chinese problem may be reasoned about in Chinese; Japanese mixes han and kana)."""
    if not c.is_reasoning or not c.reasoning:
        return None
    found = scripts_in(c.reasoning)
    if not found:
        return None
    allowed = set(scripts_in(c.user))
    if allowed & {"han", "kana"}:
        allowed |= {"han", "kana"}
    foreign = {s: n for s, n in found.items() if s not in allowed}
    total = sum(foreign.values())
    if total >= p.min_foreign_chars:
        return f"{total} letters of {', '.join(sorted(foreign))} in the reasoning"
    return None


# sentence/line units: split at every . ! ? or newline (a decimal point splits too; equal text still splits
# equally), which is 5x faster than a look-behind split on 100 KB traces
_UNITS = re.compile(r"[.!?\n]\s*")


def repetition(c: Candidate, p: RepetitionParams) -> str | None:
    """Degenerate loops: text that compresses far better than prose, or one sentence/line repeated many
    times (in a row, or anywhere). Thresholds are calibrated on ../shared/data/real_traces (finished traces:
    ratio <= 4.7, no sentence twice in a row more than twice)."""
    text = c.completion
    raw = text.encode()
    if len(raw) >= 2000:
        ratio = len(raw) / max(1, len(zlib.compress(raw, 1)))
        if ratio > p.max_compression_ratio:
            return f"compresses {ratio:.1f}x"
    units = [u for u in _UNITS.split(text) if len(u) >= 20]
    repeats = len(units) - len(set(units))
    if repeats + 1 < min(p.max_consecutive_repeats, p.max_unit_repeats):
        return None  # too few repeated units for either rule: the common case, decided in C
    run, best, prev = 0, 0, None
    for unit in units:
        run = run + 1 if unit == prev else 1
        if run > best:
            best = run
        prev = unit
    if best >= p.max_consecutive_repeats:
        return f"a sentence repeated {best} times in a row"
    unit, count = collections.Counter(units).most_common(1)[0]
    if count >= p.max_unit_repeats:
        return f"{unit[:40]!r} repeated {count} times"
    return None


_PARAGRAPHS = re.compile(r"\n\s*\n")


def long_paragraph(c: Candidate, p: LongParagraphParams) -> str | None:
    if not c.is_reasoning or not c.reasoning or len(c.reasoning) <= p.max_chars:
        return None
    longest = max(len(x) for x in _PARAGRAPHS.split(c.reasoning))
    return f"a {longest:,}-character paragraph" if longest > p.max_chars else None


def code_block(c: Candidate, p: NoParams) -> str | None:
    if not c.is_reasoning or not c.reasoning or c.is_code:
        return None
    return "fenced code block in the reasoning" if c.reasoning.count("```") >= 2 else None


def no_code(c: Candidate, p: NoParams) -> str | None:
    return "no ```python block after </think>" if c.is_code and c.code is None else None


def failed_tests(c: Candidate, p: Limits) -> str | None:
    """Rejection sampling for code: the program must pass every test (which test and why, when not)."""
    if not c.is_code or c.code is None:
        return None
    result = sandbox_result(c)
    return None if result.status in ("passed", "timeout") else describe(result)


def code_timeout(c: Candidate, p: NoParams) -> str | None:
    """Kept apart from failed_tests: a time limit is the one verdict that depends on the machine's load."""
    if not c.is_code or c.code is None:
        return None
    result = sandbox_result(c)
    return describe(result) if result.status == "timeout" else None


def sandbox_result(c: Candidate) -> Any:
    """The sandbox's Result for a code row. The worker runs every code row's program before the code filters, many
    at once (distill.curate.code_rows.prefetch), so a filter only reads it."""
    assert c.code_result is not None, f"{c.id}: code filters run after code_rows.prefetch, which sets code_result"
    return c.code_result


def too_long(c: Candidate, p: TooLongParams) -> str | None:
    return f"{c.num_tokens:,} tokens > {p.max_tokens:,}" if c.num_tokens > p.max_tokens else None


def too_short(c: Candidate, p: TooShortParams) -> str | None:
    return f"{c.num_tokens:,} tokens < {p.min_tokens:,}" if c.num_tokens < p.min_tokens else None


# ---------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Filter:
    name: str
    check: Callable[[Candidate, Any], str | None] | None
    params: type
    kind: Literal["row", "set"]
    doc: str


FILTERS: dict[str, Filter] = {
    f.name: f
    for f in [
        Filter("truncated", truncated, NoParams, "row", "finish_reason is not `stop` (length limit, error); when "
               "the input did not record it, no `</think>` or nothing after it"),
        Filter("bad_think_format", bad_think_format, NoParams, "row",
               "not exactly one well-formed `<think>...</think>` with text on both sides"),
        Filter("no_answer", no_answer, NoAnswerParams, "row", "no `\\boxed{}` after `</think>` (rows with a reference)"),
        Filter("wrong_answer", wrong_answer, WrongAnswerParams, "row", "boxed answer not equivalent to the reference"),
        Filter("mixed_language", mixed_language, MixedLanguageParams, "row",
               "reasoning switches to a script the prompt does not use (R1's language-mixing rule)"),
        Filter("repetition", repetition, RepetitionParams, "row", "degenerate loops"),
        Filter("long_paragraph", long_paragraph, LongParagraphParams, "row", "a reasoning paragraph over the limit"),
        Filter("code_block", code_block, NoParams, "row", "fenced code in the reasoning of a math reasoning row"),
        Filter("too_long", too_long, TooLongParams, "row", "more tokens than the upper bound"),
        Filter("too_short", too_short, TooShortParams, "row", "fewer tokens than the lower bound"),
        Filter("no_code", no_code, NoParams, "row", "a code row with no fenced Python block after `</think>`"),
        Filter("failed_tests", failed_tests, Limits, "row",
               "a code row whose program fails a test in the sandbox (wrong answer, exception, memory, forbidden "
               "syscall, process or output limit)"),
        Filter("code_timeout", code_timeout, NoParams, "row", "a code row whose program ran past the time limit"),
        Filter("contaminated", None, ContaminatedParams, "row",
               "prompt shares a word n-gram with an eval problem (AIME 2024/2025, MATH-500, user files)"),
        Filter("pass_rate", None, PassRateParams, "set",
               "prompt's pass rate (share of its k samples correct, before any filter) outside [min, max]"),
        Filter("duplicate", None, DuplicateParams, "set",
               "exact duplicate of an earlier completion, or a prompt that near-duplicates an earlier prompt"),
        Filter("per_prompt_cap", None, PerPromptCapParams, "set", "beyond the per-prompt cap"),
    ]
}

DEFAULT_CHAIN = list(FILTERS)
