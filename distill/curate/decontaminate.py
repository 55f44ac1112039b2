"""Decontamination: the eval sets curate checks the traces against, and the n-gram index that finds a problem
that shares a long word run with one of them.

    sets = load_eval_sets(["aime24", "aime25", "math500"], eval_data_dir="../shared/data")
    index = NgramIndex(sets, n=8)
    index.match("Find the number of ...")          # [("aime24", 3)]: AIME 2024 problem #3 shares an 8-gram

Eval sets come from the hub by default (the ids in BENCHMARKS) and from local files when offline
(`eval_data_dir`: a folder holding aime24.jsonl, aime25.jsonl, math500.jsonl with a `problem` field, as
../shared/data does). Text is compared as lower-cased alphanumeric words (distill.curate.dedup.words), so LaTeX
spacing and punctuation do not hide a copy; a problem shorter than n words counts only when it appears whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from distill.core.errors import DistillError
from distill.core.readers import read_file
from distill.curate.dedup import words


@dataclass(frozen=True)
class EvalSet:
    name: str
    title: str
    hub_id: str
    split: str
    field: str
    filename: str


BENCHMARKS: dict[str, EvalSet] = {
    s.name: s
    for s in [
        EvalSet("aime24", "AIME 2024", "HuggingFaceH4/aime_2024", "train", "problem", "aime24.jsonl"),
        EvalSet("aime25", "AIME 2025", "yentinglin/aime_2025", "train", "problem", "aime25.jsonl"),
        EvalSet("math500", "MATH-500", "HuggingFaceH4/MATH-500", "test", "problem", "math500.jsonl"),
    ]
}
_PROBLEM_FIELDS = ("problem", "question", "prompt")


# ---------------------------------------------------------------- eval sets


def load_eval_sets(
    names: Sequence[str], eval_data_dir: str | Path | None = None, files: Sequence[str | Path] = ()
) -> dict[str, list[str]]:
    """{eval set name: problems} for the shipped benchmarks `names` plus user files (named by file stem)."""
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise DistillError(
            f"unknown eval set(s) {', '.join(unknown)} in contaminated.benchmarks; choose from "
            f"{', '.join(BENCHMARKS)}, or name your own files in contaminated.files"
        )
    sets = {n: _load_benchmark(BENCHMARKS[n], eval_data_dir) for n in names}
    for f in files:
        path = Path(f)
        sets[path.stem] = _read_problems(path)
    return sets


def _load_benchmark(spec: EvalSet, eval_data_dir: str | Path | None) -> list[str]:
    if eval_data_dir is not None:
        path = Path(eval_data_dir) / spec.filename
        if not path.is_file():
            raise DistillError(
                f"{spec.title} not found at {path}; put {spec.filename} (one JSON object per line with a "
                f"'{spec.field}' field) in --eval-data-dir, or drop '{spec.name}' from contaminated.benchmarks"
            )
        return _read_problems(path)
    try:
        import datasets

        return [str(p) for p in datasets.load_dataset(spec.hub_id, split=spec.split)[spec.field]]
    except Exception as err:  # noqa: BLE001 - offline, gated, renamed: all mean "not loadable"
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise DistillError(
            f"could not load {spec.title} ({spec.hub_id}) from the hub for decontamination: {first}; offline, "
            f"pass --eval-data-dir DIR with {spec.filename} in it"
        ) from None


def _read_problems(path: Path) -> list[str]:
    if not path.is_file():
        raise DistillError(f"decontamination file '{path}' not found; fix contaminated.files")
    rows = read_file(path, what="decontamination problems")
    field = next((f for f in _PROBLEM_FIELDS if rows and f in rows[0]), None)
    if field is None:
        raise DistillError(f"'{path}' has no problem/question/prompt field to decontaminate against")
    return [str(r[field]) for r in rows if r.get(field)]


# ---------------------------------------------------------------- n-gram decontamination


class NgramIndex:
    """Word n-grams of every eval problem -> the (eval set, problem index) pairs that contain them."""

    def __init__(self, sets: dict[str, list[str]], n: int = 8):
        if n < 1:
            raise DistillError(f"contaminated.ngram must be at least 1, not {n}")
        self.n = n
        self.sizes = {name: len(problems) for name, problems in sets.items()}
        self.grams: dict[str, list[tuple[str, int]]] = {}
        self.short: dict[int, dict[str, list[tuple[str, int]]]] = {}  # problems of fewer than n words
        self.gram_count: dict[tuple[str, int], int] = {}  # distinct n-grams per eval problem
        for name, problems in sets.items():
            for i, problem in enumerate(problems):
                tokens = words(problem)
                if not tokens:
                    continue
                if len(tokens) < n:
                    self.short.setdefault(len(tokens), {}).setdefault(" ".join(tokens), []).append((name, i))
                    self.gram_count[(name, i)] = 1
                    continue
                grams = {" ".join(tokens[j : j + n]) for j in range(len(tokens) - n + 1)}
                self.gram_count[(name, i)] = len(grams)
                for gram in grams:
                    self.grams.setdefault(gram, []).append((name, i))

    def match(self, text: str, min_overlap: float = 0.0) -> list[tuple[str, int, float]]:
        """[(eval set, problem index, overlap)] for the eval problems that share an n-gram with `text`, where
        overlap is the share of that problem's n-grams found in `text` and must reach `min_overlap`."""
        tokens = words(text)
        shared: dict[tuple[str, int], int] = {}
        for gram in {" ".join(tokens[j : j + self.n]) for j in range(len(tokens) - self.n + 1)}:
            for hit in self.grams.get(gram, ()):
                shared[hit] = shared.get(hit, 0) + 1
        for length, table in self.short.items():
            for j in range(len(tokens) - length + 1):
                for hit in table.get(" ".join(tokens[j : j + length]), ()):
                    shared[hit] = 1
        found = [(name, i, count / self.gram_count[(name, i)]) for (name, i), count in shared.items()]
        return sorted(hit for hit in found if hit[2] >= min_overlap and hit[2] > 0)
