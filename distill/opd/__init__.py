"""Stage 3b, `distill opd`: on-policy distillation after SFT. The student samples completions for problems; a
teacher that shares its vocabulary scores every sampled token (in-process, or through the `vllm serve` that
generate uses); the loss is the per-token reverse KL (TRL's DistillationTrainer).

    distill opd recipes/opd/qwen7b_qwq32b.yaml --set opd.max_steps=200
    opd(load_recipe("recipes/opd/tiny.yaml", ["student.name=runs/sft/tiny"]))

Reads the student (often an sft output dir), the teacher, and prompts (a curate output dir's user turns, a
prompts file or a hub id). Writes OUTPUT_DIR/ as a model that loads with AutoModelForCausalLM (weights, tokenizer
with the student's chat template), OUTPUT_DIR/checkpoint-*/ while training, OUTPUT_DIR/training_curve.png and
OUTPUT_DIR/manifest.json (lineage: the student's own lineage, the teacher, the prompts; the loss). Re-running the
same command after a kill resumes from the last complete checkpoint and ends at the same step count.
"""

from __future__ import annotations

from pathlib import Path

from distill.opd.recipe import OPDRecipe, load_recipe

__all__ = ["OPDRecipe", "load_recipe", "opd"]


def opd(recipe: OPDRecipe) -> Path:
    """Run on-policy distillation; returns OUTPUT_DIR."""
    import os
    import warnings

    # TRL's server trainer lives in trl.experimental, which warns on import; TRL also warns about any vLLM newer
    # than it has tested, though distill never imports vLLM through TRL (the served teacher is plain HTTP)
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    warnings.filterwarnings("ignore", message="TRL currently supports vLLM versions")
    from distill.opd.run import run  # the stage's one deferred import: torch, transformers, TRL load here

    return run(recipe)
