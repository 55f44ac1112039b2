"""How one engine replica is laid out on this machine: the GPUs detected, the teacher's serving hint when it
applies, and a one-line error when the plan needs more GPUs than are visible.

    gpus = detect_gpus()                                     # Gpus(type='h100', count=8, name='NVIDIA H100 80GB HBM3')
    layout = replica_layout(teacher, model, gpus, tensor_parallel=None, pipeline_parallel=None)

A teacher's hints describe how to serve *its* model (DeepSeek-R1: 8 x H200, or 2 nodes of 8 x H100); they do not
apply to another model given with --model unless asked for (--serving-hints).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from distill.core.errors import DistillError
from distill.core.gpus import Gpus


@dataclass(frozen=True)
class Layout:
    tensor_parallel: int
    pipeline_parallel: int
    nodes: int = 1
    source: str = "default"  # "options", "hint for h200", "default"


def replica_layout(teacher, model: str, gpus: Gpus, tensor_parallel: int | None, pipeline_parallel: int | None,
                   gpu_type: str | None = None, serving_hints: bool | None = None) -> Layout:
    """Tensor/pipeline sizes: explicit options win; else the teacher's hint for this GPU type when the model is
    the teacher's own (or hints are asked for); else one device."""
    if tensor_parallel or pipeline_parallel:
        return Layout(tensor_parallel or 1, pipeline_parallel or 1, source="options")
    own_model = is_teachers_model(model, teacher.model_id)
    use_hints = own_model if serving_hints is None else serving_hints
    kind = (gpu_type or gpus.type or "").lower()
    hint = teacher.serving.get(kind) if use_hints and kind else None
    if hint is None:
        return Layout(1, 1)
    return Layout(hint["tensor_parallel"], hint["pipeline_parallel"], hint.get("nodes", 1), f"{teacher.name}'s hint "
                  f"for {kind}")


def check_fits(layout: Layout, data_parallel: int, gpus: Gpus, cpu_build: bool) -> None:
    """A one-line error when this node cannot hold the layout (multi-node layouts need a Ray cluster)."""
    per_node = layout.tensor_parallel * (layout.pipeline_parallel if layout.nodes <= 1 else 1) * data_parallel
    if cpu_build and not gpus.count:
        if layout.source != "options" and layout.tensor_parallel * layout.pipeline_parallel > 1:
            raise DistillError(f"{layout.source} wants {layout.tensor_parallel * layout.pipeline_parallel} GPUs, "
                               "but this machine has no GPU (vLLM's CPU build); pass --tensor-parallel 1 "
                               "--pipeline-parallel 1, or --no-serving-hints")
        return
    if layout.nodes > 1 and not os.environ.get("RAY_ADDRESS"):
        raise DistillError(
            f"{layout.source} spans {layout.nodes} nodes ({layout.tensor_parallel} x {layout.pipeline_parallel} "
            f"GPUs), detected {gpus.describe()} and no Ray cluster (RAY_ADDRESS); start Ray across the nodes "
            "(recipes/serving/README.md), or serve the teacher with `vllm serve` and pass --base-url"
        )
    if layout.nodes <= 1 and per_node > gpus.count:
        what = (f"tensor parallel {layout.tensor_parallel} x pipeline parallel {layout.pipeline_parallel} x "
                f"data parallel {data_parallel}")
        raise DistillError(f"{layout.source} needs {per_node} GPUs ({what}), detected {gpus.describe()}; lower "
                           "--tensor-parallel/--data-parallel or run on a node with more GPUs")


def is_teachers_model(model: str, model_id: str) -> bool:
    """`--model` names the teacher's own model: its hub id, or a local copy whose folder has the same name."""
    norm = lambda s: re.sub(r"[^a-z0-9]", "", s.lower())  # noqa: E731
    return norm(model) == norm(model_id) or norm(os.path.basename(model.rstrip("/"))) == norm(model_id.split("/")[-1])
