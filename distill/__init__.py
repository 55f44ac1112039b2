"""distill: turn a large reasoning teacher into small dense reasoning students.

    from distill import generate, GenerateConfig
    out_dir = generate(GenerateConfig(teacher="deepseek-r1", prompts="prompts.jsonl", out="runs/gen"))

Every stage is an importable function `stage(config) -> Path` with the CLI's names. Stage modules import
torch, transformers, lm_eval... inside their functions, so `import distill` (and `distill --help`) stays light.
"""

from __future__ import annotations

__version__ = "0.1.0"

# The stage functions are bound here eagerly, after their modules: a submodule import binds the *module* to the
# package attribute of the same name (distill.curate), and `from distill import curate` must give the function.
from distill.curate import CurateConfig, curate  # noqa: E402
from distill.demo import DemoConfig, demo  # noqa: E402
from distill.errors import DistillError  # noqa: E402
from distill.evaluate import EvalConfig, evaluate  # noqa: E402
from distill.generate import GenerateConfig, generate  # noqa: E402
from distill.opd import OPDRecipe, opd  # noqa: E402
from distill.plan import PlanConfig, plan  # noqa: E402
from distill.sft import SFTRecipe, load_recipe, sft  # noqa: E402

__all__ = [
    "__version__", "DistillError",
    "generate", "GenerateConfig", "curate", "CurateConfig", "sft", "SFTRecipe", "load_recipe",
    "evaluate", "EvalConfig", "demo", "DemoConfig", "plan", "PlanConfig",
    "opd", "OPDRecipe",
]
