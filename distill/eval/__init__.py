"""Stage 4, `distill eval`: a student on AIME and MATH-500 under the R1 protocol, beside the published numbers.

The stage function lives here so that `import distill` loads only the config; everything the stage
runs is imported when it runs (run.py)."""

from __future__ import annotations

from pathlib import Path

from distill.eval.config import EvalConfig

__all__ = ["EvalConfig", "evaluate"]


def evaluate(cfg: EvalConfig) -> Path:
    from distill.eval.run import run  # the stage"s one deferred import: its libraries load when it runs

    return run(cfg)
