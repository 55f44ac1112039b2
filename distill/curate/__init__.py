"""Stage 2, `distill curate`: teacher traces -> the SFT dataset, by rejection sampling and filtering.

The stage function lives here so that `import distill` loads only the config; everything the stage
runs is imported when it runs (run.py)."""

from __future__ import annotations

from pathlib import Path

from distill.curate.config import CurateConfig

__all__ = ["CurateConfig", "curate"]


def curate(cfg: CurateConfig) -> Path:
    from distill.curate.run import run  # the stage"s one deferred import: its libraries load when it runs

    return run(cfg)
