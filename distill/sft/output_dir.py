"""The output dir of `distill sft`: is it finished, resumable, or another run's; the manifest, summary and plot.

    resume = prepare_output_dir(out, recipe)     # last complete checkpoint, or None
    write_sft_manifest(out, recipe, args, data, training, started, "complete")

OUTPUT_DIR/manifest.json records the resolved recipe with `student` (the base model id the eval stage matches
to a published DeepSeek-R1-Distill row), `recipe` (its name) and `run_key` (a hash of model + data + LoRA: a
checkpoint of another run_key is never resumed).
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
from distill.core.manifest import atomic_write_text, finished_run, read_manifest, spelled_out, write_manifest
from distill.core.stage_dirs import RECIPE


def run_key(recipe: Any) -> str:
    """What makes a run a different run: the student and the data (not launch, precision or logging details)."""
    model = {k: v for k, v in to_dict(recipe.model).items() if k not in ("dtype", "attn_implementation")}
    key = spelled_out({"model": model, "datasets": [to_dict(d) for d in recipe.datasets],
                       "lora": to_dict(recipe.lora) if recipe.lora else None})
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def finished(out: Path, recipe: Any) -> bool:
    """True (after saying so) when OUTPUT_DIR already holds this recipe's finished model."""
    return finished_run(out, "sft", run_key(recipe), recipe.force)


def prepare_output_dir(out: Path, recipe: Any) -> str | None:
    """The last complete checkpoint to resume from, or None. A checkpoint a kill cut short (no trainer_state.json,
    written last) is set aside; a directory holding another run's checkpoints is refused unless forced."""
    out.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(out) or {}
    checkpoints = sorted((p for p in out.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
                         key=lambda p: int(p.name.split("-")[-1]))
    if checkpoints and manifest.get("config", {}).get("run_key", run_key(recipe)) != run_key(recipe):
        if not recipe.force:
            raise DistillError(f"{out} holds checkpoints of another model or dataset; choose another output_dir, "
                               "or --force to start over there")
        if is_main_process():
            for ckpt in checkpoints:
                shutil.rmtree(ckpt)
        return None
    complete = [c for c in checkpoints if (c / "trainer_state.json").is_file()]
    if is_main_process():
        for partial in (c for c in checkpoints if c not in complete):
            partial.rename(partial.with_name(f".incomplete-{partial.name}"))
            get_logger().warning(f"set aside {partial.name}: the run was killed while writing it")
    if not complete:
        return None
    last = complete[-1]
    get_logger().info(f"resuming from {last}")
    if not any(last.glob("optimizer*")) and not any(last.glob("global_step*")):
        get_logger().warning(f"{last.name} holds weights only (sft.save_only_model): the optimizer and the learning-"
                             "rate schedule start over from these weights")
    return str(last)


def save_recipe(recipe: Any, out: Path) -> Path:
    """OUTPUT_DIR/recipe.yaml: the resolved recipe every launched process reads."""
    import yaml

    out.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(out / RECIPE, yaml.safe_dump(to_dict(recipe), sort_keys=False))



def training_summary(trainer: Any, result: Any) -> dict[str, Any]:
    history = [h for h in trainer.state.log_history if "loss" in h]
    rates = [h["tokens_per_s"] for h in history if "tokens_per_s" in h]
    mfus = [h["mfu"] for h in history if "mfu" in h]
    return {
        "steps": trainer.state.global_step,
        "epochs": round(trainer.state.epoch or 0, 3),
        "train_loss": round(result.training_loss, 4) if result else None,
        "first_loss": history[0]["loss"] if history else None,
        "last_loss": history[-1]["loss"] if history else None,
        "tokens_per_s": round(sum(rates) / len(rates), 1) if rates else None,
        "mfu": round(sum(mfus) / len(mfus), 4) if mfus else None,
        "runtime_s": round(result.metrics.get("train_runtime", 0), 1) if result else None,
    }


def write_sft_manifest(out: Path, recipe: Any, args: dict[str, Any], data: Any, training: dict | None,
                       started: str, status: str) -> None:
    if not is_main_process():
        return
    config = {**to_dict(recipe), "student": recipe.model.name, "recipe": recipe.name, "sft_resolved": args,
              "run_key": run_key(recipe)}
    counts = {**{k: v for k, v in data.stats.items() if k != "datasets"}, **(training or {})}
    write_manifest(out, "sft", config, inputs=data.local_dirs, counts=counts, started_at=started, status=status,
                   extra={"datasets": data.stats["datasets"]})


def finish(out: Path, trainer: Any, data: Any) -> None:
    """Plot, summary, and the tokenized-data cache removed: the finished dir holds the model, not the data."""
    if not is_main_process():
        return
    shutil.rmtree(out / ".cache", ignore_errors=True)
    plot_training(trainer.state.log_history, out / "training_curve.png")
    s = training_summary(trainer, None)
    print_summary(f"sft -> {out}", {
        "examples": data.stats["examples"], "tokens": data.stats["tokens"],
        "dropped (too long)": data.stats["dropped_too_long"], "steps": s["steps"], "epochs": s["epochs"],
        "loss first -> last": f"{loss_figure(s['first_loss'])} -> {loss_figure(s['last_loss'])}",
        "tokens/s": f"{s['tokens_per_s']:,.0f}" if s["tokens_per_s"] else "-",
        "MFU": f"{s['mfu']:.1%}" if s["mfu"] else "- (no GPU)", "model": str(out),
    })


def loss_figure(value: float | None) -> str:
    """A loss for a training summary (sft, opd): three significant figures (5.28, 0.0238), like the other stages'."""
    return "-" if value is None else f"{value:.3g}"


def plot_training(history: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    if not train:
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(*zip(*train, strict=False), label="train loss")
    if evals:
        ax.plot(*zip(*evals, strict=False), "o-", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
