"""`distill demo`: the whole pipeline offline on a CPU, showing that reasoning traces teach a student.

    distill demo                  # ~11 min on 2 cores: generate -> curate -> 2x sft -> 3x eval, table + plot
    distill demo --on-policy      # + a fourth student: the answers-only one, then opd from the trace one (+~3 min)
    distill demo --quick          # ~3 min, the same stages on fewer problems and steps (CI)
    demo(DemoConfig(out="runs/demo"))

A program teacher (`--teacher arithmetic`) writes step-by-step traces for long sums, a few of them flawed;
curate drops the flawed ones; two copies of one tiny random-init Qwen2 student are trained with the same
budget, one on the full traces and one on the answers alone (think block emptied); with --on-policy the
answers-only student is then distilled on-policy (opd) with the trace-trained one as its teacher, on the same train
prompts and nothing else (it samples, the teacher scores every token); all of them and the untrained student are scored on held-out
problems with the R1 protocol. Every stage is the public stage function a user runs, writing its own directory
under OUT with a manifest that links to the stage before it:

    OUT/prompts/            train.jsonl, arithmetic_test.jsonl (disjoint problems)
    OUT/generate/           teacher traces                         (distill generate)
    OUT/curate/             SFT data, dataset card, report         (distill curate)
    OUT/curate_answers_only/  the same examples without reasoning  (derived here, manifest -> curate)
    OUT/student_init/       the random-init student and tokenizer  (both students start from it)
    OUT/sft_traces/, OUT/sft_answers_only/                         (distill sft; recipe.yaml beside each)
    OUT/opd_on_policy/      sft_answers_only taught by sft_traces  (distill opd; recipe.yaml beside it)
    OUT/eval_traces/, OUT/eval_answers_only/, OUT/eval_on_policy/, OUT/eval_untrained/   (distill eval)
    OUT/results.json, OUT/report.png, OUT/report.md, OUT/manifest.json
"""

from __future__ import annotations

import json
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from distill.core.config import from_dict, load_config
from distill.core.errors import DistillError
from distill.core.manifest import atomic_write_text, is_complete, now, write_manifest
from distill.core.protocol import R1_PROMPT_SUFFIX, THINK_CLOSE, THINK_OPEN, user_prompt
from distill.core.schema import SFT_EXAMPLE
from distill.core.shards import ShardWriter, read_shards
from distill.core.stage_dirs import DATA, RECIPE, TRAIN
from distill.curate import curate
from distill.curate.config import CurateConfig
from distill.demo.config import DemoConfig, run_stamp
from distill.demo.report import write_report
from distill.eval import evaluate
from distill.eval.config import EvalConfig
from distill.generate import generate
from distill.generate.config import GenerateConfig
from distill.opd.demo_student import run_on_policy_student
from distill.sft import sft
from distill.sft.recipe import SFTRecipe
from distill.tasks.arithmetic import SumTask, completion_text, problem_text, solve
from distill.tasks.student import STUDENT_CONFIG, build_student, chat_prompt, count_tokens, save_tokenizer

STUDENTS = ("traces", "answers_only", "on_policy", "untrained")


def run(cfg: DemoConfig) -> Path:
    out = prepare_out(cfg)
    started, clock = now(), StageClock(out)
    # ---------------------------------------------------------------- data: prompts, traces, SFT sets
    with clock.stage("prompts", done=prompts_written(out / "prompts")):
        prompts = write_prompts(out / "prompts", cfg)
    with clock.stage("generate", out / "generate"):
        traces = run_generate(out, cfg, prompts)
    with clock.stage("curate", out / "curate"):
        data = run_curate(out, cfg, traces, prompts)
    with clock.stage("answers_only", out / "curate_answers_only"):
        data_answers = strip_reasoning(data, out / "curate_answers_only")
    # ---------------------------------------------------------------- students: one init, two trainings, then opd
    with clock.stage("student_init", out / "student_init"):
        init = build_initial_student(out / "student_init", cfg)
    models = {"untrained": init}
    for name, dataset in (("traces", data), ("answers_only", data_answers)):
        with clock.stage(f"sft_{name}", out / f"sft_{name}"):
            models[name] = run_sft(out / f"sft_{name}", cfg, init, dataset)
    if cfg.on_policy:
        with clock.stage("opd_on_policy", out / "opd_on_policy"):
            models["on_policy"] = run_on_policy(out, cfg, models["answers_only"], models["traces"], prompts)
    # ---------------------------------------------------------------- eval: the same held-out problems
    evals = {}
    for name in (s for s in STUDENTS if s in models):
        with clock.stage(f"eval_{name}", out / f"eval_{name}"):
            evals[name] = run_eval(out / f"eval_{name}", cfg, models[name], prompts)
    return write_report(out, cfg, data, evals, clock.seconds, started)


# ---------------------------------------------------------------- helpers, one per stage


def prepare_out(cfg: DemoConfig) -> Path:
    """OUT, emptied when --force. A folder that holds something other than a demo is never touched, and a demo of
    another size or task there is refused: stages resume otherwise, and would mix the two runs."""
    out = Path(cfg.out).expanduser().resolve()  # stage configs then name the same paths however OUT is spelled
    settings = out / ".demo_settings.json"
    if out.is_dir() and any(out.iterdir()) and not settings.is_file():
        raise DistillError(f"{out} is not empty and holds no demo; choose another --out (--force clears only a demo)")
    if cfg.force and out.exists():
        shutil.rmtree(out)
    stamp = run_stamp(cfg)
    if settings.is_file() and json.loads(settings.read_text()) != stamp:
        raise DistillError(f"{out} holds a demo run with other settings; pass --force to start over, or another --out")
    out.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps(stamp, indent=1) + "\n")
    return out


class StageClock:
    """Wall time per stage, kept in OUT/.wall_time.json so that a resumed demo still reports what each stage
    cost: a stage already complete when the demo starts keeps the time recorded when it ran, and the time an
    interrupted run spent on a stage is added to that of the run that finishes it."""

    def __init__(self, out: Path) -> None:
        self.path = out / ".wall_time.json"
        self.seconds: dict[str, float] = json.loads(self.path.read_text()) if self.path.is_file() else {}

    @contextmanager
    def stage(self, name: str, directory: Path | None = None, done: bool = False):
        """`directory`: the stage's output, complete when its manifest says so; `done`: for a step without one."""
        done = done or (directory is not None and is_complete(directory))
        if done and name in self.seconds:
            yield
            return
        start = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.monotonic() - start, 1)
            self.path.write_text(json.dumps(self.seconds, indent=1) + "\n")


PROMPT_FILES = ("train.jsonl", "arithmetic_test.jsonl")


def prompts_written(directory: Path) -> bool:
    """The prompts are a pure function of the demo's settings (which prepare_out holds fixed for OUT), and each
    file is renamed into place whole, so their presence means a resumed demo regenerates the same bytes."""
    return all((directory / name).is_file() for name in PROMPT_FILES)


def write_prompts(directory: Path, cfg: DemoConfig) -> Path:
    """Train prompts and held-out test problems, drawn from disjoint halves of the problem space."""
    task, size = SumTask(cfg.terms, cfg.digits), cfg.size
    directory.mkdir(parents=True, exist_ok=True)
    for name, split, n in zip(PROMPT_FILES, ("train", "test"), (size.train_problems, size.test_problems), strict=True):
        rows = task.prompts(split, n, cfg.seed)
        atomic_write_text(directory / name, "".join(json.dumps(r) + "\n" for r in rows))
    return directory


def run_generate(out: Path, cfg: DemoConfig, prompts: Path) -> Path:
    return generate(GenerateConfig(prompts=str(prompts / "train.jsonl"), out=str(out / "generate"),
                                   teacher="arithmetic", seed=cfg.seed, shard_rows=1000))


def run_curate(out: Path, cfg: DemoConfig, traces: Path, prompts: Path) -> Path:
    """The default filter chain; decontamination runs against the demo's own held-out set (the shipped AIME and
    MATH-500 sets would need the hub or a data folder, and cannot overlap these sums anyway)."""
    overrides = [
        "contaminated.benchmarks=[]",
        f"contaminated.files=[{prompts / 'arithmetic_test.jsonl'}]",
        "num_proc=1",  # a few thousand short rows: a worker pool would cost more to start than it saves
    ]
    values = {"src": str(traces), "out": str(out / "curate"), "tokenizer": str(out / "student_init" / "tokenizer"),
              "dataset_name": "distill-demo-arithmetic"}
    ensure_tokenizer(out / "student_init" / "tokenizer")
    return curate(load_config(CurateConfig, None, overrides, values))


def ensure_tokenizer(directory: Path) -> Path:
    return directory if (directory / "tokenizer.json").is_file() else save_tokenizer(directory)


def strip_reasoning(data: Path, target: Path) -> Path:
    """The curated examples with the think block emptied: same prompts, same answers, no reasoning. Written like
    a curate output (data/train-*.parquet + manifest linking to `data`), so that sft reads it the same way."""
    if is_complete(target):
        return target
    shutil.rmtree(target / DATA, ignore_errors=True)
    rows = read_shards(data / DATA, TRAIN).to_pylist()
    writer = ShardWriter(target / DATA, TRAIN, SFT_EXAMPLE, shard_rows=max(1, len(rows)))
    for row in rows:
        user, assistant = row["messages"]
        answer_part = assistant["content"].split(THINK_CLOSE, 1)[1].strip()
        content = f"{THINK_OPEN}\n\n{THINK_CLOSE}\n\n{answer_part}"
        writer.add({**row, "messages": [user, {"role": "assistant", "content": content}],
                    "num_tokens": count_tokens(user["content"]) + count_tokens(content)})
    writer.close()
    write_manifest(target, "strip_reasoning", {"transform": "assistant content -> '<think>\\n\\n</think>\\n\\n' + "
                   "the text after </think>"}, inputs=[data], counts={"rows": len(rows)})
    return target


def build_initial_student(directory: Path, cfg: DemoConfig) -> Path:
    """One random-init student both trainings start from, so that only the data differs between them."""
    if is_complete(directory):
        return directory
    tokenizer = ensure_tokenizer(directory / "tokenizer")
    build_student(directory, tokenizer, seed=cfg.seed)
    write_manifest(directory, "student_init", {"architecture": "Qwen2", "config": STUDENT_CONFIG, "seed": cfg.seed,
                                               "tokenizer": str(tokenizer)})
    return directory


def sft_recipe(output_dir: Path, cfg: DemoConfig, init: Path, dataset: Path) -> dict[str, Any]:
    """The recipe both students get; only the dataset differs. Saved next to the model as recipe.yaml."""
    return {
        "name": f"demo-{output_dir.name}",
        "model": {"name": str(init), "init": "pretrained", "chat_template": "chatml_r1", "dtype": "float32"},
        "datasets": [{"path": str(dataset), "weight": 1.0, "seed": cfg.seed}],
        "output_dir": str(output_dir),
        "sft": {
            "max_steps": cfg.size.max_steps,
            # one example per row: packing several short ones into a long row would only add masked attention
            "max_length": example_tokens(cfg),
            "per_device_train_batch_size": 16,
            "learning_rate": cfg.learning_rate,  # a from-scratch tiny model wants a large step
            "lr_scheduler_type": "cosine",
            "warmup_steps": 0.05,
            "weight_decay": 0.0,
            "gradient_checkpointing": False,  # activations are tiny; recomputing them would only cost time
            "logging_steps": 10,
            "save_steps": max(25, cfg.size.max_steps // 4),  # a killed demo loses at most a quarter of a training
            "dataloader_num_workers": 0,
            "seed": cfg.seed,
        },
    }


def example_tokens(cfg: DemoConfig) -> int:
    """Tokens of the longest training example (prompt + trace + EOS), rounded up to a multiple of 8. The trace
    layout is fixed, so every example of the task is within a token or two of this."""
    widest = [10**cfg.digits - 1] * cfg.terms
    prompt = chat_prompt([{"role": "user", "content": user_prompt(problem_text(widest), R1_PROMPT_SUFFIX)}])
    n = count_tokens(prompt) + count_tokens(completion_text(*solve(widest))) + 1
    return -(-n // 8) * 8


def run_sft(output_dir: Path, cfg: DemoConfig, init: Path, dataset: Path) -> Path:
    import yaml

    recipe = sft_recipe(output_dir, cfg, init, dataset)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / RECIPE).write_text(
        f"# the recipe `distill demo` trained this student with; re-run: distill sft {output_dir / 'recipe.yaml'}\n"
        + yaml.safe_dump(recipe, sort_keys=False)
    )
    return sft(from_dict(SFTRecipe, recipe))


def run_on_policy(out: Path, cfg: DemoConfig, student: Path, teacher: Path, prompts: Path) -> Path:
    """The answers-only student taught on-policy by the trace-trained one: the train prompts only, no traces or
    answers (opd resumes from its own checkpoints, like sft)."""
    return run_on_policy_student(out / "opd_on_policy", student=student, teacher=teacher,
                                 prompts=prompts / "train.jsonl", steps=cfg.size.opd_steps, seed=cfg.seed)


def run_eval(out: Path, cfg: DemoConfig, model: Path, prompts: Path) -> Path:
    return evaluate(EvalConfig(
        model=str(model), tasks=["arithmetic"], out=str(out), backend="hf", samples=cfg.size.eval_samples,
        max_tokens=80,  # a correct trace is ~50 tokens: a student that rambles is cut off and scored wrong
        data_dir=str(prompts), batch_size=64, seed=cfg.seed, dtype="float32",
    ))
