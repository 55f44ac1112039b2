"""distill: turn a large reasoning teacher into small dense reasoning students.

    from distill import generate, GenerateConfig
    out_dir = generate(GenerateConfig(teacher="deepseek-r1", prompts="prompts.jsonl", out="runs/gen"))

Every stage is an importable function `stage(config) -> Path` with the CLI's names, defined in its package
(distill/<stage>/__init__.py), which imports the stage's run.py (torch, transformers, lm_eval...) only when called,
so `import distill` (and `distill --help`) stays light.
"""

from __future__ import annotations

from distill._version import __version__

# Each stage package binds its function over its own name here (`distill.curate` is the function, as before the
# packages): the package's __init__ holds only the config import and the stage function, so this loads no stage.
# Import a stage's modules as `from distill.<stage>.<module> import name`, never `import distill.<stage>.<module>`.
from distill.core.errors import DistillError
from distill.curate import CurateConfig, curate
from distill.demo import DemoConfig, demo
from distill.eval import EvalConfig, evaluate
from distill.generate import GenerateConfig, generate
from distill.opd import OPDRecipe, opd
from distill.plan import PlanConfig, plan
from distill.sft import SFTRecipe, load_recipe, sft

__all__ = [
    "__version__", "DistillError",
    "generate", "GenerateConfig", "curate", "CurateConfig", "sft", "SFTRecipe", "load_recipe",
    "evaluate", "EvalConfig", "demo", "DemoConfig", "plan", "PlanConfig",
    "opd", "OPDRecipe",
]
