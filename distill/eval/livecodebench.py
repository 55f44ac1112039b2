"""LiveCodeBench (code generation, `livecodebench/code_generation_lite`): its rows -> code eval docs, keeping the
problems of a contest-date window; the tests are the public and private cases, stdin/stdout or functional.

    docs = load_rows(read_jsonl("data/livecodebench.jsonl"), window="2024-08-01:2025-01-31")

A hub row (the columns `DIR/livecodebench.jsonl` must have; tests are JSON text):
    {"question_title": "Two Sum", "question_content": "Given an array nums ...", "platform": "leetcode",
     "question_id": "1", "contest_id": "weekly-contest-1", "contest_date": "2024-09-01T00:00:00",
     "starter_code": "class Solution:\\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\\n        ",
     "difficulty": "easy", "public_test_cases": "[{\\"input\\": \\"[2,7,11,15]\\\\n9\\", \\"output\\": \\"[0, 1]\\",
     \\"testtype\\": \\"functional\\"}]", "private_test_cases": "eJy...(base64 of zlib of a pickled JSON string)",
     "metadata": "{\\"func_name\\": \\"twoSum\\"}"}
-> a doc: {"id": "1", "problem": <question, the starter code, the instruction>, "tests": <all cases as JSON>,
   "entry_point": "twoSum", "contest_date": "2024-09-01", "platform": "leetcode", "difficulty": "easy"}.

Reads only what it is given (the hub download is the task's loader: eval/livecodebench/utils.py).
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import re
import zlib
from datetime import date
from pathlib import Path
from typing import Any

from distill.core.errors import DistillError

HUB_ID = "livecodebench/code_generation_lite"
# the hub copy is a loading script over these files, which newer `datasets` no longer runs; releases are
# cumulative, each adds one file of newer problems
RELEASE_FILES = {f"release_v{n}": ["test.jsonl"] + [f"test{i}.jsonl" for i in range(2, n + 1)] for n in range(1, 7)}
# R1's window (arXiv:2501.12948 §3.1: LiveCodeBench 2024-08 to 2025-01); release_v5 covers it
DEFAULT_WINDOW = "2024-08-01:2025-01-31"
DEFAULT_RELEASE = "release_v5"
COLUMNS = ("question_id", "question_content", "contest_date", "public_test_cases", "private_test_cases")
# LiveCodeBench's own prompt lines (lcb_runner/prompts/code_generation.py), so the model sees what it expects
STARTER = ("You will use the following starter code to write the solution to the problem and enclose your code "
           "within delimiters.\n```python\n{starter}\n```")
STDIN = ("Read the inputs from stdin solve the problem and write the answer to stdout (do not directly test on the "
         "sample inputs). Enclose your code within delimiters as follows. Ensure that when the python program "
         "runs, it reads the inputs, runs the algorithm and writes output to STDOUT.\n"
         "```python\n# YOUR CODE HERE\n```")
_WINDOW = re.compile(r"^(\d{4}-\d{2}-\d{2}):(\d{4}-\d{2}-\d{2})$")


def parse_window(window: str) -> tuple[date, date]:
    """'START:END' (ISO dates, both included) -> the two dates; anything else is a one-line DistillError."""
    match = _WINDOW.match(str(window).strip())
    try:
        start, end = (date.fromisoformat(match.group(i)) for i in (1, 2)) if match else (None, None)
    except ValueError:
        start = end = None
    if start is None or end is None or start > end:
        raise DistillError(f"livecodebench.window {window!r} is not START:END with START <= END as dates: give e.g. "
                           f"--set livecodebench.window={DEFAULT_WINDOW} (R1's)")
    return start, end


def decode_cases(text: str) -> list[dict[str, Any]]:
    """A test-case column: JSON text, or (newer releases' private tests) base64 of zlib of a pickled JSON string.
    The pickle is read by an unpickler that builds no objects but plain data, so a crafted file runs nothing."""
    text = text.strip()
    if not text or text[0] == "[":
        return json.loads(text) if text else []
    raw = zlib.decompress(base64.b64decode(text))
    return json.loads(_PlainUnpickler(io.BytesIO(raw)).load())


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"a test-case column may hold only a string, not {module}.{name}")


def load_rows(rows: list[dict[str, Any]], window: str = DEFAULT_WINDOW, where: str = "livecodebench") -> list[dict]:
    """The rows whose contest_date falls in the window, as docs; a row lacking a column is a one-line error."""
    start, end = parse_window(window)
    docs = []
    for i, row in enumerate(rows):
        missing = [c for c in COLUMNS if row.get(c) is None]
        if missing:
            raise DistillError(f"{where} row {i} ({row.get('question_id', 'no question_id')}) has no "
                               f"{', '.join(missing)}: each row needs the hub's columns ({', '.join(COLUMNS)}, "
                               f"starter_code, metadata), as in {HUB_ID}")
        try:
            day = date.fromisoformat(str(row["contest_date"])[:10])
        except ValueError:
            raise DistillError(f"{where} row {i} ({row['question_id']}): contest_date {row['contest_date']!r} is not "
                               "an ISO date; give it as the hub does, e.g. 2024-09-14T00:00:00") from None
        if start <= day <= end:
            docs.append(to_doc(row, i, where))
    return docs


def to_doc(row: dict[str, Any], index: int, where: str = "livecodebench") -> dict[str, Any]:
    qid = str(row["question_id"])
    try:
        cases = decode_cases(row["public_test_cases"]) + decode_cases(row["private_test_cases"])
    except (ValueError, zlib.error, pickle.UnpicklingError) as err:
        raise DistillError(f"{where} row {index} ({qid}): its test cases are neither JSON nor the hub's compressed "
                           f"form ({err}); copy public_test_cases/private_test_cases as the hub gives them") from err
    functional = any(c.get("testtype") == "functional" for c in cases)
    meta = row.get("metadata") or "{}"
    try:
        meta = json.loads(meta) if isinstance(meta, str) else meta
    except json.JSONDecodeError:
        raise DistillError(f"{where} row {index} ({qid}): metadata is not JSON; give it as the hub does, e.g. "
                           '{"func_name": "twoSum"}') from None
    if functional and not meta.get("func_name"):
        raise DistillError(f"{where} row {index} ({qid}) has functional tests but no metadata.func_name: give the "
                           "row's metadata column as the hub has it, e.g. {\"func_name\": \"twoSum\"}")
    starter = (row.get("starter_code") or "").rstrip()
    problem = row["question_content"].rstrip() + "\n\n" + (STARTER.format(starter=starter) if starter else STDIN)
    return {"id": qid, "problem": problem, "tests": json.dumps(cases), "entry_point": meta.get("func_name") or "",
            "contest_date": str(row["contest_date"])[:10], "platform": str(row.get("platform") or ""),
            "difficulty": str(row.get("difficulty") or ""), "title": str(row.get("question_title") or "")}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise DistillError(f"{path} line {n} is not JSON ({err.msg}): livecodebench.jsonl holds one hub row "
                               "per line") from err
    return rows


def hub_files(release: str) -> list[str]:
    if release not in RELEASE_FILES:
        raise DistillError(f"livecodebench.release {release!r} is unknown; choose from {', '.join(RELEASE_FILES)}")
    return [f"hf://datasets/{HUB_ID}/{name}" for name in RELEASE_FILES[release]]
