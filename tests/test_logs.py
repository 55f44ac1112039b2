"""Logs a scheduler can keep: every stage, run with stdout and stderr into a file (as under Slurm), writes plain
timestamped lines: no carriage return, no escape code, no other library's progress bar, and its closing summary;
--log-json writes the same progress as JSON lines."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from distill.core.log import Progress, get_logger

# tqdm's bar ("45%|####  | 9/20 [00:01<00:02, 5.1it/s]") and the bars this project used to let through
BARS = re.compile(r"\d+%\||it/s\]|s/it\]|Loading weights|Writing model shards|Packing train dataset|"
                  r"Processed prompts|Running generate_until|Map: |Filter: ")


def run_to_file(log: Path, *args: str, env: dict | None = None) -> str:
    with log.open("w") as f:
        proc = subprocess.run([sys.executable, "-m", "distill", *map(str, args)], cwd=REPO, stdout=f,
                              stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, timeout=900)
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    return text


def assert_plain(text: str, summary: str) -> None:
    assert "\r" not in text, "a carriage return: something redraws a bar"
    assert "\x1b" not in text, "an escape code"
    bar = BARS.search(text)
    assert bar is None, f"another library's progress bar: {text[max(0, bar.start() - 80):bar.end() + 80]!r}"
    assert summary in text, f"no closing summary {summary!r}"
    for line in text.splitlines():
        if " INFO " in line or " WARNING " in line:
            assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (INFO|WARNING) ", line), line  # timestamped, dated


def json_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_every_stage_logs_plain_lines_to_a_file(tmp_path, parrot_model, tiny_model, shared_data):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "problem": f"What is 2 + {i}?", "answer": "5"}) + "\n"
                               for i in range(4)))
    gen, data, sft, ev = (tmp_path / n for n in ("gen", "data", "sft", "eval"))
    events = tmp_path / "progress.jsonl"

    text = run_to_file(tmp_path / "generate.log", "generate", "--prompts", prompts, "--out", gen, "--backend",
                       "transformers", "--model", parrot_model, "--max-tokens", "48", "--log-json", events)
    assert_plain(text, "distill generate")
    assert re.search(r"generate \(transformers\): 4/4 rows \(100%\)", text)

    text = run_to_file(tmp_path / "curate.log", "curate", gen, "--out", data, "--eval-data-dir", shared_data,
                       "--tokenizer", tiny_model, "--num-proc", "1", "--log-json", events)
    assert_plain(text, "distill curate")

    text = run_to_file(tmp_path / "sft.log", "sft", REPO / "recipes" / "tiny.yaml", "--set", f"model.name={tiny_model}",
                       "--set", "model.init=pretrained", "--set", "model.tokenizer=null", "--set", "model.config={}",
                       "--set", f"datasets.0.path={data}", "--output-dir", sft, "--set", "sft.max_steps=3",
                       "--set", "sft.logging_steps=1", "--log-json", events, env={"OMP_NUM_THREADS": "1"})
    assert_plain(text, "sft ->")

    text = run_to_file(tmp_path / "eval.log", "eval", "--model", sft, "--tasks", "math500", "--backend", "hf",
                       "--limit", "2", "--samples", "2", "--max-tokens", "8", "--data-dir", shared_data, "--out", ev,
                       "--log-json", events)
    assert_plain(text, "distill eval")

    records = json_events(events)
    stages = {r["stage"] for r in records if r["event"] == "progress"}
    assert {"generate (transformers)", "curate", "sft", "eval math500"} <= stages, stages
    ends = [r for r in records if r["event"] == "end" and r["stage"] == "sft"]
    assert ends and ends[-1]["done"] == ends[-1]["total"] == 3 and ends[-1]["note"].startswith("loss ")
    titles = [r["title"] for r in records if r["event"] == "summary"]
    assert titles[0] == "distill generate" and "distill curate" in titles and "distill eval" in titles
    assert all(r["time"].endswith("+00:00") for r in records)


def test_progress_reports_every_tenth_and_every_interval_but_not_each_item(monkeypatch):
    import logging
    import sys

    log_module = sys.modules[Progress.__module__]

    class Lines(logging.Handler):
        def __init__(self):
            super().__init__()
            self.lines = []

        def emit(self, record):
            self.lines.append(record.getMessage())

    monkeypatch.setenv("DISTILL_LOG_JSON", "")
    get_logger()  # the distill handler first, as in a real run
    handler = Lines()
    logging.getLogger("distill").addHandler(handler)
    try:
        with Progress("work", total=1000, unit="items", interval=3600) as bar:
            for _ in range(1000):
                bar.advance(1)
        tenths = [int(re.search(r"\((\d+)%\)", line)[1]) for line in handler.lines]
        assert tenths == list(range(10, 101, 10))  # each tenth once, the end not repeated
        handler.lines.clear()
        # a clock the test moves (a real sleep lets a stall on a loaded machine add a line)
        clock = [1000.0]
        monkeypatch.setattr(log_module.time, "monotonic", lambda: clock[0])
        with Progress("slow", total=None, unit="items", interval=0.05) as bar:
            for _ in range(4):
                bar.advance(1)
                clock[0] += 0.06
        assert [line.split()[1] for line in handler.lines] == ["2", "3", "4"]  # no total: a line per interval
    finally:
        logging.getLogger("distill").removeHandler(handler)


def test_json_lines_follow_the_progress(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILL_LOG_JSON", str(tmp_path / "log.jsonl"))
    with Progress("work", total=20, unit="rows", interval=3600) as bar:
        for _ in range(20):
            bar.advance(1, tokens=100)
        bar.note = "loss 0.5"
    records = json_events(tmp_path / "log.jsonl")
    assert [r["done"] for r in records if r["event"] == "progress"] == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    end = records[-1]
    assert end["event"] == "end" and end["total"] == 20 and end["unit"] == "rows" and end["note"] == "loss 0.5"
    assert end["tokens_per_s"] > 0 and end["eta_s"] == 0
