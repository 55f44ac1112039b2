"""`distill plan --method opd`: what an on-policy distillation run costs, beside SFT on the same prompts.

    distill plan --method opd --student recipes/opd/qwen7b_qwq32b.yaml --gpu h100 --nodes 2
    result = plan(PlanConfig(method="opd", student="recipes/opd/qwen7b_qwq32b.yaml", nodes=2))
    result["stages"]["opd"]["parts"]["teacher_scoring"]["gpu_hours"], result["stages"]["opd"]["sft_same_prompts"]

Reads the opd recipe (the student, the teacher, generation and the TRL batch keys) and, for a student that is an
sft output dir not trained yet, the sft recipe under recipes/ whose output_dir it is (for its architecture). The
arithmetic is distill.opd.cost's; this module finds its inputs and the GPUs each part runs on.

One on-policy step runs three parts one after another (TRL's DistillationTrainer does not overlap them):
the student samples (decode), the teacher scores the samples (one prefill, on its own GPUs when served), the
student updates. Wall time is the sum of the three on their GPUs; GPU-hours count every GPU held for that wall
time, since a served teacher's GPUs wait while the student samples and trains.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from distill.core.errors import DistillError
from distill.core.gpus import GPU
from distill.core.paths import ROOT
from distill.core.teachers import TEACHER_PROFILES, TEACHERS, get_teacher
from distill.opd.cost import ASSUMPTIONS, opd_cost
from distill.opd.recipe import OPD_DEFAULTS, load_recipe
from distill.plan.config import Assumptions, PlanConfig
from distill.plan.hardware import serving_hint, student_shape


def plan_opd(cfg: PlanConfig, a: Assumptions, gpu: GPU, prompts_given: int | None) -> dict[str, Any]:
    if not cfg.student:
        raise DistillError("--method opd plans an opd recipe: pass --student recipes/opd/<pair>.yaml")
    recipe = load_recipe(cfg.student, cfg.recipe_overrides)
    args = {**OPD_DEFAULTS, **recipe.opd}
    student_params, student_source = opd_student_params(recipe)
    teacher_params, teacher_source, teacher_gpus = opd_teacher(recipe.teacher.name, cfg, gpu)
    a.used["student_shape"] = {"value": f"{student_params / 1e9:.2f}B parameters", "source": student_source}
    a.used["teacher_shape"] = {"value": f"{teacher_params / 1e9:.2f}B parameters", "source": teacher_source}

    world = cfg.nodes * cfg.gpus_per_node
    served = bool(recipe.teacher.base_url)  # else in-process: the teacher shares the student's GPUs
    student_gpus = recipe.launch.num_processes * recipe.launch.num_machines
    needed = student_gpus + (teacher_gpus if served else 0)
    if needed > world:
        raise DistillError(f"the recipe's student runs on {student_gpus} GPU(s) (launch.num_processes x "
                           f"num_machines)" + (f" and its served teacher needs {teacher_gpus}" if served else "") +
                           f": {needed} in all, more than {cfg.nodes} x {cfg.gpus_per_node}; add --nodes, or "
                           "--recipe-set launch.num_processes=N")
    samples = recipe.generation.samples_per_prompt
    batch = int(args["per_device_train_batch_size"]) * int(args.get("gradient_accumulation_steps", 1))
    if "max_steps" in args and int(args["max_steps"]) > 0:
        sequences = int(args["max_steps"]) * batch * student_gpus
        how = (f"{args['max_steps']} steps x {batch} per GPU x {student_gpus} GPUs (each prompt sampled "
               f"{samples}x)")
        prompts = max(1, sequences // samples)
    elif prompts_given:
        epochs = float(args.get("num_train_epochs", 3.0))
        prompts, sequences = prompts_given, round(prompts_given * samples * epochs)
        how = f"{prompts_given:,} prompts x {samples} samples x {epochs:g} epochs"
    else:
        raise DistillError("the opd recipe sets no opd.max_steps: pass --prompts N (or a prompt file) to plan by "
                           "epochs")

    completion = a.get("opd_completion_tokens_mean", recipe.generation.max_tokens / 2,
                       f"estimate: half of the recipe's generation.max_tokens ({recipe.generation.max_tokens:,}); a "
                       "sample cut at the cap costs the whole cap")
    values = {name: a.get(plan_name, value, source) for name, (plan_name, value, source) in opd_assumptions(
        cfg, a).items()}
    cost = opd_cost(student_params, teacher_params, prompts, 1, completion, a.get("prompt_tokens_mean"),
                    gpu.peak_flops, epochs=sequences / prompts, price_per_gpu_hour=cfg.price_per_gpu_hour, **values)
    parts = cost["stages"]
    on = {"rollouts": student_gpus, "teacher_scoring": teacher_gpus if served else student_gpus,
          "student_update": student_gpus}
    for name, part in parts.items():
        part["gpus"] = on[name]
        part["wall_hours"] = part["gpu_hours"] / on[name]
    wall = sum(p["wall_hours"] for p in parts.values())
    held = wall * (student_gpus + (teacher_gpus if served else 0))
    sft = cost["sft_same_prompts"]
    sft["wall_hours"] = sft["gpu_hours"] / world
    sft["prompts"] = prompts
    return {"sequences": sequences, "sequences_from": how, "prompts": prompts, "samples_per_prompt": samples,
            "completion_tokens": round(sequences * completion), "student_params": student_params,
            "teacher_params": teacher_params, "student_gpus": student_gpus,
            "teacher_gpus": teacher_gpus if served else 0, "teacher": recipe.teacher.name, "served": served,
            "parts": parts, "busy_gpu_hours": sum(p["gpu_hours"] for p in parts.values()), "gpu_hours": held,
            "wall_hours": wall, "sft_same_prompts": sft, "output_dir": recipe.output_dir, "recipe": str(cfg.student),
            "params": student_params}


def opd_assumptions(cfg: PlanConfig, a: Assumptions) -> dict[str, tuple[str, float, str]]:
    """opd_cost's assumption -> (plan's --set name, default, source): the update is an SFT step, so it takes
    plan's sft_mfu, and the SFT comparison's trace length is the teacher's."""
    sft_mfu = a.get("sft_mfu")
    return {
        "rollout_mfu": ("rollout_mfu", *ASSUMPTIONS["rollout_mfu"]),
        "teacher_prefill_mfu": ("teacher_prefill_mfu", *ASSUMPTIONS["teacher_prefill_mfu"]),
        "update_mfu": ("sft_mfu", sft_mfu, a.used["sft_mfu"]["source"]),
        "sft_trace_tokens": ("completion_tokens_mean", *ASSUMPTIONS["sft_trace_tokens"]),
        "sft_epochs": ("sft_epochs", *ASSUMPTIONS["sft_epochs"]),
    }


def opd_student_params(recipe: Any) -> tuple[int, str]:
    """The student's size: its config.json when it exists, the architecture table, or (an sft output dir not
    trained yet) the model of the sft recipe under recipes/ that writes that directory."""
    spec = recipe.student
    name = spec.name
    if not (Path(name).expanduser() / "config.json").is_file() and spec.init != "from_config":
        source_recipe = sft_recipe_writing(name)
        if source_recipe is not None:
            model = (yaml.safe_load(source_recipe.read_text()) or {}).get("model", {})
            _, params, source = student_shape(model.get("name", ""), model.get("config") or {},
                                              model.get("init") == "from_config", model.get("tokenizer"))
            return params, f"{source}: the model of {source_recipe.relative_to(ROOT)}, whose output_dir is {name}"
    _, params, source = student_shape(name, spec.config, spec.init == "from_config", spec.tokenizer)
    return params, source


def sft_recipe_writing(output_dir: str) -> Path | None:
    for path in sorted((ROOT / "recipes").glob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        if isinstance(data, dict) and str(data.get("output_dir", "")).rstrip("/") == output_dir.rstrip("/"):
            return path
    return None


def opd_teacher(name: str, cfg: PlanConfig, gpu: GPU) -> tuple[float, str, int]:
    """(parameters per token, source, GPUs of one replica): the registry's profile and serving hint, else the
    model's shape and the fewest GPUs (a power of two) that hold its bf16 weights with ~40% left for the KV cache."""
    if name in TEACHERS and name in TEACHER_PROFILES:
        teacher = get_teacher(name)
        hint = serving_hint(teacher, cfg.gpu.lower(), gpu, cfg.gpus_per_node)
        return (TEACHER_PROFILES[name].active_params, f"distill teachers: {name} ({teacher.model_id})",
                hint["tensor_parallel"] * hint["pipeline_parallel"])
    model = get_teacher(name).model_id if name in TEACHERS else name
    _, params, source = student_shape(model)
    return params, source, 2 ** math.ceil(math.log2(max(1.0, 2 * params / (0.6 * gpu.memory_gb * 1e9))))
