"""`distill demo`: the whole pipeline offline on a CPU, showing that reasoning traces teach a student.

The stage function lives here so that `import distill` loads only the config; everything the stage
runs is imported when it runs (run.py)."""

from __future__ import annotations

from pathlib import Path

from distill.demo.config import DemoConfig

__all__ = ["DemoConfig", "demo"]


def demo(cfg: DemoConfig) -> Path:
    from distill.demo.run import run  # the stage"s one deferred import: its libraries load when it runs

    return run(cfg)
