"""The on-policy step: distill's opd trainer against a bare TRL DistillationTrainer, same models, same data, one run.

    python benchmarks/opd_step.py                                  # CPU: tiny random student and teacher
    python benchmarks/opd_step.py --steps 30 --rounds 3 --max-tokens 64

Both variants train the same student (a random 2-layer Qwen2, loaded fresh from one saved copy) against the
same in-process teacher (a random 4-layer Qwen2) on the same 64 prompts, with the same seed; generation is
forced to exactly --max-tokens tokens (min_new_tokens), so both do the same work step for step.

  ours  what `distill opd` builds: distill's recipe -> DistillationConfig (distill.opd.run), the prompts rendered
        by distill (R1 user turn, <think> prefill) and tokenized without added specials, the progress line
        with tokens/s, KL, sample length and EOS share, the SIGTERM checkpoint callback
  bare  trl.DistillationTrainer with conversational prompts ({"role": "user"}) and TRL's own rendering

Printed: the median seconds per optimizer step of each (the first --warmup steps of a round left out), over
--rounds alternating rounds, and distill's overhead. Target (issue 21): at most 5%.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("DISTILL_PROGRESS", "0")  # the progress line is measured, not printed


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=16, help="optimizer steps per round")
    p.add_argument("--warmup", type=int, default=2, help="steps of each round left out of the timing")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds of each variant")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=32)
    return p.parse_args(argv)


def save_models(root: Path) -> tuple[Path, Path]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config

    tok = AutoTokenizer.from_pretrained(REPO / "tests" / "assets" / "tiny_tokenizer")
    paths = []
    for name, width, layers in (("student", 64, 2), ("teacher", 128, 4)):
        config = Qwen2Config(vocab_size=len(tok), hidden_size=width, intermediate_size=2 * width,
                             num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                             tie_word_embeddings=True, initializer_range=0.2)
        torch.manual_seed(len(paths))
        AutoModelForCausalLM.from_config(config).save_pretrained(root / name)
        tok.save_pretrained(root / name)
        paths.append(root / name)
    return paths[0], paths[1]


def prompts_file(root: Path) -> Path:
    import json

    path = root / "prompts.jsonl"
    path.write_text("".join(json.dumps({"id": f"p{i}", "problem": f"What is {i} + {2 * i + 1}?"}) + "\n"
                            for i in range(64)))
    return path


def recipe_for(student: Path, teacher: Path, prompts: Path, out: Path, args: argparse.Namespace):
    from distill.opd.recipe import load_recipe

    return load_recipe(REPO / "recipes" / "opd" / "tiny.yaml", [
        f"student.name={student}", "student.init=pretrained", "student.tokenizer=null", "student.config={}",
        "student.chat_template=chatml_r1", f"teacher.name={teacher}", f"prompts.path={prompts}", f"output_dir={out}",
        f"generation.max_tokens={args.max_tokens}", "generation.samples_per_prompt=1",
        f"opd.max_steps={args.steps}", f"opd.per_device_train_batch_size={args.batch}", "opd.save_strategy=no",
        f"opd.generation_kwargs={{min_new_tokens: {args.max_tokens}}}"])


class StepClock:
    """Seconds between consecutive optimizer steps."""

    def __init__(self):
        from transformers import TrainerCallback

        clock = self

        class Callback(TrainerCallback):
            def on_step_begin(self, *a, **k):
                clock.began = time.perf_counter()

            def on_step_end(self, *a, **k):
                clock.times.append(time.perf_counter() - clock.began)

        self.times: list[float] = []
        self.callback = Callback()


def ours(recipe) -> list[float]:
    from transformers import set_seed

    from distill.core.preempt import StopOnSignal
    from distill.opd.models import load_student, load_teacher, student_tokenizer
    from distill.opd.prompts import read_problems, render_dataset
    from distill.opd.run import build_trainer, distillation_config, resolve_args
    from distill.sft.trainer import SaveAndStopOnSignal

    args = resolve_args(recipe)
    config = distillation_config(args, recipe, Path(recipe.output_dir), None)
    tokenizer, eos_id = student_tokenizer(recipe.student)
    set_seed(config.seed)
    student = load_student(recipe.student, args, tokenizer, eos_id, None)
    teacher = load_teacher(recipe.teacher, args)
    dataset, _ = render_dataset(read_problems(recipe.prompts), tokenizer, recipe.prompts, 1)
    with StopOnSignal() as stop:
        trainer = build_trainer(recipe, config, student, teacher, None, tokenizer, dataset)
        trainer.add_callback(SaveAndStopOnSignal(stop))
        clock = StepClock()
        trainer.add_callback(clock.callback)
        trainer.train()
    return clock.times


def bare(recipe) -> list[float]:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from trl import DistillationConfig, DistillationTrainer

    from distill.opd.prompts import read_problems
    from distill.opd.run import resolve_args
    from distill.sft.student_template import apply_template, get_template

    args = resolve_args(recipe)  # the same TrainingArguments, so only the trainer differs
    config = DistillationConfig(output_dir=recipe.output_dir, beta=recipe.loss.beta,
                                temperature=recipe.loss.temperature,
                                max_completion_length=recipe.generation.max_tokens, top_p=1.0, **args)
    tokenizer = AutoTokenizer.from_pretrained(recipe.student.name, padding_side="left")
    apply_template(tokenizer, get_template("chatml_r1"))
    set_seed(config.seed)
    torch.set_num_threads(1)  # as distill does for a tiny model (sft_model.single_thread_if_tiny)
    student = AutoModelForCausalLM.from_pretrained(recipe.student.name, dtype=torch.float32)
    teacher = AutoModelForCausalLM.from_pretrained(recipe.teacher.name, dtype=torch.float32)
    rows = [[{"role": "user", "content": turn}] for _, turn in read_problems(recipe.prompts)]
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=config,
                                  train_dataset=Dataset.from_dict({"prompt": rows}), processing_class=tokenizer)
    clock = StepClock()
    trainer.add_callback(clock.callback)
    trainer.train()
    return clock.times


def main(argv: list[str] | None = None) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        student, teacher = save_models(root)
        prompts = prompts_file(root)
        times: dict[str, list[float]] = {"ours": [], "bare": []}
        for r in range(args.rounds):
            for name, fn in (("ours", ours), ("bare", bare)) if r % 2 == 0 else (("bare", bare), ("ours", ours)):
                steps = fn(recipe_for(student, teacher, prompts, root / f"{name}{r}", args))
                times[name] += steps[args.warmup:]
    med = {k: statistics.median(v) for k, v in times.items()}
    overhead = med["ours"] / med["bare"] - 1
    print(f"steps timed: {len(times['ours'])} per variant ({args.rounds} rounds of {args.steps}, "
          f"{args.warmup} warm-up each); batch {args.batch}, {args.max_tokens} sampled tokens per prompt")
    print(f"ours (distill opd): {med['ours'] * 1000:.1f} ms/step")
    print(f"bare (TRL DistillationTrainer): {med['bare'] * 1000:.1f} ms/step")
    print(f"overhead: {overhead:+.1%}")


if __name__ == "__main__":
    main()
