"""The configuration of `distill demo` (DemoConfig): import-light, read by the CLI and the
package root without loading the stage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from distill.core.config import option, to_dict
from distill.core.errors import DistillError
from distill.tasks.arithmetic import SumTask


@dataclass
class DemoSize:
    train_problems: int
    test_problems: int
    max_steps: int
    eval_samples: int
    opd_steps: int


# Sized by measured runs on a 2-core CPU (README, "distill demo"): the full size gets the trace-trained student to
# ~90% on held-out sums with ~5 minutes of training; the quick size keeps a clear gap to the untrained student.
# opd_steps: ~1.3 s per step of 16 samples on one core, so the fourth student adds ~3 minutes to the full demo
# (170 s of opd + 22 s of eval, measured 2026-12-06) and under one to the quick one.
FULL = DemoSize(train_problems=3000, test_problems=200, max_steps=600, eval_samples=4, opd_steps=120)
QUICK = DemoSize(train_problems=800, test_problems=100, max_steps=150, eval_samples=1, opd_steps=40)


@dataclass
class DemoConfig:
    out: str = option("runs/demo", help="Output directory (default runs/demo); every stage writes a folder under it.")
    quick: bool = option(False, help="CI size: fewer problems and training steps, the same stages (~3 min).")
    train_problems: int | None = option(None, help="Train prompts for the teacher (default 3000; quick 800).")
    test_problems: int | None = option(None, help="Held-out test problems (default 200; quick 100).")
    max_steps: int | None = option(None, help="Optimizer steps per sft student, the same for both (default 600; quick 150).")
    eval_samples: int | None = option(None, help="Samples per test problem, R1 protocol at T=0.6 (default 4; quick 1).")
    on_policy: bool = option(False, help="Add a fourth student: the answers-only one, then distilled on-policy "
                             "(distill opd) by the trace-trained one on the train prompts alone (+~3 min; it does "
                             "not yet beat the answers-only student: README, 'distill demo').")
    opd_steps: int | None = option(None, help="--on-policy: distillation steps of the fourth student, 16 prompts "
                                   "each (default 120; quick 40).")
    terms: int = option(8, help="Numbers per sum.")
    digits: int = option(1, help="Digits per number.")
    learning_rate: float = option(2e-3, help="Peak learning rate of both students (cosine schedule, 5% warmup).")
    seed: int = option(0, help="Seed of the problems, the teacher's flaws, the student's init and training.")
    force: bool = option(False, help="Delete OUT first and start over (default: resume what is there).")

    def __post_init__(self) -> None:
        SumTask(self.terms, self.digits)  # refuses sizes the trace layout cannot hold
        for name in ("train_problems", "test_problems", "max_steps", "eval_samples", "opd_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise DistillError(f"--{name.replace('_', '-')} must be at least 1, not {value}")

    @property
    def size(self) -> DemoSize:
        base = QUICK if self.quick else FULL
        return DemoSize(*(getattr(self, f) or getattr(base, f) for f in DemoSize.__dataclass_fields__))


def run_stamp(cfg: DemoConfig) -> dict[str, Any]:
    """Everything that decides the demo's numbers (not where it runs or whether it was forced)."""
    size = {k: v for k, v in to_dict(cfg.size).items() if k != "opd_steps"}  # opd's own recipe check covers it
    return {**size, "terms": cfg.terms, "digits": cfg.digits, "learning_rate": cfg.learning_rate,
            "seed": cfg.seed}
