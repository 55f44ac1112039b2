"""The program that runs *inside* the sandbox (distill/grading/sandbox.py passes its source to `python3 -c`): it reads one
job as JSON on stdin, applies the limits to itself, runs the candidate program against its tests and writes one
verdict line to a private copy of stdout.

    job:     {"code": "def add(a, b): ...", "kind": "assert", "tests": "def check(f): ...", "entry_point": "add",
              "limits": {...}, "nonce": "9f2c..."}            (kind "stdio": "cases": [["1 2\\n", "3\\n"], ...];
                                                              kind "call": "calls": [["[1, 2]", "3"], ...], "loose")
    verdict: <nonce> {'status': 'wrong_answer', 'detail': 'assert candidate(1, 2) == 3', 'test': 'line 4', ...}

Standard library only, and no distill import: it runs on the sandbox's interpreter, not the project's venv. It
starts in ~1 ms beyond the interpreter: the job comes as marshal data and the verdict goes out as a Python
literal (no json, whose import of re/enum costs 20-30 ms a program), traceback loads only when something failed.
The verdict guards against accidents (a program that calls exit(0) before its tests ran never passes), not
against a program written to forge one: the sandbox around it is what contains hostile code.
"""

import errno
import marshal
import os
import resource
import signal
import sys

NETWORK_ERRNOS = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ECONNREFUSED, errno.EADDRNOTAVAIL,
                  errno.EAFNOSUPPORT, errno.ENETDOWN}
FILESYSTEM_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM}


class TestTimeout(BaseException):
    """Raised by the per-test alarm; a BaseException so that `except Exception:` in the candidate cannot eat it."""


class OutputLimit(BaseException):
    """The candidate printed more than the output limit."""


class BoundedSink:
    """sys.stdout for the candidate: keeps what it prints (stdio tests compare it) up to a byte limit, past
    which the next write raises OutputLimit. `.buffer` takes bytes (the sys.stdout.buffer fast-IO idiom)."""

    def __init__(self, limit):
        self.limit, self.parts, self.size = limit, [], 0
        self.buffer = _BytesView(self)

    def write(self, text):
        return self._add(text.encode("utf-8", "replace"), len(text))

    def _add(self, data, n):
        self.size += len(data)
        if self.size > self.limit:
            raise OutputLimit()
        self.parts.append(data)
        return n

    def getvalue(self):
        return b"".join(self.parts).decode("utf-8", "replace")

    encoding, errors = "utf-8", "replace"

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def writable(self):
        return True

    def flush(self):
        pass

    def isatty(self):
        return False


class _BytesView:
    def __init__(self, sink):
        self.sink = sink

    def write(self, data):
        return self.sink._add(bytes(data), len(data))

    def flush(self):
        pass


def apply_limits(limits):
    """Limits on this process and everything it starts. RLIMIT_NPROC is set here, inside the sandbox's own user
    namespace, where the kernel (5.14+) counts processes per namespace: one program's fork bomb cannot use up
    the allowance of the programs running beside it."""
    cpu = max(1, int(limits["cpu_seconds"]))
    memory = int(limits["memory_mb"]) << 20
    for name, soft, hard in (("RLIMIT_CPU", cpu, cpu + 1), ("RLIMIT_AS", memory, memory),
                             ("RLIMIT_NPROC", limits["processes"], limits["processes"]),
                             ("RLIMIT_FSIZE", limits["file_bytes"], limits["file_bytes"]), ("RLIMIT_CORE", 0, 0)):
        resource.setrlimit(getattr(resource, name), (soft, hard))


def _alarm(signum, frame):
    raise TestTimeout()


def run_timed(seconds, fn):
    # CPU time, not wall time: a verdict must not depend on how loaded the machine is (a program that sleeps
    # instead of computing meets the sandbox's wall-clock kill)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        fn()
        # a program that did its work in a thread (the deep-recursion idiom) is finished when its threads are;
        # threading is looked up, not imported: a program that never imported it started no thread
        threading = sys.modules.get("threading")
        for t in threading.enumerate() if threading else ():
            if t is not threading.main_thread() and not t.daemon:
                t.join()
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)


def classify(exc, sources):
    """(status, detail, where) of an exception the candidate or its tests raised."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    where = _where(frames, sources)
    name = type(exc).__name__
    text = f"{name}: {exc}" if str(exc) else name
    if isinstance(exc, TestTimeout):
        return "timeout", "ran past the per-test CPU time limit", where
    if isinstance(exc, OutputLimit):
        return "output_limit", "printed more than the output limit", where
    if isinstance(exc, MemoryError):
        return "memory", text, where
    if isinstance(exc, BlockingIOError) or (isinstance(exc, RuntimeError) and "new thread" in str(exc)):
        return "process_limit", text, where
    # urllib and friends wrap the socket error they met: look at the whole chain
    chain = [exc, exc.__cause__, exc.__context__, getattr(exc, "reason", None)]
    if any(type(e).__module__ == "socket" or (isinstance(e, OSError) and e.errno in NETWORK_ERRNOS)
           for e in chain if isinstance(e, BaseException)):
        return "forbidden", f"network: {text}", where
    if isinstance(exc, OSError) and exc.errno in FILESYSTEM_ERRNOS:
        return "forbidden", f"filesystem: {text}", where
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG):
        return "output_limit", f"files: {text}", where
    if isinstance(exc, AssertionError) and frames and frames[-1].filename == "<tests>":
        return "wrong_answer", _line(frames[-1], sources) or text, where
    if isinstance(exc, SystemExit):
        return "exception", f"exit({exc.code!r}) before the tests finished", where
    inner = next((f for f in reversed(frames) if f.filename == "<solution>"), None)
    if inner is not None and where and not where.startswith("solution"):
        text += f" (solution line {inner.lineno}: {_line(inner, sources)})"
    return "exception", text[:300], where


def _line(frame, sources):
    """The text of a traceback line; linecache does not know <tests>/<solution>, so it comes from the source."""
    lines = (sources.get(frame.filename) or "").splitlines()
    return lines[frame.lineno - 1].strip() if frame.lineno and 0 < frame.lineno <= len(lines) else ""


def _where(frames, sources):
    """The innermost line of the tests (which test failed), else of the solution."""
    for wanted in ("<tests>", "<solution>"):
        frame = next((f for f in reversed(frames) if f.filename == wanted), None)
        if frame is not None:
            return f"{wanted[1:-1]} line {frame.lineno}: {_line(frame, sources)}"[:300]
    return None


def run_assert(job, limits):
    """HumanEval/MBPP: the program, then the test code, then check(entry_point), in one namespace."""
    scope = {"__name__": "solution", "__builtins__": __builtins__}
    tests = job.get("tests") or ""
    sources = {"<solution>": job["code"], "<tests>": tests}
    program = compile(job["code"], "<solution>", "exec")
    checks = compile(tests, "<tests>", "exec")
    sys.stdout = BoundedSink(limits["output_bytes"])
    try:
        run_timed(limits["test_timeout"], lambda: exec(program, scope))
        def call_tests():
            exec(checks, scope)
            entry = job.get("entry_point")
            if entry and entry not in scope:
                raise NameError(f"entry point {entry!r} is not defined by the program")
            if entry and callable(scope.get("check")):  # HumanEval's shape; MBPP's asserts ran above
                scope["check"](scope[entry])
        run_timed(limits["test_timeout"], call_tests)
    except BaseException as exc:  # noqa: BLE001 - every way a candidate fails is a verdict
        status, detail, where = classify(exc, sources)
        return {"status": status, "detail": detail, "test": where, "tests_run": 1}
    return {"status": "passed", "detail": "", "test": None, "tests_run": 1}


def normalize_output(text):
    """Output equal up to trailing whitespace on each line and trailing blank lines (the judges' usual rule)."""
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def run_stdio(job, limits):
    """APPS/TACO/CodeContests: the program once per case, as __main__, its stdin the case input (on fd 0 too, so
    open(0) and sys.stdin.buffer work), its output compared to the expected one. Stops at the first failure."""
    sources = {"<solution>": job["code"]}
    program = compile(job["code"], "<solution>", "exec")
    cases = job["cases"]
    for i, (given, expected) in enumerate(cases):
        path = "/tmp/.case_input"
        with open(path, "w", encoding="utf-8") as f:
            f.write(given)
        fd = os.open(path, os.O_RDONLY)
        if fd != 0:  # fd 0 is free again when the last case's open(0) closed it
            os.dup2(fd, 0)
            os.close(fd)
        sys.stdin = open(0, encoding="utf-8", closefd=False)
        sink = sys.stdout = BoundedSink(limits["output_bytes"])
        scope = {"__name__": "__main__", "__builtins__": __builtins__}

        def main(scope=scope):
            try:
                exec(program, scope)
            except SystemExit as stop:
                if stop.code not in (None, 0):
                    raise
        try:
            run_timed(limits["test_timeout"], main)
        except BaseException as exc:  # noqa: BLE001
            status, detail, where = classify(exc, sources)
            return {"status": status, "detail": detail, "test": f"case {i}" + (f" ({where})" if where else ""),
                    "tests_run": i + 1}
        got = sink.getvalue()
        if normalize_output(got) != normalize_output(expected):
            detail = f"expected {_clip(expected)!r}, got {_clip(got)!r}"
            return {"status": "wrong_answer", "detail": detail, "test": f"case {i}", "tests_run": i + 1}
    return {"status": "passed", "detail": "", "test": None, "tests_run": len(cases)}


# what LeetCode-style programs take for granted (`List[int]` in a signature, `Counter`, `heapq`) without importing
# it, as LeetCode's own judge and LiveCodeBench's runner provide; not math's *: its pow would shadow the builtin
CALL_PRELUDE = ("from typing import *\nfrom collections import *\nfrom functools import *\nfrom itertools import *\n"
                "from heapq import *\nfrom bisect import *\nimport collections, heapq, math\n")


def plain(value):
    """Tuples as lists, all the way down: JSON has no tuples (LiveCodeBench reads a returned tuple as a list)."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def same_value(got, expected, loose):
    got = plain(got)
    if got == expected:
        return True
    # APPS/TACO store many expected values wrapped in a one-item list; their runner accepts the item too
    return bool(loose and isinstance(expected, list) and len(expected) == 1 and got == expected[0])


def find_function(scope, name):
    """`Solution().<name>` for a LeetCode-style class (a fresh instance per call, as LeetCode's judge makes),
    else the program's top-level function."""
    cls = scope.get("Solution")
    if isinstance(cls, type) and hasattr(cls, name):
        return lambda *args: getattr(cls(), name)(*args)
    if callable(scope.get(name)):
        return scope[name]
    raise NameError(f"the program defines neither class Solution with a method {name!r} nor a function {name!r}")


def run_call(job, limits):
    """APPS/TACO fn_name and LiveCodeBench functional tests: the program once (not as __main__, so that its own
    `if __name__ == "__main__":` driver stays quiet), then the function called per case, its return value
    compared with the expected one. What it prints is ignored. Stops at the first failure."""
    import json

    sources = {"<solution>": job["code"]}
    program = compile(job["code"], "<solution>", "exec")
    scope = {"__name__": "solution", "__builtins__": __builtins__}
    exec(CALL_PRELUDE, scope)
    sys.stdout = BoundedSink(limits["output_bytes"])
    name = job["entry_point"]
    step, done = "the program", 0
    try:
        run_timed(limits["test_timeout"], lambda: exec(program, scope))
        fn = find_function(scope, name)
        for i, (args, expected) in enumerate(job["calls"]):
            step, done = f"call {i}", i + 1
            args, expected, got = json.loads(args), json.loads(expected), []
            sys.stdout = BoundedSink(limits["output_bytes"])
            run_timed(limits["test_timeout"], lambda got=got, args=args: got.append(fn(*args)))
            if not same_value(got[0], expected, job.get("loose")):
                detail = (f"{name}{_clip(repr(tuple(args)))} expected {_clip(repr(expected))}, "
                          f"got {_clip(repr(got[0]))}")
                return {"status": "wrong_answer", "detail": detail, "test": step, "tests_run": done}
    except BaseException as exc:  # noqa: BLE001 - every way a candidate fails is a verdict
        status, detail, where = classify(exc, sources)
        return {"status": status, "detail": detail, "test": step + (f" ({where})" if where else ""), "tests_run": done}
    return {"status": "passed", "detail": "", "test": None, "tests_run": len(job["calls"])}


def _clip(text, n=80):
    text = text.strip()
    return text if len(text) <= n else text[:n] + "..."


def main():
    job = marshal.loads(sys.stdin.buffer.read())
    limits = job["limits"]
    # the verdict goes to a private copy of stdout; fd 1 itself now leads to stderr, so a program writing to
    # it directly (os.write(1, ...)) cannot interleave with the verdict
    verdict = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    signal.signal(signal.SIGPROF, _alarm)
    apply_limits(limits)
    try:
        result = {"assert": run_assert, "stdio": run_stdio, "call": run_call}[job["kind"]](job, limits)
    except SyntaxError as exc:
        result = {"status": "exception", "detail": f"SyntaxError: {exc.msg} (line {exc.lineno})", "test": None,
                  "tests_run": 0}
    sys.stdout = sys.__stdout__
    verdict.write(job["nonce"] + " " + repr(result) + "\n")
    verdict.flush()
    os._exit(0)  # not sys.exit: threads the candidate left running must not keep the sandbox alive


if __name__ == "__main__":  # python3 -c sets it; an import (tooling) runs nothing
    main()
