"""`distill opd`, the run: checks first (nothing loaded, nothing written), then the student samples, the teacher
scores, TRL's DistillationTrainer steps; checkpoints, resume, manifest, plot and summary as in sft.

    run(load_recipe("recipes/opd/tiny.yaml", ["student.name=runs/sft/tiny"]))   # -> OUTPUT_DIR

What distill adds to TRL (TRL does the sampling, the teacher forward or server scoring, and the loss): the
vocabulary check from the two tokenizers before any weights load (TRL compares `vocab_size` after loading both),
a served teacher behind the plain `vllm serve` with generate's retries (teacher_server.py), R1 prompt rendering
and samples per prompt (prompts.py), distill's recipe/manifest/resume/progress contract (output_dir.py,
trainer.py), and the re-launch under accelerate (distill/launch.py).
"""

from __future__ import annotations

import dataclasses
import difflib
import signal
from pathlib import Path
from typing import Any

from distill.core.errors import DistillError, Interrupted
from distill.core.manifest import now
from distill.core.preempt import StopOnSignal
from distill.opd.models import (
    check_causal_lm,
    check_same_vocabulary,
    check_vocab_size,
    load_student,
    load_teacher,
    student_config,
    student_tokenizer,
    teacher_config,
    teacher_model,
    teacher_tokenizer,
)
from distill.opd.output_dir import (
    finish,
    finished,
    prepare_output_dir,
    refuse_foreign,
    save_final,
    training_summary,
    write_opd_manifest,
)
from distill.opd.prompts import read_problems, render_dataset
from distill.opd.recipe import OPD_DEFAULTS, OPDRecipe
from distill.opd.teacher_server import ServedTeacher
from distill.opd.trainer import OPDProgress, OPDServerTrainer, OPDTrainer
from distill.sft.launch import needs_relaunch, read_accelerate_config, relaunch
from distill.sft.output_dir import save_recipe
from distill.sft.run import adapt_to_device
from distill.sft.trainer import SaveAndStopOnSignal


def run(recipe: OPDRecipe) -> Path:
    out = Path(recipe.output_dir)
    args = resolve_args(recipe)
    accelerate = read_accelerate_config(recipe.launch.accelerate_config)
    # ---------------------------------------------------------------- checks: no weights loaded, nothing written
    refuse_foreign(out, recipe)
    problems = read_problems(recipe.prompts)
    tokenizer, eos_id, served, rows = check_models(recipe)
    if needs_relaunch(recipe.launch, accelerate):
        relaunch(save_recipe(recipe, out), recipe.launch, stage="opd")
        return out
    # ---------------------------------------------------------------- output dir: finished, resumable, or new
    if finished(out, recipe):
        return out
    resume = prepare_output_dir(out, recipe)
    started = now()
    with StopOnSignal(what="the current on-policy step and saving a checkpoint") as stop:
        # ------------------------------------------------------------ prompts, models, trainer
        config = distillation_config(args, recipe, out, served)
        from transformers import set_seed

        set_seed(config.seed)  # a student from a config gets the same random weights on every run
        student = load_student(recipe.student, args, tokenizer, eos_id, rows)
        teacher = None if served else load_teacher(recipe.teacher, args)
        dataset, rendered = render_dataset(problems, tokenizer, recipe.prompts, recipe.generation.samples_per_prompt)
        trainer = build_trainer(recipe, config, student, teacher, served, tokenizer, dataset)
        stopper = SaveAndStopOnSignal(stop)  # SIGTERM: checkpoint at the current step, then stop
        trainer.add_callback(stopper)
        counts = {"prompts": len(problems), "rows": len(dataset)}
        extra = {"prompt_format": rendered}
        write_opd_manifest(out, recipe, args, inputs(recipe), counts, started, "running", extra)
        # ------------------------------------------------------------ on-policy training
        try:
            result = trainer.train(resume_from_checkpoint=resume)
        except Exception as err:  # a teacher server gone for good, OOM, ...: the manifest must not say "running"
            failure = {"error": str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__,
                       "at_step": trainer.state.global_step}
            write_opd_manifest(out, recipe, args, inputs(recipe), counts, started, "failed", {**extra, **failure})
            raise
    counts.update(training_summary(trainer, result))
    if served:
        extra["teacher_server"] = {"url": served.url, "model": served.model, "retries": served.retries}
    if stopper.stopped_at is not None:
        write_opd_manifest(out, recipe, args, inputs(recipe), counts, started, "interrupted", extra)
        step, total = trainer.state.global_step, trainer.state.max_steps
        raise Interrupted(stop.signum or signal.SIGTERM, f"saved {out / f'checkpoint-{step}'} at step {step:,} of "
                          f"{total:,}; re-run the same command to resume from it")
    # ---------------------------------------------------------------- final model, manifest, summary
    save_final(trainer, recipe, out)
    write_opd_manifest(out, recipe, args, inputs(recipe), counts, started, "complete", extra)
    finish(out, trainer, recipe, len(problems))
    return out


# ---------------------------------------------------------------- checks before any weights


def check_models(recipe: OPDRecipe) -> tuple[Any, int, ServedTeacher | None, int | None]:
    """(student tokenizer with its template, EOS id, the served teacher or None, the teacher's output rows)."""
    tokenizer, eos_id = student_tokenizer(recipe.student)
    name = teacher_model(recipe.teacher)
    served = ServedTeacher(recipe.teacher, name) if recipe.teacher.base_url else None
    if not served or recipe.teacher.tokenizer:
        check_same_vocabulary(tokenizer, teacher_tokenizer(recipe.teacher), recipe.student.name, name)
    if served:
        served.check(tokenizer, probe_ids(tokenizer, eos_id))
    check_causal_lm(student_config(recipe.student), recipe.student.name, "student")
    if served:
        return tokenizer, eos_id, served, None
    rows = check_vocab_size(teacher_config(recipe.teacher), tokenizer, recipe.student.name, name)
    return tokenizer, eos_id, None, rows


def probe_ids(tokenizer: Any, eos_id: int) -> list[int]:
    """A short chat with the tokens the student writes (think tags, LaTeX, digits, EOS), to tokenize on both sides."""
    text = tokenizer.apply_chat_template([{"role": "user", "content": "What is 12 + 30? Think in <think> tags."}],
                                         tokenize=False, add_generation_prompt=True)
    text += "12 plus 30 is 42, so x = \\frac{84}{2}.\n</think>\n\nThe answer is $\\boxed{42}$."
    return tokenizer(text, add_special_tokens=False)["input_ids"] + [eos_id]


def inputs(recipe: OPDRecipe) -> list[Path]:
    """Local inputs for the lineage: the student dir (an sft output carries its own), the prompts, the teacher."""
    paths = [Path(recipe.student.name), Path(recipe.prompts.path), Path(teacher_model(recipe.teacher))]
    return [p.expanduser() for p in paths if p.expanduser().exists()]


# ---------------------------------------------------------------- recipe -> DistillationConfig


def resolve_args(recipe: OPDRecipe) -> dict[str, Any]:
    """DistillationConfig keyword arguments: distill's defaults < the recipe's `opd:`, then what this machine can do."""
    check_opd_keys(recipe.opd)
    args = {**OPD_DEFAULTS, **recipe.opd}
    adapt_to_device(args)
    return args


def check_opd_keys(opd_args: dict[str, Any]) -> None:
    """Unknown keys are errors with a suggestion; numbers YAML reads as strings (`1e-6`) become numbers."""
    from trl.experimental.server_distillation import ServerDistillationConfig

    fields = {f.name: f for f in dataclasses.fields(ServerDistillationConfig) if f.init}
    for key, value in opd_args.items():
        kind = str(fields[key].type) if key in fields else ""
        if isinstance(value, bool) and "bool" not in kind:
            opd_args[key] = "no" if value is False else "yes"
        elif isinstance(value, str) and ("float" in kind or "int" in kind):
            opd_args[key] = _number(value, float if "float" in kind else int)
    unknown = sorted(set(opd_args) - set(fields))
    if unknown:
        hints = [f"{k} (did you mean {m[0]}?)" if (m := difflib.get_close_matches(k, fields, 1)) else k
                 for k in unknown]
        raise DistillError(f"unknown key{'s' if len(unknown) > 1 else ''} opd.{', opd.'.join(hints)}; opd takes "
                           "TRL DistillationConfig fields (learning_rate, max_steps, per_device_train_batch_size, ...)")


def _number(text: str, kind: type) -> Any:
    try:
        return kind(text)
    except ValueError:
        return text  # not a number after all: DistillationConfig names the problem


def distillation_config(args: dict[str, Any], recipe: OPDRecipe, out: Path, served: ServedTeacher | None) -> Any:
    import warnings

    from trl import DistillationConfig
    from trl.experimental.server_distillation import ServerDistillationConfig

    args = dict(args)
    sampling = dict(args.pop("generation_kwargs", None) or {})
    if recipe.generation.temperature is not None:
        # TRL samples and scores at `temperature`; its generation_kwargs override the sampling side only, so the
        # student can sample at R1's 0.6 while the loss compares the untempered distributions
        sampling["temperature"] = recipe.generation.temperature
    fields = dict(output_dir=str(out), beta=recipe.loss.beta, temperature=recipe.loss.temperature,
                  max_completion_length=recipe.generation.max_tokens, top_p=recipe.generation.top_p,
                  generation_kwargs=sampling or None, **args)
    try:
        with warnings.catch_warnings():  # transformers 5.2x renames gradient_checkpointing; TRL keeps the old name
            warnings.filterwarnings("ignore", message=".*is deprecated and will be removed in v6.*")
            if served is None:
                return DistillationConfig(**fields)
            return ServerDistillationConfig(teacher_model_server_url=served.root, loss_top_k=recipe.loss.top_k,
                                            loss_add_tail=recipe.loss.add_tail, **fields)
    except (ValueError, TypeError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise DistillError(f"invalid opd settings: {first}") from None


def build_trainer(recipe: OPDRecipe, config: Any, student: Any, teacher: Any, served: ServedTeacher | None,
                  tokenizer: Any, dataset: Any) -> Any:
    from transformers.trainer_callback import PrinterCallback


    peft_config = None
    if recipe.lora:
        from peft import LoraConfig

        targets = recipe.lora.target_modules
        peft_config = LoraConfig(r=recipe.lora.r, lora_alpha=recipe.lora.alpha, lora_dropout=recipe.lora.dropout,
                                 target_modules="all-linear" if targets == ["all-linear"] else targets,
                                 task_type="CAUSAL_LM")
    common = dict(model=student, args=config, train_dataset=dataset, processing_class=tokenizer,
                  peft_config=peft_config, callbacks=[OPDProgress(recipe.loss.beta)])
    trainer = OPDServerTrainer(served, **common) if served else OPDTrainer(teacher_model=teacher, **common)
    # the progress line carries the KL; the raw log dicts still reach report_to and trainer_state.json
    trainer.remove_callback(PrinterCallback)
    return trainer
