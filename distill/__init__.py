"""distill: turn a large reasoning teacher into small dense reasoning students.

    from distill import generate, GenerateConfig
    out_dir = generate(GenerateConfig(teacher="deepseek-r1", prompts="prompts.jsonl", out="runs/gen"))

Stages are importable functions `stage(config) -> Path`; the names are re-exported lazily so that
`import distill` (and `distill --help`) never pulls in torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "generate": "distill.generate",
    "GenerateConfig": "distill.generate",
    "curate": "distill.curate",
    "CurateConfig": "distill.curate",
    "sft": "distill.sft",
    "SFTRecipe": "distill.sft",
    "evaluate": "distill.evaluate",
    "EvalConfig": "distill.evaluate",
    "demo": "distill.demo",
    "DemoConfig": "distill.demo",
    "DistillError": "distill.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'distill' has no attribute {name!r}")
