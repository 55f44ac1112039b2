"""Stage 3, `distill sft`: fine-tune a student on curated teacher traces, packed, resumable, single GPU to multi-node.

The stage function lives here so that `import distill` loads only the config; everything the stage
runs is imported when it runs (run.py)."""

from __future__ import annotations

from pathlib import Path

from distill.sft.recipe import SFTRecipe, load_recipe

__all__ = ["SFTRecipe", "load_recipe", "sft"]


def sft(recipe: SFTRecipe) -> Path:
    from distill.sft.run import run  # the stage"s one deferred import: its libraries load when it runs

    return run(recipe)
