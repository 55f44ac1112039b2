"""The one exception type users see: a one-line message that names the problem and the fix.

The CLI prints `error: <message>` and exits with status 2 instead of a traceback; code that catches
library errors (a missing file, a bad schema) re-raises them as DistillError with a fix attached.
"""

from __future__ import annotations


class DistillError(Exception):
    """A user-facing error; str(err) is one line that says what is wrong and how to fix it."""


class Interrupted(Exception):
    """A stage stopped early on a signal (SIGTERM from a scheduler, Ctrl-C) after committing its finished work;
    the CLI prints the message and exits with 128 + the signal number (143 for SIGTERM), as schedulers expect."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        return 128 + self.signum
