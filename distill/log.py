"""Logging, progress and end-of-stage summaries, printed by rank 0 only.

    with progress("generate", total=2000, unit="rows") as bar:
        bar.advance(8, tokens=8 * 3100)          # items done, tokens produced by them
    print_summary("generate", {"rows written": 2000, "tokens/s": "3,410"})

On a terminal the progress is a live bar (items, tokens/s, ETA); elsewhere (CI, Slurm logs) it is a plain
line every `DISTILL_PROGRESS_INTERVAL` seconds (default 10), so long runs stay readable in log files.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any


def is_main_process() -> bool:
    """Rank 0 of a distributed launch (torchrun/accelerate set RANK), or a plain process."""
    return os.environ.get("RANK", "0") == "0"


def filter_library_log(logger_name: str, filter_class: type) -> None:
    """Attach a `filter_class()` to a library's logger unless one is already there: the CLI's main() and the
    stages run many times in one process (tests, notebooks), and each filter should act once per record."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, filter_class) for f in logger.filters):
        logger.addFilter(filter_class())


class _CurrentStderr(logging.StreamHandler):
    """Writes to sys.stderr as it is when a record is logged, not as it was when the first logger was made: main()
    runs many times in one process (tests capturing each run, notebooks), and an old stream may be closed."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def get_logger(name: str = "distill") -> logging.Logger:
    logger = logging.getLogger(name)
    root = logging.getLogger("distill")
    if not root.handlers:
        handler = _CurrentStderr()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        root.addHandler(handler)
        root.setLevel(logging.INFO if is_main_process() else logging.WARNING)
        root.propagate = False
    return logger


def _console():
    from rich.console import Console

    return Console(stderr=True)


def fmt_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Counts items and tokens; renders a live bar on a terminal, periodic log lines otherwise."""

    def __init__(self, desc: str, total: int | None, unit: str = "items", interval: float | None = None):
        self.desc, self.total, self.unit = desc, total, unit
        self.done = 0
        self.tokens = 0
        self.note = ""  # a short stage-specific figure shown after the rates, e.g. "loss 0.412"
        self.start = time.monotonic()
        self.interval = interval if interval is not None else float(os.environ.get("DISTILL_PROGRESS_INTERVAL", 10))
        self._last_line = self.start
        self._live = None
        self._task = None
        self.enabled = is_main_process() and os.environ.get("DISTILL_PROGRESS", "1") != "0"

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def rates(self) -> tuple[float, float, float | None]:
        """(items/s, tokens/s, ETA seconds or None)."""
        dt = max(self.elapsed, 1e-9)
        per_s = self.done / dt
        eta = (self.total - self.done) / per_s if self.total and per_s > 0 else None
        return per_s, self.tokens / dt, eta

    def line(self) -> str:
        per_s, tok_s, eta = self.rates()
        total = f"/{self.total:,}" if self.total else ""
        pct = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        eta_s = fmt_duration(eta) if eta is not None else "?"
        return (
            f"{self.desc}: {self.done:,}{total} {self.unit}{pct} | {per_s:,.1f} {self.unit}/s | "
            f"{tok_s:,.0f} tok/s | elapsed {fmt_duration(self.elapsed)} | ETA {eta_s}"
            + (f" | {self.note}" if self.note else "")
        )

    def __enter__(self) -> Progress:
        if self.enabled and _console().is_terminal:
            from rich.progress import BarColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._live = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.completed:,}/{task.total:,} " + self.unit if self.total else "{task.completed:,}"),
                TextColumn("{task.fields[tok_s]:,.0f} tok/s"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[note]}"),
                console=_console(),
                transient=False,
            )
            self._live.start()
            self._task = self._live.add_task(self.desc, total=self.total, tok_s=0.0, note="")
        return self

    def advance(self, n: int = 1, tokens: int = 0) -> None:
        self.done += n
        self.tokens += tokens
        if not self.enabled:
            return
        if self._live is not None:
            self._live.update(self._task, advance=n, tok_s=self.rates()[1], note=self.note)
        elif time.monotonic() - self._last_line >= self.interval:
            self._last_line = time.monotonic()
            get_logger().info(self.line())

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.stop()
        elif self.enabled and self.done:
            get_logger().info(self.line())


@contextmanager
def progress(desc: str, total: int | None, unit: str = "items") -> Iterator[Progress]:
    with Progress(desc, total, unit) as bar:
        yield bar


def print_summary(title: str, rows: Mapping[str, Any]) -> None:
    """A short two-column table on stdout: what the stage did, in numbers."""
    if not is_main_process():
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left", min_width=40)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key, value in rows.items():
        table.add_row(str(key), f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value))
    Console().print(table)
