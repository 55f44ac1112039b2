"""Set-level curation: exact and near-duplicate removal and per-prompt caps (decontamination against the eval
sets is decontaminate.py).

    signature = prompt_signature(problem, num_perm=128, shingle_words=3)
    canonical = near_duplicate_prompts([(pid, signature), ...], threshold=0.9, num_perm=128)

Text is compared as lower-cased alphanumeric words (`words`), so LaTeX spacing and punctuation do not hide a copy.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence

import numpy as np

from distill.core.errors import DistillError

_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


# ---------------------------------------------------------------- duplicates


def completion_key(text: str) -> int:
    """64-bit key of a normalised completion (think tags rewritten, reasoning and answer stripped)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little", signed=True)


def prompt_signature(text: str, num_perm: int = 128, shingle_words: int = 3) -> np.ndarray:
    """MinHash of the word shingles of a prompt (datasketch; 32-bit values as uint32)."""
    from datasketch import MinHash

    tokens = words(text) or [""]
    k = min(shingle_words, len(tokens))
    shingles = {" ".join(tokens[i : i + k]).encode() for i in range(len(tokens) - k + 1)}
    if num_perm not in _EMPTY_MINHASH:  # building the permutations costs ~4 ms; copying a template does not
        _EMPTY_MINHASH[num_perm] = MinHash(num_perm=num_perm, seed=1)
    m = _EMPTY_MINHASH[num_perm].copy()
    m.update_batch(list(shingles))
    return m.hashvalues.astype(np.uint32)


_EMPTY_MINHASH: dict[int, object] = {}


def near_duplicate_prompts(
    signatures: Iterable[tuple[str, np.ndarray]], threshold: float = 0.9, num_perm: int = 128
) -> dict[str, str]:
    """{prompt id: the earlier prompt it near-duplicates} for every prompt whose estimated Jaccard similarity
    with an earlier one (in the given order) reaches `threshold`. LSH proposes candidates; the signatures'
    agreement confirms them, so LSH's false positives never drop a row."""
    from datasketch import LeanMinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    kept: dict[str, np.ndarray] = {}  # insertion order = the order prompts were first seen
    order: dict[str, int] = {}
    duplicates: dict[str, str] = {}
    for pid, sig in signatures:
        if pid in kept or pid in duplicates:
            continue
        minhash = LeanMinHash(seed=1, hashvalues=sig.astype(np.uint64), scheme="affine32")
        matches = [c for c in lsh.query(minhash) if float(np.mean(kept[c] == sig)) >= threshold]
        if matches:
            duplicates[pid] = min(matches, key=lambda c: order[c])
        else:
            order[pid] = len(order)
            kept[pid] = sig
            lsh.insert(pid, minhash, check_duplication=False)
    return duplicates


def over_cap(rows: Sequence[tuple[str, str, int]], max_per_prompt: int, strategy: str, seed: int) -> list[int]:
    """Positions in `rows` = [(id, prompt_id, num_tokens), ...] beyond `max_per_prompt` per prompt. `shortest`
    keeps the shortest traces (ties by id: deterministic); `random` keeps a seeded pseudo-random choice that
    does not depend on the row order, so a resumed or re-sharded run keeps the same rows."""
    if max_per_prompt < 1:
        raise DistillError(f"per_prompt_cap.max_per_prompt must be at least 1, not {max_per_prompt}")
    groups: dict[str, list[int]] = {}
    for pos, (_, prompt_id, _) in enumerate(rows):
        groups.setdefault(prompt_id, []).append(pos)
    dropped = []
    for members in groups.values():
        if len(members) <= max_per_prompt:
            continue
        if strategy == "shortest":
            members.sort(key=lambda p: (rows[p][2], rows[p][0]))
        else:
            members.sort(key=lambda p: hashlib.blake2b(f"{seed}:{rows[p][0]}".encode(), digest_size=8).digest())
        dropped.extend(members[max_per_prompt:])
    return sorted(dropped)
