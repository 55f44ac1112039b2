"""The record schemas that are the contract between stages; the only module that spells out column names.

    from distill.core.schema import TRACE, validate
    validate(table.schema, TRACE, "runs/gen/traces/traces-00000.parquet")

A trace row (output of `distill generate`, one per prompt x sample):
    {"id": "math-train-0007/1", "prompt_id": "math-train-0007", "sample": 1, "problem": "What is $2+3$?",
     "answer": "5", "source": "math_train", "messages": [{"role": "user", "content": "What is $2+3$? Please ..."}],
     "completion": "<think>\\n2 plus 3 is 5.\\n</think>\\n\\nThe answer is $\\boxed{5}$.", "finish_reason": "stop",
     "prompt_tokens": 31, "completion_tokens": 24, "teacher": "deepseek-r1", "model": "deepseek-ai/DeepSeek-R1"}

A code prompt (and its traces) adds the CODE fields: `tests` (assert-style test code, or stdin/stdout cases as
JSON, see distill/grading/programs.py), `entry_point` (the function the tests call, or null) and `language`
("python"); `answer` is then null, and curate runs the tests in the sandbox instead of comparing answers:
    {"id": "HumanEval/0", "problem": "from typing import List\n\ndef has_close_elements(...", "answer": null,
     "tests": "def check(candidate):\n    assert candidate([1.0, 2.0], 0.5) == False\n",
     "entry_point": "has_close_elements", "language": "python", ...}

Extra columns are allowed (generate carries any other prompt fields through untouched); missing required
columns or columns of the wrong type are errors.
"""

from __future__ import annotations

import pyarrow as pa

from distill.core.errors import DistillError

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
MESSAGES = pa.list_(MESSAGE)

PROMPT = pa.schema([("id", pa.string()), ("problem", pa.string())])
# the fields of a code prompt, carried by generate into its trace rows (all null on math rows)
CODE = pa.schema([("tests", pa.string()), ("entry_point", pa.string()), ("language", pa.string())])
CODE_LANGUAGES = ("python",)

TRACE = pa.schema(
    [
        ("id", pa.string()),
        ("prompt_id", pa.string()),
        ("sample", pa.int32()),
        ("problem", pa.string()),
        ("answer", pa.string()),
        ("source", pa.string()),
        ("messages", MESSAGES),
        ("completion", pa.string()),
        # stop, length or error; `unknown` where a published trace set did not record it (curate's input formats)
        ("finish_reason", pa.string()),
        ("prompt_tokens", pa.int32()),
        ("completion_tokens", pa.int32()),
        ("teacher", pa.string()),
        ("model", pa.string()),
    ]
)

SFT_EXAMPLE = pa.schema(
    [
        ("id", pa.string()),
        ("prompt_id", pa.string()),
        ("source", pa.string()),
        ("messages", MESSAGES),
        # The example's length in the tokens the student trains on (user + assistant turns + the chat template's
        # own tokens): too_long/too_short and `distill plan --from` read it as the SFT length. Curate computes it
        # with --tokenizer; without one it takes the teacher's prompt + completion counts (another tokenizer,
        # no template), or characters / 4 when the input has no counts (the report counts those estimates).
        # The demo's answers-only set counts without template tokens; sft re-tokenizes and does not read it.
        ("num_tokens", pa.int32()),
    ]
)

NAMES = {"prompt": PROMPT, "trace": TRACE, "sft_example": SFT_EXAMPLE}


def _family(t: pa.DataType) -> str:
    """Types that hold the same values compare equal: int32/int64, string/large_string, list/large_list."""
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_null(t):
        return "null"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"list<{_family(t.value_type)}>"
    if pa.types.is_struct(t):
        return "struct<" + ",".join(f"{f.name}:{_family(f.type)}" for f in sorted(t, key=lambda f: f.name)) + ">"
    return str(t)


def validate(actual: pa.Schema, expected: pa.Schema, where: str, kind: str | None = None) -> None:
    """Fail with one line naming every missing column and wrong type; extra columns are fine. An all-null
    column (pyarrow's `null` type, e.g. `answer` when no prompt has one) matches any type."""
    missing = [f.name for f in expected if f.name not in actual.names]
    wrong = []
    for f in expected:
        if f.name in actual.names:
            got = actual.field(f.name).type
            if not pa.types.is_null(got) and _family(got) != _family(f.type):
                wrong.append(f"{f.name} is {got}, expected {f.type}")
    if missing or wrong:
        kind = kind or next((k for k, s in NAMES.items() if s.equals(expected)), "record")
        parts = ([f"missing column(s) {', '.join(missing)}"] if missing else []) + wrong
        raise DistillError(
            f"{where} does not match the {kind} schema: {'; '.join(parts)} (the record schemas are in distill/core/schema.py)"
        )


def conform(table: pa.Table, expected: pa.Schema) -> pa.Table:
    """Cast the expected columns of `table` to their exact types (after validate), keeping extra columns."""
    columns, fields = [], []
    for name in table.column_names:
        col = table.column(name)
        if name in expected.names:
            target = expected.field(name).type
            col = col.cast(target)
            fields.append(pa.field(name, target))
        else:
            fields.append(table.schema.field(name))
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))
