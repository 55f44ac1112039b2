"""GPQA Diamond, the fresh contests, and what results.json records about a task's provenance and noise: the real
`distill eval` CLI against a scripted OpenAI-compatible server (it reads the rendered prompt, so it can answer
the letter the correct choice was shuffled to) and the tiny model on the hf backend. Fixtures are made up here
in the hub's column layout; no real benchmark data is in the repository."""

from __future__ import annotations

import json
import math
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import send_json

from distill.core.readers import iter_jsonl
from distill.eval.choice_hooks import extract_letter, process_docs, shuffle_choices
from distill.eval.variance import sampling_noise, wide_stderr_warning

THINK = "<think>\nweighing the options\n</think>\n\n"


def write_gpqa(folder: Path, n: int = 12, drop: str | None = None) -> Path:
    """n made-up questions in the hub's columns: the correct choice is the text "right <i>"."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"Record ID": f"rec{i:03d}", "Question": f"Which of these is the right one, case {i}?",
             "Correct Answer": f"right {i}", "Incorrect Answer 1": f"wrong {i}a",
             "Incorrect Answer 2": f"wrong {i}b", "Incorrect Answer 3": f"wrong {i}c", "High-level domain": "Physics"}
            for i in range(n)]
    with (folder / "gpqa_diamond.jsonl").open("w") as f:
        for row in rows:
            row.pop(drop, None)
            f.write(json.dumps(row) + "\n")
    return folder


def write_contest(folder: Path, name: str, n: int = 5) -> Path:
    """MathArena's layout: problem_idx, problem, answer (a string), problem_type."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{name}.jsonl").open("w") as f:
        for i in range(1, n + 1):
            f.write(json.dumps({"problem_idx": i, "problem": f"Compute {i} times 7.", "answer": str(7 * i),
                                "problem_type": ["Algebra"]}) + "\n")
    return folder


# ---------------------------------------------------------------- a scripted server


class _Server(ThreadingHTTPServer):
    """OpenAI-compatible /v1/completions; `reply(prompt, seed)` decides each sample's text."""

    def __init__(self, reply):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.reply = reply
        self.prompts: list[str] = []

    def __enter__(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server_port}/v1"

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, data: dict) -> None:
        send_json(self, data)

    def do_GET(self):  # noqa: N802 - http.server's naming
        self._send({"object": "list", "data": [{"id": "served", "object": "model"}]})

    def do_POST(self):  # noqa: N802
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.prompts.append(payload["prompt"])
        text = self.server.reply(payload["prompt"], payload["seed"])
        self._send({"choices": [{"text": text, "index": 0, "finish_reason": "stop"}],
                    "usage": {"completion_tokens": len(text.split())}})


def knows_the_answer(prompt: str, seed: int) -> str:
    """Reads the shown choices and answers the letter of "right <i>", in one of the accepted forms."""
    letter = re.search(r"^([A-D])\) right \d+$", prompt, re.M).group(1)
    forms = [f"\\boxed{{{letter}}}", f"$\\boxed{{({letter})}}$", f"Answer: {letter}", f"\\boxed{{\\text{{{letter}}}}}"]
    return THINK + forms[seed % 4]


def run_cli(capsys, *args) -> tuple[int, str]:
    from distill.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    return exit_info.value.code, capsys.readouterr().err.strip()


def served_eval(capsys, model: Path, url: str, data: Path, out: Path, tasks: str, *extra) -> tuple[int, str]:
    return run_cli(capsys, "eval", "--model", model, "--tasks", tasks, "--backend", "openai", "--base-url", url,
                   "--max-tokens", "64", "--data-dir", data, "--out", out, "--reasoning", "on", *extra)


# ---------------------------------------------------------------- GPQA: shuffle and letters


def test_shuffle_is_per_question_reproducible_and_moves_the_key():
    import datasets

    rows = datasets.Dataset.from_list([{"Question": f"q{i}", "Correct Answer": "yes", "Incorrect Answer 1": "n1",
                                        "Incorrect Answer 2": "n2", "Incorrect Answer 3": "n3"} for i in range(40)])
    first, again, other = process_docs(rows, 0), process_docs(rows, 0), process_docs(rows, 1)
    assert [d["answer"] for d in first] == [d["answer"] for d in again]
    assert [d["answer"] for d in first] != [d["answer"] for d in other]
    assert len({d["answer"] for d in first}) == 4  # the hub's first-column key lands on every letter
    for doc in first:
        assert doc["choices"][ord(doc["answer"]) - ord("A")] == "yes" and sorted(doc["choices"]) == ["n1", "n2", "n3", "yes"]
    # a question's order depends on its own text and the seed, not on the rows around it
    alone = process_docs(datasets.Dataset.from_list([rows[7]]), 0)[0]
    assert alone["choices"] == first[7]["choices"]
    assert shuffle_choices("q7", "yes", ["n1", "n2", "n3"], 0) == (first[7]["choices"], first[7]["answer"])


@pytest.mark.parametrize(("tail", "letter"), [
    ("\\boxed{C}", "C"), ("$\\boxed{(C)}$", "C"), ("\\boxed{\\text{C}}", "C"), ("\\boxed{\\textbf{(C)}}", "C"),
    ("\\boxed{C) 42 m/s}", "C"), ("Answer: C", "C"), ("**Answer:** (C)", "C"), ("The answer is C.", "C"),
    ("\\boxed{B} ... on reflection \\boxed{C}", "C"),
    ("\\boxed{42}", None),                 # a value, not a letter
    ("The answer is a bit subtle.", None),  # "a" is a word, not a choice
    ("I pick C", None),                     # a bare letter in prose
])
def test_accepted_letter_forms(tail, letter):
    assert extract_letter(THINK + tail) == letter


def test_a_letter_inside_an_unclosed_think_is_no_answer():
    assert extract_letter("<think>\nit is \\boxed{C}") is None
    assert extract_letter("it is \\boxed{C}", reasoning=False) == "C"


# ---------------------------------------------------------------- GPQA end to end


def test_gpqa_scores_the_shuffled_letters(tmp_path, tiny_model, capsys):
    data = write_gpqa(tmp_path / "data")
    with _Server(knows_the_answer) as url:
        code, err = served_eval(capsys, tiny_model, url, data, tmp_path / "right", "gpqa_diamond", "--samples", "4",
                                "--published", "DeepSeek-R1-Distill-Qwen-1.5B")
    assert code == 0, err
    results = json.loads((tmp_path / "right" / "results.json").read_text())
    task = results["tasks"]["gpqa_diamond"]
    assert (task["pass@1"], task["cons@k"], task["k"], task["n"]) == (1.0, 1.0, 4, 12)
    assert task["shuffle_seed"] == 0 and "letter" in task["grader"] and "D) {choice D}" in task["user_prompt"]
    # the key is reproducible from the recorded seed, with nothing but the data and shuffle_choices
    rows = list(iter_jsonl(tmp_path / "right" / "samples" / "gpqa_diamond.jsonl"))
    source = {r["Record ID"]: r for r in iter_jsonl(data / "gpqa_diamond.jsonl")}
    for row in rows:
        src = source[row["id"]]
        _, key = shuffle_choices(src["Question"], src["Correct Answer"],
                                 [src[f"Incorrect Answer {j}"] for j in (1, 2, 3)], task["shuffle_seed"])
        assert row["reference"] == key == row["answer"]
        assert f"{key}) right " in row["prompt"] and row["prompt"].endswith("<think>\n")
        assert "put the letter of the correct choice (A, B, C or D) within \\boxed{}." in row["prompt"]
    # the published numbers stand beside it
    report = (tmp_path / "right" / "report.md").read_text()
    assert "| 33.8 [1] | 71.5 [1] |" in report and "choices shuffled with seed 0" in report

    # a model that always answers A scores exactly the share of questions whose key the shuffle put at A
    with _Server(lambda prompt, seed: THINK + "\\boxed{A}") as url:
        code, err = served_eval(capsys, tiny_model, url, data, tmp_path / "fixed", "gpqa_diamond", "--samples", "2")
    assert code == 0, err
    fixed = json.loads((tmp_path / "fixed" / "results.json").read_text())["tasks"]["gpqa_diamond"]
    at_a = sum(r["reference"] == "A" for r in rows) / len(rows)
    assert 0 < at_a < 1 and fixed["pass@1"] == pytest.approx(at_a)


def test_gpqa_data_errors_are_one_line(tmp_path, tiny_model, capsys, monkeypatch):
    args = ["eval", "--model", tiny_model, "--tasks", "gpqa_diamond", "--backend", "hf", "--samples", "1",
            "--max-tokens", "4", "--out", tmp_path / "o"]
    # a file without one of the hub's columns: named, with the fix
    code, err = run_cli(capsys, *args, "--data-dir", write_gpqa(tmp_path / "bad", 3, drop="Incorrect Answer 2"))
    assert code == 2 and err.count("\n") == 0 and "Traceback" not in err
    assert "no 'Incorrect Answer 2' column" in err and "gpqa_diamond.jsonl" in err

    # the hub refuses a gated dataset without a token (simulated where datasets raises it)
    import datasets
    from datasets.exceptions import DatasetNotFoundError

    def gated(*a, **k):
        raise DatasetNotFoundError("Dataset 'Idavidrein/gpqa' is a gated dataset on the Hub. You must be "
                                   "authenticated to access it.")

    monkeypatch.setattr(datasets, "load_dataset", gated)
    code, err = run_cli(capsys, *args)
    assert code == 2 and err.count("\n") == 0
    assert "Idavidrein/gpqa" in err and "gated" in err and "huggingface-cli login" in err and "HF_TOKEN" in err
    assert "https://huggingface.co/datasets/Idavidrein/gpqa" in err and "--data-dir" in err
    monkeypatch.undo()

    # offline (conftest): the generic error names the file and the gating
    code, err = run_cli(capsys, *args)
    assert code == 2 and err.count("\n") == 0 and "gpqa_diamond.jsonl" in err and "HF_TOKEN" in err


# ---------------------------------------------------------------- contests, provenance, noise


def test_a_contest_reads_its_fixture_and_records_its_provenance(tmp_path, tiny_model, capsys):
    import transformers

    data = write_contest(tmp_path / "data", "hmmt_feb25", n=3)
    out = tmp_path / "eval"
    code, err = run_cli(capsys, "eval", "--model", tiny_model, "--tasks", "hmmt_feb25", "--backend", "hf",
                        "--samples", "2", "--max-tokens", "4", "--data-dir", data, "--out", out)
    assert code == 0, err
    task = json.loads((out / "results.json").read_text())["tasks"]["hmmt_feb25"]
    assert task["task"] == "distill_hmmt_feb25" and task["data"] == str((data / "hmmt_feb25.jsonl").resolve())
    rows = list(iter_jsonl(out / "samples" / "hmmt_feb25.jsonl"))
    assert [r["id"] for r in rows] == ["1", "1", "2", "2", "3", "3"] and rows[0]["reference"] == "7"
    prov = task["provenance"]
    assert prov["engine"] == "transformers" and prov["engine_version"] == transformers.__version__
    assert prov["dtype"] == "float32" and prov["dtype_requested"] == "auto"
    assert prov["seeds"]["sampling"] == 1234 and prov["seeds"]["per_sample"]
    assert (prov["k"], prov["n"]) == (2, 3)
    assert "engine transformers" in (out / "report.md").read_text()


def test_contests_are_a_tag_and_a_new_one_is_a_file(tmp_path):
    from lm_eval.tasks import TaskManager

    repo = Path(__file__).parent.parent
    manager = TaskManager(include_path=str(repo / "eval"), include_defaults=False)
    assert sorted(manager.task_index["distill_contests"].tags) == [
        "distill_aime26", "distill_brumo25", "distill_hmmt_feb25", "distill_hmmt_feb26"]
    hubs = {n: manager.task_index[n].cfg["dataset_path"] for n in manager.task_index["distill_contests"].tags}
    assert hubs["distill_hmmt_feb25"] == "MathArena/hmmt_feb_2025" and hubs["distill_aime26"] == "MathArena/aime_2026"
    for name in hubs:
        cfg = manager.task_index[name].cfg
        assert cfg["repeats"] == 64 and cfg["test_split"] == "train" and cfg["generation_kwargs"]["temperature"] == 0.6
        assert len((repo / "eval" / "contests" / f"{name}.yaml").read_text().splitlines()) <= 5


def test_sampling_noise_formula():
    # shares 1, 0.25, 0, 0.5 at k = 4: v_i = p(1-p) k/(k-1) = 0, 0.25, 0, 1/3
    noise = sampling_noise([1.0, 0.25, 0.0, 0.5], 4)
    total = 0.1875 * 4 / 3 + 0.25 * 4 / 3
    assert noise["pass@1_sampling_stderr"] == pytest.approx(math.sqrt(total / 4) / 4)
    assert noise["samples_for_1pt"] == math.ceil(total / (4 * 0.01) ** 2)
    assert math.sqrt(total / noise["samples_for_1pt"]) / 4 <= 0.01 < math.sqrt(total / (noise["samples_for_1pt"] - 1)) / 4
    assert sampling_noise([1.0, 0.0], 8) == {"pass@1_sampling_stderr": 0.0, "samples_for_1pt": 8}
    assert sampling_noise([1.0, 0.0, 0.0, 1.0], 1)["pass@1_sampling_stderr"] == pytest.approx(0.25)  # the k=1 bound
    assert wide_stderr_warning("x", {"pass@1_sampling_stderr": 0.019, "k": 4, "n": 4}) is None
    one = wide_stderr_warning("x", {**sampling_noise([1.0, 0.0, 0.0, 1.0], 1), "k": 1, "n": 4})
    assert one.startswith("x: pass@1 moves by up to ± 25.0 points") and "about 625 samples per problem" in one


def test_a_noisy_contest_is_warned_about_in_the_log_and_the_report(tmp_path, tiny_model, capsys):
    data = write_contest(tmp_path / "data", "brumo25", n=6)

    def coin(prompt: str, seed: int) -> str:  # right or wrong by the sample's seed: about half of each problem's k
        answer = int(re.search(r"Compute (\d+) times 7", prompt).group(1)) * 7
        return THINK + f"\\boxed{{{answer if seed % 2 else answer + 1}}}"

    out = tmp_path / "eval"
    with _Server(coin) as url:
        code, err = served_eval(capsys, tiny_model, url, data, out, "brumo25", "--samples", "4")
    assert code == 0, err
    task = json.loads((out / "results.json").read_text())["tasks"]["brumo25"]
    rows = list(iter_jsonl(out / "samples" / "brumo25.jsonl"))
    shares = [sum(r["correct"] for r in rows if r["id"] == i) / 4 for i in dict.fromkeys(r["id"] for r in rows)]
    assert task["pass@1_sampling_stderr"] == pytest.approx(sampling_noise(shares, 4)["pass@1_sampling_stderr"])
    assert task["pass@1_sampling_stderr"] > 0.02 and task["samples_for_1pt"] > 4
    line = f"brumo25: pass@1 moves by ± {100 * task['pass@1_sampling_stderr']:.1f} points from sampling alone"
    assert line in err and f"about {task['samples_for_1pt']} samples per problem" in err
    report = (out / "report.md").read_text()
    assert "## Wide standard errors" in report and line in report
    assert task["provenance"]["engine"] == "openai-compatible server" and task["provenance"]["dtype"] is None
