"""SIGTERM as a request to stop: schedulers (Slurm preemption, `scancel`, Kubernetes) send it, then SIGKILL after
a grace period. A stage that holds a `StopOnSignal` finishes its work in hand, commits it and raises `Interrupted`,
which the CLI turns into exit status 143 (128 + SIGTERM), so a requeued job resumes where this one stopped.

    with StopOnSignal(grace_s=30) as stop:       # grace_s: after it, GraceExpired is raised wherever the code is
        for item in work:
            if stop.requested:                   # a clean point: stop taking new work
                break
            do(item)
    if stop.requested:
        raise Interrupted(stop.signum, "stopped; re-run the same command to resume")

Reads and writes nothing. A repeated SIGTERM is the same request (Slurm's batch shell and slurmstepd may both
send one), not a harder one. Outside the main thread (where Python cannot take signals) it is a no-op.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

from distill.core.log import get_logger


class GraceExpired(BaseException):
    """Raised in the main thread when the grace after SIGTERM is spent: abandon the work in flight now.
    A BaseException, like KeyboardInterrupt, so that `except Exception` in libraries does not swallow it."""


class StopOnSignal:
    """Turn SIGTERM into `requested = True` for the duration of a `with` block; see the module docstring."""

    def __init__(self, grace_s: float | None = None, what: str = "the work in hand", signals=(signal.SIGTERM,)):
        self.grace_s = grace_s
        self.what = what
        self.signals = tuple(signals)
        self.signum: int | None = None
        self.requested_at: float | None = None
        self._previous: dict[int, Any] = {}
        self._previous_alarm = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def disarm(self) -> None:
        """Cancel the grace timer, before a commit that must not be cut short."""
        if self._previous_alarm is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is not threading.main_thread():
            return self
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._on_signal)
        if self.grace_s is not None:
            self._previous_alarm = signal.signal(signal.SIGALRM, self._on_alarm)
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self._previous and self._previous_alarm is None:
            return
        if self.grace_s is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous_alarm)
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        self._previous_alarm = None

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.requested:
            return  # schedulers signal twice (the batch shell forwards what slurmstepd already sent): one request
        self.signum = signum
        self.requested_at = time.monotonic()
        name = signal.Signals(signum).name
        grace = f" (at most {self.grace_s:g} s)" if self.grace_s is not None else ""
        get_logger().warning(f"{name} received: finishing {self.what}{grace}, then stopping; re-run the same "
                             "command to resume")
        if self.grace_s is not None:
            signal.setitimer(signal.ITIMER_REAL, max(self.grace_s, 0.01))

    def _on_alarm(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise GraceExpired(f"grace of {self.grace_s:g} s after {signal.Signals(self.signum).name} spent")


def ignore_stop_signals() -> None:
    """For worker processes: a scheduler signals the whole process group, but stopping is the parent's call
    (it lets the unit in hand finish, then shuts the pool down)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
