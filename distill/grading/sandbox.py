"""Run untrusted Python programs against their tests under bubblewrap, many at once, each with a verdict.

    from distill.grading.sandbox import Job, Limits, run_many
    results = run_many([Job(code="def add(a, b):\\n    return a + b", tests="def check(f):\\n    assert f(1, 2) == 3",
                            entry_point="add")])
    results[0]   # Result(status='passed', detail='', test=None, tests_run=1, seconds=0.05)

Each program runs in its own `bwrap` sandbox: the root filesystem read-only, a private writable /tmp (size
capped), no network (`--unshare-all`: a network namespace with only a loopback), its own PID namespace torn
down when the sandbox dies (`--die-with-parent`, and a SIGKILL of the process group at the wall-clock limit),
an unprivileged uid with no capabilities, limits on CPU time, address space, processes and file size, and at
most `output_bytes` of its output read. Statuses: passed, wrong_answer, exception, timeout, memory, forbidden
(a socket, a write outside /tmp), process_limit (a fork bomb), output_limit (printing forever), sandbox_error.

Without bubblewrap nothing runs: `check_sandbox()` raises a DistillError naming the package (never a fallback
to running the code unsandboxed). Reads and writes no files of its own; the programs' /tmp vanishes with them.
"""

from __future__ import annotations

import ast
import marshal
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from distill.core.errors import DistillError

STATUSES = ("passed", "wrong_answer", "exception", "timeout", "memory", "forbidden", "process_limit",
            "output_limit", "sandbox_error")
HARNESS = (Path(__file__).with_name("sandbox_harness.py")).read_text()
SANDBOX_UID = 65534  # "nobody": the uid a root caller drops to, so that the kernel enforces RLIMIT_NPROC
INSTALL_HINT = ("code verification runs programs under bubblewrap and will not run them without it: install "
                "the `bubblewrap` package (apt-get install bubblewrap, dnf install bubblewrap)")


@dataclass(frozen=True)
class Limits:
    test_timeout: float = field(default=4.0, metadata={"help": "CPU seconds per test (per stdin/stdout case, or "
                                                       "for the whole check() of assert-style tests)."})
    program_timeout: float = field(default=30.0, metadata={"help": "Wall-clock seconds for a program and all its "
                                                           "tests, after which the sandbox is killed."})
    memory_mb: int = field(default=2048, metadata={"help": "Address space per process, in MiB."})
    processes: int = field(default=32, metadata={"help": "Processes and threads per sandbox (a fork bomb stops "
                                                 "here)."})
    output_bytes: int = field(default=1 << 20, metadata={"help": "Output kept per test (stdout) and read per "
                                                         "program (stderr); more is an output_limit."})
    file_bytes: int = field(default=16 << 20, metadata={"help": "Largest file a program may write (in /tmp)."})
    tmp_mb: int = field(default=64, metadata={"help": "Size of the private /tmp, in MiB."})

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value <= 0:
                raise DistillError(f"sandbox limit {name} must be positive, not {value}")


@dataclass(frozen=True)
class Job:
    """A program and its tests: assert-style (`tests` + `entry_point`), stdin/stdout `cases`, or `calls` of the
    function `entry_point` ((JSON arguments, JSON expected value) pairs; `loose`: APPS's one-item-list rule)."""

    code: str
    tests: str | None = None
    entry_point: str | None = None
    cases: tuple[tuple[str, str], ...] | None = None
    calls: tuple[tuple[str, str], ...] | None = None
    loose: bool = False

    @property
    def kind(self) -> str:
        return "stdio" if self.cases is not None else "call" if self.calls is not None else "assert"


@dataclass(frozen=True)
class Result:
    status: str
    detail: str = ""
    test: str | None = None  # which test: "tests line 7: assert ...", "case 3"
    tests_run: int = 0
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == "passed"


# ---------------------------------------------------------------- is there a sandbox


@lru_cache(maxsize=4)
def check_sandbox(python: str | None = None) -> str:
    """The interpreter that runs programs inside the sandbox, after a probe run; a DistillError when bubblewrap
    is missing or cannot create its namespaces. Candidates: $DISTILL_SANDBOX_PYTHON, this interpreter, the
    system python3 (the uid a root caller drops to cannot always read this interpreter, e.g. under /root)."""
    if shutil.which("bwrap") is None:
        raise DistillError(INSTALL_HINT)
    wanted = python or os.environ.get("DISTILL_SANDBOX_PYTHON")
    candidates = [wanted] if wanted else [sys.executable, "/usr/bin/python3", shutil.which("python3")]
    errors = []
    for exe in dict.fromkeys(c for c in candidates if c):
        result = _run(Job(code="pass"), Limits(), exe)
        if result.passed:
            return exe
        errors.append(f"{exe}: {result.detail}")
    first = errors[0].splitlines()[0][:200] if errors else "no python3 found"
    raise DistillError(f"the bubblewrap sandbox cannot run Python here ({first}); it needs unprivileged user "
                       "namespaces (sysctl kernel.unprivileged_userns_clone=1 where that exists) and a python3 "
                       "readable by every user, or set DISTILL_SANDBOX_PYTHON to one")


def sandbox_info(python: str) -> dict[str, str]:
    """What the report records about the sandbox: the bwrap version and the interpreter inside."""
    bwrap = subprocess.run(["bwrap", "--version"], capture_output=True, text=True).stdout.strip()
    version = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True,
                             text=True).stdout.strip()
    return {"bwrap": bwrap, "python": f"{python} ({version})"}


# ---------------------------------------------------------------- running


def run_many(jobs: Sequence[Job], limits: Limits | None = None, workers: int | None = None,
             on_result: Callable[[Result], None] | None = None, python: str | None = None) -> list[Result]:
    """Run every job, `workers` sandboxes at a time (default: one per core), in the order given. No jobs, no
    sandbox needed: a math-only run must never require bubblewrap (the check comes after the empty case)."""
    if not jobs:
        return []
    exe = check_sandbox(python)
    limits = limits or Limits()
    workers = max(1, workers or os.cpu_count() or 1)

    def one(job: Job) -> Result:
        result = _run(job, limits, exe)
        if on_result is not None:
            on_result(result)
        return result

    if workers == 1 or len(jobs) <= 1:
        return [one(j) for j in jobs]
    # threads suffice: each one waits on its own sandbox process, the work happens there
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, jobs))


def run_one(job: Job, limits: Limits | None = None) -> Result:
    return run_many([job], limits, workers=1)[0]


def bwrap_argv(python: str, limits: Limits) -> list[str]:
    """The sandbox: what the program sees, and what it cannot reach."""
    return [
        "bwrap",
        "--ro-bind", "/", "/",  # the host's files, read-only (the interpreter, its standard library)
        "--dev", "/dev", "--proc", "/proc",
        "--size", str(limits.tmp_mb << 20), "--tmpfs", "/tmp",  # the one writable place, gone after the run
        "--tmpfs", "/dev/shm",
        "--unshare-all", "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
        "--disable-userns",  # no nested namespace in which to start over
        "--cap-drop", "ALL", "--die-with-parent", "--new-session",
        "--clearenv", "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "HOME", "/tmp",
        "--setenv", "LANG", "C.UTF-8", "--setenv", "PYTHONDONTWRITEBYTECODE", "1", "--setenv", "PYTHONHASHSEED", "0",
        # one thread per numeric library: a sandbox gets one core, and OpenBLAS's per-thread buffers on a many-core
        # machine would not fit the address-space limit (numpy's import would fail with MemoryError)
        "--setenv", "OMP_NUM_THREADS", "1", "--setenv", "OPENBLAS_NUM_THREADS", "1", "--setenv", "MKL_NUM_THREADS", "1",
        "--chdir", "/tmp",
        "--", python, "-I", "-c", HARNESS,
    ]


def _run(job: Job, limits: Limits, python: str) -> Result:
    nonce = secrets.token_hex(8)
    payload = {"code": job.code, "kind": job.kind, "tests": job.tests, "entry_point": job.entry_point,
               "cases": [list(c) for c in job.cases] if job.cases is not None else None, "nonce": nonce,
               "calls": [list(c) for c in job.calls] if job.calls is not None else None, "loose": job.loose,
               "limits": {**asdict(limits), "cpu_seconds": limits.program_timeout}}
    # a root caller drops to an unprivileged uid: the kernel never applies RLIMIT_NPROC to root
    as_root = os.geteuid() == 0
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            bwrap_argv(python, limits), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True, user=SANDBOX_UID if as_root else None, group=SANDBOX_UID if as_root else None,
            extra_groups=[] if as_root else None,
        )
    except OSError as err:
        return Result("sandbox_error", f"could not start bwrap: {err}")
    # marshal: the harness reads it without importing anything (format 4, the same for every Python 3 since 3.4)
    out, err, stop = _communicate(proc, marshal.dumps(payload, 4), limits)
    seconds = round(time.monotonic() - started, 3)
    return _verdict(proc.returncode, out, err, stop, nonce, seconds, limits)


def _communicate(proc: subprocess.Popen, data: bytes, limits: Limits) -> tuple[bytes, bytes, str | None]:
    """Feed the job, read both outputs up to the byte cap, kill at the wall-clock limit. Returns (stdout,
    stderr, why it was stopped: None, "timeout" or "output_limit")."""
    deadline = time.monotonic() + limits.program_timeout
    chunks = {proc.stdout: [], proc.stderr: []}
    size, stop, view = 0, None, memoryview(data)
    os.set_blocking(proc.stdin.fileno(), False)  # a full pipe must never block the loop that enforces the limits
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdin, selectors.EVENT_WRITE)
        sel.register(proc.stdout, selectors.EVENT_READ)
        sel.register(proc.stderr, selectors.EVENT_READ)
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                stop = "timeout"
                break
            for key, _ in sel.select(left):
                if key.fileobj is proc.stdin:
                    try:
                        view = view[os.write(proc.stdin.fileno(), view[:65536]):]
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:
                        view = view[:0]
                    if not view:
                        sel.unregister(proc.stdin)
                        proc.stdin.close()
                    continue
                chunk = os.read(key.fileobj.fileno(), 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                chunks[key.fileobj].append(chunk)
                size += len(chunk)
                if size > limits.output_bytes + 65536:  # the verdict line rides on top of the cap
                    stop = "output_limit"
                    break
            if stop:
                break
    if stop:
        _kill(proc)
    else:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            stop = "timeout"
            _kill(proc)
    for f in (proc.stdin, proc.stdout, proc.stderr):
        if not f.closed:
            f.close()
    return b"".join(chunks[proc.stdout]), b"".join(chunks[proc.stderr]), stop


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL bwrap's process group; the sandbox's PID namespace dies with its init, taking every process
    the program started along."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _verdict(code: int, out: bytes, err: bytes, stop: str | None, nonce: str, seconds: float,
             limits: Limits) -> Result:
    if stop == "timeout":
        return Result("timeout", f"killed at the wall-clock time limit ({limits.program_timeout:g} s)",
                      seconds=seconds)
    if stop == "output_limit":
        return Result("output_limit", f"wrote more than {limits.output_bytes:,} bytes", seconds=seconds)
    for line in reversed(out.decode("utf-8", "replace").splitlines()):
        if line.startswith(nonce + " "):
            v = ast.literal_eval(line[len(nonce) + 1:])  # a Python literal: see sandbox_harness
            return Result(v["status"], v["detail"], v["test"], v["tests_run"], seconds)
    text = err.decode("utf-8", "replace").strip()
    last = text.splitlines()[-1][:300] if text else ""
    if code in (-signal.SIGXCPU, -signal.SIGKILL):
        return Result("timeout", f"used its {limits.program_timeout:g} s of CPU time", seconds=seconds)
    if code == -signal.SIGXFSZ:
        return Result("output_limit", f"wrote a file over {limits.file_bytes:,} bytes", seconds=seconds)
    if "MemoryError" in last or "Cannot allocate memory" in last:
        return Result("memory", last, seconds=seconds)
    if last.startswith("bwrap:"):
        return Result("sandbox_error", last, seconds=seconds)
    why = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
    return Result("exception", f"the program ended without a verdict ({why}){': ' + last if last else ''}",
                  seconds=seconds)
