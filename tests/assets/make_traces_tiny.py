"""Rebuild tests/assets/traces_tiny.jsonl: hand-made traces in the TRACE schema, each bad in exactly one way.

    .venv/bin/python tests/assets/make_traces_tiny.py

Every row carries `expect`: the reason the default curate chain must drop it for, or "kept". The rows that only
make sense with the shared eval data (a verbatim AIME problem) are added by the tests at run time, so no eval
problem is ever copied into the repository.
"""

import json
import random
from pathlib import Path

HERE = Path(__file__).parent
SUFFIX = "Please reason step by step, and put your final answer within \\boxed{}."


def prose(seed: int, words: int) -> str:
    """Varied filler reasoning: compresses like prose (~3x), never repeats a sentence."""
    rng = random.Random(seed)
    vocab = ("we check the sum again so each term adds up carefully then compare both sides of the equation "
             "note that the value must be positive because the square is never negative hence try small cases "
             "first and see whether a pattern appears in the remainders modulo seven").split()
    out = []
    for i in range(words):
        out.append(rng.choice(vocab) + (f" {rng.randint(2, 999)}." if i % 9 == 8 else ""))
    return " ".join(out)


def trace(tid, prompt, problem, completion, answer="5", expect="kept", teacher="deepseek-r1", finish="stop",
          prompt_tokens=40, completion_tokens=None, sample=0):
    return {
        "id": f"{prompt}/{sample}", "prompt_id": prompt, "sample": sample, "problem": problem, "answer": answer,
        "source": "tiny", "messages": [{"role": "user", "content": f"{problem}\n{SUFFIX}"}],
        "completion": completion, "finish_reason": finish, "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens if completion_tokens is not None else len(completion) // 4,
        "teacher": teacher, "model": "deepseek-ai/DeepSeek-R1" if teacher == "deepseek-r1" else teacher,
        "expect": expect, "case": tid,
    }


def good(reasoning: str, box: str = "5") -> str:
    return f"<think>\n{reasoning}\n</think>\n\nSo the answer is $\\boxed{{{box}}}$."


def rows() -> list[dict]:
    p = "What is $2+3$?"
    r = [
        trace("good", "add-2-3", p, good("2 plus 3 is 5. " + prose(1, 60))),
        trace("exact duplicate completion", "add-2-3", p, good("2 plus 3 is 5. " + prose(1, 60)), sample=1,
              expect="duplicate"),
        trace("near-duplicate prompt", "add-2-3-again", "What is  $2 + 3$ ?", good("Adding: 5. " + prose(2, 60)),
              expect="duplicate"),
        trace("truncated", "t-1", "Compute $7 \\times 8$.", "<think>\nSeven eights are " + prose(3, 80),
              answer="56", finish="length", expect="truncated"),
        trace("two </think>", "f-1", "Compute $9+10$.", "<think>\nnine plus ten\n</think>\nhmm\n</think>\n\n"
              "$\\boxed{19}$", answer="19", expect="bad_think_format"),
        trace("no box", "n-1", "Compute $4+4$.", "<think>\n4+4=8. " + prose(4, 40) + "\n</think>\n\nThe answer is 8.",
              answer="8", expect="no_answer"),
        trace("wrong answer", "w-1", "Compute $5+7$.", good("5+7=13? " + prose(5, 40), "13"), answer="12",
              expect="wrong_answer"),
        trace("answer that hangs sympy", "w-2", "Compute $5+0$.", good(prose(6, 40), "10^{10^{10}}"),
              expect="wrong_answer"),
        trace("equivalent answer form", "e-1", "Write $0.5$ as a fraction.", good(prose(7, 40), "\\dfrac{1}{2}"),
              answer="\\frac12"),
        trace("language switch", "l-1", "Compute $6+6$.", good("6+6=12. 所以答案是十二. " + prose(8, 40), "12"),
              answer="12", expect="mixed_language"),
        trace("loop", "r-1", "Compute $3 \\cdot 3$.",
              good(prose(9, 30) + "\n" + "Wait, let me recompute three times three again.\n" * 40, "9"),
              answer="9", expect="repetition"),
        trace("wall of text", "p-1", "Compute $10-1$.", good(prose(10, 700), "9"), answer="9",
              expect="long_paragraph"),
        trace("code in reasoning", "c-1", "Compute $2^5$.",
              good(prose(11, 30) + "\n```python\nprint(2 ** 5)\n```\nwhich prints 32.", "32"), answer="32",
              expect="code_block"),
        trace("too long", "L-1", "Compute $1+1$.", good(prose(12, 40), "2"), answer="2", completion_tokens=40_000,
              expect="too_long"),
        trace("too short", "s-1", "Compute $1+2$.", "<think>\n3\n</think>\n\n$\\boxed{3}$", answer="3",
              prompt_tokens=2, completion_tokens=3, expect="too_short"),
        trace("Sky-T1 tags", "sky-1", "Compute $20+22$.",
              "<|begin_of_thought|>\n\n20+22 is 42. " + prose(13, 40) + "\n\n<|end_of_thought|>\n\n"
              "<|begin_of_solution|>\n\nThe answer is \\(\\boxed{42}\\).\n\n<|end_of_solution|>", answer="42",
              teacher="sky-t1"),
        trace("non-reasoning (deepseek-v3, no reference)", "v3-1", "Name the capital of France.",
              "The capital of France is Paris.", answer=None, teacher="deepseek-v3"),
        trace("non-reasoning with think tags", "v3-2", "Name the capital of Italy.",
              "<think>hm</think>The capital of Italy is Rome.", answer=None, teacher="deepseek-v3",
              expect="bad_think_format"),
    ]
    # six correct samples of one prompt: the cap (4, shortest first) drops the two longest
    for s in range(6):
        r.append(trace(f"cap sample {s}", "cap-1", "Compute $11 \\times 11$.", good(prose(20 + s, 40 + 10 * s), "121"),
                       answer="121", sample=s, expect="per_prompt_cap" if s >= 4 else "kept"))
    return r


if __name__ == "__main__":
    with (HERE / "traces_tiny.jsonl").open("w") as f:
        for row in rows():
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
