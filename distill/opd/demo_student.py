"""The demo's fourth student (issue 21, item 5): the answers-only student, then distilled on-policy with the
trace-trained student as its teacher, on the same train prompts (no traces, no answers).

    model = run_on_policy_student(out / "opd_on_policy", student=models["answers_only"],
                                  teacher=models["traces"], prompts=out / "prompts" / "train.jsonl",
                                  steps=cfg.size.opd_steps, seed=cfg.seed)
    # then evaluate it like the others: run_eval(out / "eval_on_policy", cfg, model, prompts)

Both demo students start from one init with one tokenizer, so the vocabulary check passes by construction; the
teacher runs in-process (a tiny model on a CPU).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill.core.config import from_dict
from distill.opd import OPDRecipe, opd


def on_policy_recipe(output_dir: Path, student: Path, teacher: Path, prompts: Path, steps: int, seed: int = 0,
                     max_tokens: int = 64, learning_rate: float = 1e-3) -> dict[str, Any]:
    """The opd recipe of the demo's fourth student, as a dict (saved beside the model as recipe.yaml)."""
    return {
        "name": f"demo-{output_dir.name}",
        "student": {"name": str(student), "dtype": "float32", "attn_implementation": "sdpa"},
        "teacher": {"name": str(teacher), "dtype": "float32"},
        "prompts": {"path": str(prompts)},
        # Forward KL (beta 0), not opd's default reverse KL. The answers-only student puts nearly all its mass on
        # "\n</think>" right after the <think> prefill, where the teacher wants "running totals". Over the full
        # vocabulary, reverse KL's gradient on a token's logit is p_student * (log p_student - log p_teacher - KL):
        # it vanishes for the tokens the student does not already sample, so the student only reshuffles its own
        # answer-only mode. Forward KL's is p_student - p_teacher: the teacher's token is pulled up however unlikely
        # the student finds it. Measured from the full demo's two sft students, both at lr 1e-3 cosine, batch 16
        # (2026-12-06): reverse KL went 4.5 -> 4.4 nats/token in 46 steps with 18-token answer-only samples, all
        # ending in EOS; forward KL went 5.4 -> 1.9 in 36 steps with samples grown to the teacher's trace length.
        "loss": {"beta": 0.0, "temperature": 1.0},
        # a correct trace is ~50 tokens (eval cuts at 80): 64 leaves room, and a rambling sample costs less
        # sampled at R1's 0.6, as eval samples: at 1.0 a tiny student's samples are noise (KL stayed near 6/token)
        "generation": {"max_tokens": max_tokens, "samples_per_prompt": 1, "temperature": 0.6},
        "output_dir": str(output_dir),
        "opd": {
            "max_steps": steps,
            # 16 prompts a step: at 64 a step took ~4x longer on a CPU core (no more tokens per second)
            "per_device_train_batch_size": 16,
            "learning_rate": learning_rate,  # a tiny model from a short SFT wants a large step (TRL's 1e-6 is for 7B)
            "lr_scheduler_type": "cosine",  # as the sft students: the last steps settle what the first ones moved
            "warmup_steps": 0.05,
            "gradient_checkpointing": False,
            "logging_steps": 10,
            "save_steps": max(25, steps // 4),  # a killed demo loses at most a quarter of this training
            "dataloader_num_workers": 0,
            "seed": seed,
        },
    }


def run_on_policy_student(output_dir: Path, student: Path, teacher: Path, prompts: Path, steps: int,
                          seed: int = 0, max_tokens: int = 64, learning_rate: float = 1e-3) -> Path:
    """Train it through the public stage function, as a user would run `distill opd OUTPUT_DIR/recipe.yaml`."""
    import yaml

    recipe = on_policy_recipe(output_dir, student, teacher, prompts, steps, seed, max_tokens, learning_rate)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "recipe.yaml").write_text(
        f"# the recipe `distill demo` trained this student with; re-run: distill opd {output_dir / 'recipe.yaml'}\n"
        + yaml.safe_dump(recipe, sort_keys=False))
    return opd(from_dict(OPDRecipe, recipe))
