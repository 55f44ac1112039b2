"""Resume inside a task: `distill eval` journals every finished sample, so a killed or preempted run redoes only
what was not finished, and ends with the samples an unbroken run would have written.

    journal = SampleJournal(out / ".journal" / "aime24.jsonl", fingerprint)
    lm.journal = journal           # the backends' generate_until reads it, and appends each chunk as it finishes
    ...                            # task scored and saved
    journal.remove()

Why not lm-eval's request cache (`use_cache`): it never caches sampled generations (do_sample), and the R1 protocol
samples every request; and it keys requests by their arguments alone, while the k samples of a problem are k
identical requests. Here a sample's key is (rendered prompt, generation arguments, which of the identical draws).

Why the samples equal an unbroken run's: the requests of a task are cut into chunks of fixed composition (the
same cut on every run, since lm-eval builds requests in the same order for the same seed), a chunk is generated
whole or taken whole from the journal, and each chunk's sampling is seeded from its first sample's key (hf: the
torch generator before the chunk; vllm: every request carries its own seed). A chunk cut short by the kill is
generated again, with the same seed and the same neighbours, so the same text.

The file: one JSON header line {"fingerprint": ...}, then {"key", "text", "tokens"} per sample, appended and
fsynced a chunk at a time; a header of another fingerprint (another protocol, model or seed) empties it, and a
last line cut by a kill is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from distill.core.log import get_logger


class SampleJournal:
    def __init__(self, path: Path, fingerprint: dict[str, Any]):
        self.path = Path(path)
        self.fingerprint = json.loads(json.dumps(fingerprint, sort_keys=True, default=str))
        self.done: dict[str, tuple[str, int | None]] = {}
        self.resumed = 0
        self._read()

    def _read(self) -> None:
        if not self.path.is_file():
            return
        lines = self.path.read_text().splitlines()
        try:
            header = json.loads(lines[0]) if lines else {}
        except json.JSONDecodeError:
            header = {}
        if header.get("fingerprint") != self.fingerprint:
            if lines:
                get_logger().info(f"{self.path.name}: journal of another protocol or model; starting the task over")
            self.path.unlink()
            return
        for line in lines[1:]:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # the line a kill cut short: that chunk is generated again
            self.done[entry["key"]] = (entry["text"], entry.get("tokens"))

    def get(self, key: str) -> tuple[str, int | None] | None:
        return self.done.get(key)

    def add(self, entries: list[tuple[str, str, int | None]]) -> None:
        """Append (key, text, tokens) of one finished chunk, on disk before the next chunk starts."""
        new = not self.path.is_file()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            if new:
                f.write(json.dumps({"fingerprint": self.fingerprint}) + "\n")
            for key, text, tokens in entries:
                f.write(json.dumps({"key": key, "text": text, "tokens": tokens}) + "\n")
                self.done[key] = (text, tokens)
            f.flush()
            os.fsync(f.fileno())

    def remove(self) -> None:
        """The task is saved: its journal has done its job."""
        self.path.unlink(missing_ok=True)
        if self.path.parent.is_dir() and not any(self.path.parent.iterdir()):
            self.path.parent.rmdir()


def sample_keys(requests: list[Any]) -> list[str]:
    """One key per lm-eval generate request: its context, its generation arguments, and how many identical
    requests came before it (the k samples of a problem are k identical requests)."""
    seen: Counter[str] = Counter()
    keys = []
    for request in requests:
        context, gen_kwargs = request.args[0], request.args[1]
        base = json.dumps([context, gen_kwargs], sort_keys=True, default=str)
        keys.append(hashlib.sha256(f"{base}\x00{seen[base]}".encode()).hexdigest())
        seen[base] += 1
    return keys


def key_seed(base: int, key: str) -> int:
    """A 31-bit seed from the run's seed and a sample key (31 bits: what torch and vLLM both accept)."""
    digest = hashlib.sha256(f"{base}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF
