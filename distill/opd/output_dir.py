"""The output dir of `distill opd`: finished, resumable or another run's; the manifest, the final save, the plot
and the closing summary.

    resume = prepare_output_dir(out, recipe)        # the last complete checkpoint, or None
    write_opd_manifest(out, recipe, args, inputs, counts, started, "complete")

OUTPUT_DIR/manifest.json: stage `opd`, the resolved recipe with `student` (the student's base model, read through
an sft output's manifest, so eval still matches a published R1-Distill row), `teacher` (the model), `loss`, and
`run_key` (student + teacher + prompts + loss + LoRA: a checkpoint of another run_key is never resumed); lineage
holds the student dir's own lineage (its sft run, the dataset, the generate teacher) and the prompts dir's.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from distill.core.config import to_dict
from distill.core.errors import DistillError
from distill.core.log import get_logger, is_main_process, print_summary
from distill.core.manifest import finished_run, read_manifest, spelled_out, write_manifest
from distill.opd.models import teacher_model
from distill.sft.output_dir import loss_figure

RUN_FIELDS = ("student", "teacher", "prompts", "loss", "generation", "lora")


def run_key(recipe: Any) -> str:
    """What makes a run a different run: the models, the prompts, the loss (not launch or logging details)."""
    plain = to_dict(recipe)
    key = spelled_out({k: plain[k] for k in RUN_FIELDS})
    for part in ("student", "teacher"):
        for detail in ("dtype", "attn_implementation", "request_timeout", "max_retries", "retry_backoff_s",
                       "api_key_env", "base_url"):
            key[part].pop(detail, None)  # the same teacher served elsewhere is the same run
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def finished(out: Path, recipe: Any) -> bool:
    """True (after saying so) when OUTPUT_DIR already holds this recipe's finished model."""
    return finished_run(out, "opd", run_key(recipe), recipe.force)


def refuse_foreign(out: Path, recipe: Any) -> None:
    """Before anything is written: a dir holding another stage's or another recipe's run is not ours to touch."""
    manifest = read_manifest(out) if out.is_dir() else None
    if manifest and manifest.get("stage") != "opd" and not recipe.force:
        raise DistillError(f"{out} holds the output of `distill {manifest.get('stage')}`; choose another "
                           "output_dir (opd never writes into another stage's dir)")
    if manifest and manifest.get("config", {}).get("run_key") not in (None, run_key(recipe)) and not recipe.force:
        raise DistillError(f"{out} holds checkpoints of another opd recipe; choose another output_dir, or --force "
                           "to start over there")


def prepare_output_dir(out: Path, recipe: Any) -> str | None:
    """The last complete checkpoint to resume from, or None. A checkpoint a kill cut short (no
    trainer_state.json, which the Trainer writes last) is set aside."""
    out.mkdir(parents=True, exist_ok=True)
    checkpoints = sorted((p for p in out.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
                         key=lambda p: int(p.name.split("-")[-1]))
    if recipe.force and (read_manifest(out) or {}).get("config", {}).get("run_key") != run_key(recipe):
        for ckpt in checkpoints if is_main_process() else ():
            shutil.rmtree(ckpt)
        return None
    complete = [c for c in checkpoints if (c / "trainer_state.json").is_file()]
    for partial in (c for c in checkpoints if c not in complete) if is_main_process() else ():
        partial.rename(partial.with_name(f".incomplete-{partial.name}"))
        get_logger().warning(f"set aside {partial.name}: the run was killed while writing it")
    if not complete:
        return None
    get_logger().info(f"resuming from {complete[-1]}")
    return str(complete[-1])


def base_student(name: str) -> str:
    """The base model behind a student dir: an sft output's `student`, else the name itself."""
    config = (read_manifest(name) or {}).get("config", {}) if Path(name).is_dir() else {}
    return config.get("student") or name


def write_opd_manifest(out: Path, recipe: Any, args: dict[str, Any], inputs: list[Path], counts: dict[str, Any],
                       started: str, status: str, extra: dict[str, Any] | None = None) -> None:
    if not is_main_process():
        return
    config = {**to_dict(recipe), "student": base_student(recipe.student.name), "student_dir": recipe.student.name,
              "teacher": teacher_model(recipe.teacher), "teacher_name": recipe.teacher.name,
              "where_teacher_runs": "server" if recipe.teacher.base_url else "in-process",
              "recipe": recipe.name, "opd_resolved": args, "run_key": run_key(recipe)}
    write_manifest(out, "opd", config, inputs=inputs, counts=counts, started_at=started, status=status,
                   extra=extra)


def save_final(trainer: Any, recipe: Any, out: Path) -> None:
    """OUTPUT_DIR loads with AutoModelForCausalLM: the weights (LoRA merged unless lora.merge is false), the
    tokenizer with the student's chat template, and the generation config whose EOS ends the assistant turn."""
    if not recipe.lora or not recipe.lora.merge:
        trainer.save_model(str(out))
        return
    trainer.save_model(str(out / "adapter"))
    trainer.accelerator.wait_for_everyone()
    if is_main_process():
        model = trainer.accelerator.unwrap_model(trainer.model)
        generation_config = model.generation_config
        merged = model.merge_and_unload()
        merged.generation_config = generation_config
        merged.save_pretrained(str(out))
        trainer.processing_class.save_pretrained(str(out))


def training_summary(trainer: Any, result: Any) -> dict[str, Any]:
    history = [h for h in trainer.state.log_history if "loss" in h]

    def mean(key: str) -> float | None:
        values = [h[key] for h in history if h.get(key) is not None]
        return sum(values) / len(values) if values else None

    last = history[-1] if history else {}
    clipped = last.get("completions/clipped_ratio")
    return {
        "steps": trainer.state.global_step,
        "first_loss": round(history[0]["loss"], 4) if history else None,
        "last_loss": round(last["loss"], 4) if history else None,
        "mean_sample_tokens": round(last["completions/mean_length"], 1) if "completions/mean_length" in last else None,
        "eos_share": round(1 - clipped, 3) if clipped is not None else None,
        "tokens_per_s": round(mean("tokens_per_s"), 1) if mean("tokens_per_s") else None,
        "tokens_seen": int(trainer.state.num_input_tokens_seen or 0),
        "runtime_s": round(result.metrics.get("train_runtime", 0), 1) if result else None,
    }


def finish(out: Path, trainer: Any, recipe: Any, prompts: int) -> None:
    """The plot and the closing summary (rounded figures)."""
    if not is_main_process():
        return
    plot_training(trainer.state.log_history, out / "training_curve.png", recipe.loss.beta)
    s = training_summary(trainer, None)
    label = "reverse KL/token" if recipe.loss.beta == 1 else f"JSD(beta={recipe.loss.beta:g})/token"
    print_summary(f"opd -> {out}", {
        "prompts": prompts, "samples per prompt": recipe.generation.samples_per_prompt, "steps": s["steps"],
        f"{label} first -> last": f"{loss_figure(s['first_loss'])} -> {loss_figure(s['last_loss'])}",
        "mean sample (tokens), last step": s["mean_sample_tokens"] if s["mean_sample_tokens"] is not None else "-",
        "samples ending with EOS, last step": f"{s['eos_share']:.0%}" if s["eos_share"] is not None else "-",
        "tokens/s": f"{s['tokens_per_s']:,.0f}" if s["tokens_per_s"] else "-", "teacher": ("server " if recipe.teacher.base_url else "in-process ")
        + recipe.teacher.name, "model": str(out),
    })


def plot_training(history: list[dict[str, Any]], path: Path, beta: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [h for h in history if "loss" in h]
    if not rows:
        return
    steps = [h["step"] for h in rows]
    fig, (kl, length) = plt.subplots(1, 2, figsize=(9, 3.5))
    kl.plot(steps, [h["loss"] for h in rows])
    kl.set_xlabel("step")
    kl.set_ylabel("reverse KL per token" if beta == 1 else f"JSD (beta {beta:g}) per token")
    if all("completions/mean_length" in h for h in rows):
        length.plot(steps, [h["completions/mean_length"] for h in rows], label="mean sample tokens")
        length.set_xlabel("step")
        length.set_ylabel("tokens")
        eos = length.twinx()
        eos.plot(steps, [1 - h.get("completions/clipped_ratio", 0) for h in rows], "g--", label="EOS share")
        eos.set_ylim(0, 1.05)
        eos.set_ylabel("share ending with EOS")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
