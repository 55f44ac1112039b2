"""Stage 1, `distill generate`: prompts -> teacher traces, resumable.

The stage function lives here so that `import distill` loads only the config; everything the stage
runs is imported when it runs (run.py)."""

from __future__ import annotations

from pathlib import Path

from distill.generate.config import GenerateConfig

__all__ = ["GenerateConfig", "generate"]


def generate(cfg: GenerateConfig) -> Path:
    from distill.generate.run import run  # the stage"s one deferred import: its libraries load when it runs

    return run(cfg)
