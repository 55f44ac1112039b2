"""The configuration of `distill curate` (CurateConfig): import-light, read by the CLI and the
package root without loading the stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from distill.core.config import option
from distill.core.errors import DistillError
from distill.curate.filters import (
    DEFAULT_CHAIN,
    FILTERS,
    ContaminatedParams,
    DuplicateParams,
    LongParagraphParams,
    MixedLanguageParams,
    NoAnswerParams,
    NoParams,
    PassRateParams,
    PerPromptCapParams,
    RepetitionParams,
    TooLongParams,
    TooShortParams,
    WrongAnswerParams,
)
from distill.grading.sandbox import Limits


def section(cls: type, help: str) -> Any:
    """A config field holding one filter's parameters (a nested dataclass; `--set repetition.max_unit_repeats=40`)."""
    return field(default_factory=cls, metadata={"help": help})


SELECT_BY = ("hardest", "longest", "random", "balanced", "shortest_correct")


@dataclass
class SelectParams:
    budget: int | None = field(default=None, metadata={
        "help": "Keep exactly this many examples (all, if fewer pass the filters); the rest are not_selected."})
    by: str = field(default="hardest", metadata={
        "help": "hardest (lowest pass rate first), longest (prompts with the longest responses first), random, "
        "balanced (round-robin over source x difficulty bin, as s1 chose its 1K), shortest_correct (per prompt "
        "its shortest correct sample: short chains for <= 3B students). All but shortest_correct act only with a budget."})
    seed: int = field(default=0, metadata={"help": "Seed of random, balanced and every tie-break."})
    bins: int = field(default=4, metadata={"help": "Difficulty bins of balanced (equal slices of the pass rate)."})

    def __post_init__(self) -> None:
        if self.by not in SELECT_BY:
            raise DistillError(f"unknown select.by '{self.by}'; choose from {', '.join(SELECT_BY)}")
        if self.budget is not None and self.budget <= 0:
            raise DistillError(f"select.budget must be a positive number of examples, not {self.budget}; "
                               "leave it out to keep every row that passes")
        if self.bins < 1:
            raise DistillError(f"select.bins must be at least 1, not {self.bins}")

    @property
    def active(self) -> bool:
        return self.budget is not None or self.by == "shortest_correct"


@dataclass
class CurateConfig:
    src: str = option(help="Traces: a generate output dir, .jsonl/.json/.parquet files or a dir of them, or a hub "
                      "dataset id, in any input format (distill/curate/formats.py).")
    out: str = option(help="Output directory (data/, README.md, curation_report.json). Re-run to resume.")
    input_format: str | None = option(None, help="Input format: trace, flat, generations, conversations, s1k "
                                      "(default: detected from the columns).")
    problem_field: str | None = option(None, help="Input field holding the problem (default: problem, question, ...).")
    completion_field: str | None = option(None, help="Input field holding the completion(s) (default: completion, "
                                          "response, generations, conversations, ...).")
    answer_field: str | None = option(None, help="Input field holding the reference answer (default: answer, "
                                      "reference_answer, ..., solution).")
    id_field: str | None = option(None, help="Input field holding a row id (default: id, uuid, ...; else a hash).")
    source_field: str | None = option(None, help="Input field naming the problem's source (default: source, ...).")
    split: str = option("train", help="Split of a hub dataset.")
    subset: str | None = option(None, help="Subset (config name) of a hub dataset.")
    filters: list[str] = option(DEFAULT_CHAIN, help="The filter chain, in order: row filters first, then the set "
                                "filters duplicate and per_prompt_cap. Leave a name out to switch it off.")
    eval_data_dir: str | None = option(None, help="Folder with aime24.jsonl, aime25.jsonl, math500.jsonl for "
                                       "decontamination (offline); default: load them from the hub.")
    tokenizer: str | None = option(None, help="Tokenizer (hub id or path) that counts num_tokens, e.g. the "
                                   "student's; default: the teacher's reported token counts (an estimate).")
    think_tags: list[list[str]] = option([], help="Extra reasoning tag pairs mapped to <think>...</think>, "
                                         "e.g. [['<reasoning>', '</reasoning>']] (Sky-T1's are built in).")
    answer_tags: list[list[str]] = option([], help="Extra tag pairs around the final answer, removed.")
    non_reasoning_teachers: list[str] = option([], help="Teachers whose rows are non-reasoning, besides the "
                                               "registry's (deepseek-v3).")
    num_proc: int | None = option(None, help="Worker processes (default: one per core; 1: run in this process).")
    unit_rows: int = option(2000, help="Rows per work unit when one input file holds many (resume granularity).")
    shard_rows: int = option(10000, help="Rows per output shard.")
    dataset_name: str | None = option(None, help="Name in the dataset card (default: the output folder's name).")
    license: str | None = option(None, help="License in the card (default: from the teacher, e.g. mit for R1).")
    force: bool = option(False, help="Start over: delete curate's previous output in OUT (other files stay).")
    allow_incomplete: bool = option(False, help="Curate a generation in parts (generate --part I/N) although some "
                                    "parts are not complete: take the rows written so far.")
    truncated: NoParams = section(NoParams, "truncated: no parameters.")
    bad_think_format: NoParams = section(NoParams, "bad_think_format: no parameters.")
    no_answer: NoAnswerParams = section(NoAnswerParams, "no_answer parameters.")
    wrong_answer: WrongAnswerParams = section(WrongAnswerParams, "wrong_answer parameters.")
    mixed_language: MixedLanguageParams = section(MixedLanguageParams, "mixed_language parameters.")
    repetition: RepetitionParams = section(RepetitionParams, "repetition parameters.")
    long_paragraph: LongParagraphParams = section(LongParagraphParams, "long_paragraph parameters.")
    code_block: NoParams = section(NoParams, "code_block: no parameters.")
    too_long: TooLongParams = section(TooLongParams, "too_long parameters.")
    too_short: TooShortParams = section(TooShortParams, "too_short parameters.")
    contaminated: ContaminatedParams = section(ContaminatedParams, "contaminated parameters.")
    duplicate: DuplicateParams = section(DuplicateParams, "duplicate parameters.")
    per_prompt_cap: PerPromptCapParams = section(PerPromptCapParams, "per_prompt_cap parameters.")
    pass_rate: PassRateParams = section(PassRateParams, "pass_rate parameters (a set filter over whole prompts).")
    select: SelectParams = section(SelectParams, "The select step after the filters: a budget and how to choose.")
    answer_filter: bool = option(True, help="off: keep rows whose answer is wrong or unverifiable (no_answer and "
                                 "wrong_answer do not drop) but that pass every other filter, marked verified: "
                                 "false in the data (OpenThoughts3 found filtering answers bought nothing).")
    reference: Literal["given", "majority"] = option("given", help="majority: a prompt without a reference answer "
                                                     "is graded against the majority answer of its k samples "
                                                     "(equivalent answers vote together; a tie gives none).")
    no_code: NoParams = section(NoParams, "no_code: no parameters.")
    failed_tests: Limits = section(Limits, "failed_tests: the sandbox's limits (code_timeout uses them too).")
    code_timeout: NoParams = section(NoParams, "code_timeout: no parameters (the limits are failed_tests').")

    def __post_init__(self) -> None:
        unknown = [f for f in self.filters if f not in FILTERS]
        if unknown:
            raise DistillError(f"unknown filter(s) {', '.join(unknown)} in filters; choose from {', '.join(FILTERS)}")
        if len(set(self.filters)) != len(self.filters):
            raise DistillError("a filter is listed twice in filters; list each once")
        kinds = [FILTERS[f].kind for f in self.filters]
        if "set" in kinds and "row" in kinds[kinds.index("set"):]:
            raise DistillError("set filters (duplicate, per_prompt_cap) need every surviving row: list them after "
                               f"the row filters in filters (got {', '.join(self.filters)})")
        for pair in self.think_tags + self.answer_tags:
            if len(pair) != 2 or not all(pair):
                raise DistillError(f"tag pair {pair!r} must be [open, close], two non-empty strings")
        if self.unit_rows < 1 or self.shard_rows < 1:
            raise DistillError("unit_rows and shard_rows must be positive")
        if self.num_proc is not None and self.num_proc < 1:
            raise DistillError(f"num_proc must be at least 1, not {self.num_proc}")

    def params(self, name: str) -> Any:
        return getattr(self, name)
