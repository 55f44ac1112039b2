"""Logging, progress and end-of-stage summaries, printed by rank 0 only.

    with progress("generate", total=2000, unit="rows") as bar:
        bar.advance(8, tokens=8 * 3100)          # items done, tokens produced by them
    print_summary("generate", {"rows written": 2000, "tokens/s": "3,410"})

On a terminal the progress is a live bar (items, tokens/s, ETA); elsewhere (CI, Slurm logs, `| tee`) it is a
plain timestamped line every `DISTILL_PROGRESS_INTERVAL` seconds (default 30) and at every 10% done: no carriage
returns, no escape codes, so a log file stays readable. `--log-json FILE` (DISTILL_LOG_JSON) appends the same
progress, and each summary, as JSON lines for dashboards:

    {"time": "2026-12-01T20:31:02+00:00", "event": "progress", "stage": "generate (vllm)", "done": 1200,
     "total": 4000, "unit": "rows", "percent": 30.0, "per_s": 11.8, "tokens_per_s": 41210.0, "eta_s": 237, ...}

The CLI hides other libraries' progress bars (transformers, datasets, huggingface_hub, lm-eval, vLLM: tqdm
generally), which redraw themselves with carriage returns; DISTILL_LIBRARY_BARS=1 keeps them.
"""

from __future__ import annotations

import datetime as dt
import json
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
        # off a terminal a log may span days: the date too
        datefmt = "%H:%M:%S" if sys.stderr.isatty() else "%Y-%m-%d %H:%M:%S"
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", datefmt))
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


JSON_LOG_ENV = "DISTILL_LOG_JSON"
LIBRARY_BARS_ENV = "DISTILL_LIBRARY_BARS"


def set_json_log(path: str | os.PathLike | None) -> None:
    """Append progress and summaries as JSON lines to `path` (through the environment, so processes this one
    launches, like accelerate's ranks, write there too; only rank 0 does)."""
    if path:
        from pathlib import Path

        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        os.environ[JSON_LOG_ENV] = str(Path(path).expanduser().resolve())


def log_json(event: str, **fields: Any) -> None:
    """One JSON line in the --log-json file, when there is one (rank 0 only)."""
    path = os.environ.get(JSON_LOG_ENV)
    if not path or not is_main_process():
        return
    record = {"time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "event": event, **fields}
    with open(path, "a", encoding="utf-8") as f:  # one write per line: lines of several processes never mix
        f.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")


def hide_library_bars() -> None:
    """Switch off other libraries' progress bars (tqdm redraws with carriage returns: thousands of lines in a
    Slurm log, and a second display fighting distill's on a terminal). Set in the environment before the
    libraries are imported, so processes started from here (ranks, vLLM workers) inherit it; libraries
    already imported are told directly."""
    if os.environ.get(LIBRARY_BARS_ENV, "0") not in ("", "0"):
        return
    for name in ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS", "TQDM_DISABLE"):
        os.environ.setdefault(name, "1")
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    if "datasets" in sys.modules:
        import datasets

        datasets.disable_progress_bars()
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()


class Progress:
    """Counts items and tokens; renders a live bar on a terminal, log lines otherwise (every `interval` seconds
    and at every 10% of the total), and the same figures as JSON lines with --log-json."""

    def __init__(self, desc: str, total: int | None, unit: str = "items", interval: float | None = None):
        self.desc, self.total, self.unit = desc, total, unit
        self.done = 0
        self.tokens = 0
        self.note = ""  # a short stage-specific figure shown after the rates, e.g. "loss 0.412"
        self.start = time.monotonic()
        self.interval = interval if interval is not None else float(os.environ.get("DISTILL_PROGRESS_INTERVAL", 30))
        self._last_line = self.start
        self._last_tenth = 0
        self._reported = 0  # `done` at the last line written, so the closing line is not a repeat of it
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

    def record(self, event: str = "progress") -> dict[str, Any]:
        """The figures of line() as a dict, for the JSON log."""
        per_s, tok_s, eta = self.rates()
        return {"event": event, "stage": self.desc, "done": self.done, "total": self.total, "unit": self.unit,
                "percent": round(100 * self.done / self.total, 1) if self.total else None,
                "per_s": round(per_s, 3), "tokens_per_s": round(tok_s, 1),
                "elapsed_s": round(self.elapsed, 1), "eta_s": round(eta) if eta is not None else None,
                "note": self.note or None}

    def _due(self) -> bool:
        """A report is due every `interval` seconds and whenever another tenth of the total is done."""
        tenth = int(10 * self.done / self.total) if self.total else 0
        if tenth > self._last_tenth or time.monotonic() - self._last_line >= self.interval:
            self._last_tenth = max(tenth, self._last_tenth)
            self._last_line = time.monotonic()
            return True
        return False

    def advance(self, n: int = 1, tokens: int = 0) -> None:
        self.done += n
        self.tokens += tokens
        if not self.enabled:
            return
        if self._live is not None:
            self._live.update(self._task, advance=n, tok_s=self.rates()[1], note=self.note)
        if self._due():
            if self._live is None:
                get_logger().info(self.line())
                self._reported = self.done
            log_json(**self.record())

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.stop()
        elif self.enabled and self.done and self.done != self._reported:
            get_logger().info(self.line())
        if self.enabled:
            log_json(**self.record("end"))


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

    log_json("summary", title=title, rows={str(k): v for k, v in rows.items()})
    table = Table(title=title, show_header=False, title_justify="left", min_width=40)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key, value in rows.items():
        table.add_row(str(key), f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value))
    Console().print(table)
