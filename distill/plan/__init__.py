"""`distill plan`: what a distillation run will cost before it starts, whether the student fits, and the
commands that launch each stage on the given hardware.

The stage function lives here so that `import distill` loads only the config; everything the stage
runs is imported when it runs (run.py)."""

from __future__ import annotations

from typing import Any

from distill.plan.config import PlanConfig

__all__ = ["PlanConfig", "plan"]


def plan(cfg: PlanConfig) -> dict[str, Any]:
    from distill.plan.run import run  # the stage"s one deferred import: its libraries load when it runs

    return run(cfg)
