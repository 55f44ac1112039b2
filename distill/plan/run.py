"""`distill plan`: what a distillation run will cost before it starts, whether the student fits, and the
commands that launch each stage on the given hardware.

    distill plan --teacher deepseek-r1 --prompts 200000 --samples 4 --student recipes/qwen7b.yaml --gpu h100 --nodes 2
    result = plan(PlanConfig(prompts="200000", samples=4, student="recipes/qwen7b.yaml", nodes=2))
    result["stages"]["sft"]["gpu_hours"], result["assumptions"]["sft_mfu"]["source"]   # 406.5, "distill's reference ..."

Reads the teacher registry, the student recipe (and its accelerate config), a prompt file when --prompts names
one, and with --from DIR the manifests of finished runs. Writes nothing: it returns a dict (printed as a table,
or as JSON with --json).

The model, per stage:
- generate: decode-bound. Output tokens over the teacher's decode rate per GPU (a published figure, scaled by
  HBM bandwidth to other GPUs), plus prompt tokens over a prefill rate; whole replicas only, by the serving hints.
- sft: 6 x parameters x tokens x epochs + 6 x layers x hidden x length^2 per document (attention, what makes 32K
  rows dear), over MFU x peak; each micro-batch takes at least the time ZeRO-3/FSDP needs to gather the weights
  and scatter the gradients over the slowest link (inter-node across nodes), and CPU offload is slower again.
- eval: samples x mean response tokens per task, decoded on every GPU (vLLM data parallel).
- with --method opd, an opd recipe instead of generate -> curate -> sft: distill.plan.opd.
"""

from __future__ import annotations

import dataclasses
import math
import random
from bisect import bisect_left, insort
from pathlib import Path
from typing import Any

from distill.core.errors import DistillError
from distill.core.gpus import GPU, GPUS, get_gpu
from distill.core.paths import ROOT
from distill.core.protocol import user_prompt
from distill.core.teachers import TEACHER_PROFILES, TEACHERS, get_teacher
from distill.curate.filters import PerPromptCapParams
from distill.plan.config import Assumptions, PlanConfig
from distill.plan.hardware import serving_hint, student_shape
from distill.plan.measured import Measured, read_measured
from distill.plan.opd import plan_opd
from distill.sft.flops import attention_flops, linear_flops
from distill.sft.launch import sharding
from distill.sft.memory import GIB, estimate, memory_plan
from distill.sft.recipe import SFT_DEFAULTS, load_recipe

CHARS_PER_TOKEN = 3.5  # English prose with LaTeX through a 100K+ BPE vocabulary (Qwen2.5, DeepSeek-V3): ~3-4
# Eval problems per task, and R1-protocol samples per problem (distill eval's defaults).
EVAL_TASKS = {"aime24": (30, 64), "aime25": (30, 64), "math500": (500, 4)}
# s1-32B's mean thinking tokens at 32K training length (s1 paper, arXiv 2501.19393, Table 7).
EVAL_TOKENS = {"aime24": (6984, "s1-32B on AIME24: 6,984 thinking tokens per sample (s1 paper Table 7)"),
               "aime25": (6984, "s1-32B on AIME24 (s1 paper Table 7), taken for AIME25"),
               "math500": (3268, "s1-32B on MATH500: 3,268 thinking tokens per sample (s1 paper Table 7)")}


def run(cfg: PlanConfig) -> dict[str, Any]:
    measured = read_measured(cfg.from_dir) if cfg.from_dir else Measured()
    a = Assumptions(cfg, measured)
    gpu, gpu_name = get_gpu(cfg.gpu, (cfg.gpu_peak_tflops or 0) * 1e12 or None, cfg.gpu_memory_gb)
    a.used["gpu"] = {"value": gpu_name, "source": gpu.source}
    hw = {"gpu": gpu_name, "nodes": cfg.nodes, "gpus_per_node": cfg.gpus_per_node, "gpus": cfg.nodes * cfg.gpus_per_node}
    if cfg.method == "opd":
        return run_opd(cfg, a, gpu, hw, measured)
    prompts, prompt_note = count_prompts(cfg, measured)
    samples = cfg.samples or (measured.totals.get("generate", {}).get("samples_per_prompt")) or 1
    stages = {"generate": plan_generate(cfg, a, gpu, prompts, samples)}
    stages["curate"] = plan_curate(a, stages["generate"])
    if cfg.student:
        stages["sft"] = plan_sft(cfg, a, gpu, stages["curate"], measured)
        stages["eval"] = plan_eval(cfg, a, gpu, stages["sft"], measured)
    for s in stages.values():
        s["cost"] = round(s["gpu_hours"] * cfg.price_per_gpu_hour, 2) if cfg.price_per_gpu_hour else None
    total = {"gpu_hours": sum(s["gpu_hours"] for s in stages.values()),
             "wall_hours": sum(s["wall_hours"] for s in stages.values())}
    total["cost"] = round(total["gpu_hours"] * cfg.price_per_gpu_hour, 2) if cfg.price_per_gpu_hour else None
    return {"inputs": {"teacher": cfg.teacher, "prompts": prompts, "prompts_from": prompt_note, "samples": samples,
                       "student": cfg.student, **hw, "price_per_gpu_hour": cfg.price_per_gpu_hour,
                       "from": cfg.from_dir},
            "stages": stages, "total": total, "assumptions": a.used,
            "measured": measured.totals or None, "commands": commands(cfg, stages)}


def run_opd(cfg: PlanConfig, a: Assumptions, gpu: GPU, hw: dict[str, Any], measured: Measured) -> dict[str, Any]:
    """On-policy distillation of a student (usually an sft output) and its eval: no teacher traces to generate."""
    prompts, prompt_note = count_prompts(cfg, measured) if cfg.prompts else (None, "the recipe's opd.max_steps")
    stages = {"opd": plan_opd(cfg, a, gpu, prompts)}
    sft = stages["opd"]["sft_same_prompts"]
    if stages["opd"]["teacher"] in TEACHERS:  # SFT needs the teacher's traces first: one per prompt
        gen = plan_generate(dataclasses.replace(cfg, teacher=stages["opd"]["teacher"]), a, gpu, sft["prompts"], 1)
        sft["generate_gpu_hours"] = gen["gpu_hours"]
        sft["gpu_hours"] += gen["gpu_hours"]
        sft["wall_hours"] += gen["wall_hours"]
        if sft["cost"] is not None:
            sft["cost"] = round(sft["gpu_hours"] * cfg.price_per_gpu_hour, 2)
    stages["eval"] = plan_eval(cfg, a, gpu, stages["opd"], measured)
    price = cfg.price_per_gpu_hour
    for s in stages.values():
        s["cost"] = round(s["gpu_hours"] * price, 2) if price else None
    total = {"gpu_hours": sum(s["gpu_hours"] for s in stages.values()),
             "wall_hours": sum(s["wall_hours"] for s in stages.values())}
    total["cost"] = round(total["gpu_hours"] * price, 2) if price else None
    opd = stages["opd"]
    return {"inputs": {"method": "opd", "teacher": opd["teacher"], "prompts": opd["prompts"], "prompts_from": prompt_note,
                       "samples": opd["samples_per_prompt"], "student": cfg.student, **hw, "price_per_gpu_hour": price,
                       "from": cfg.from_dir},
            "stages": stages, "total": total, "assumptions": a.used, "measured": measured.totals or None,
            "commands": opd_commands(cfg, stages)}


def opd_commands(cfg: PlanConfig, stages: dict[str, Any]) -> list[str]:
    opd, ev, out = stages["opd"], stages["eval"], []
    set_url = ""
    if opd["served"]:
        teacher = get_teacher(opd["teacher"]).model_id if opd["teacher"] in TEACHERS else opd["teacher"]
        out.append(f"# on the teacher's {opd['teacher_gpus']} GPU(s): vllm serve {teacher} --tensor-parallel-size "
                   f"{opd['teacher_gpus']}")
        set_url = " --set teacher.base_url=http://TEACHER:8000/v1"
    out.append(f"distill opd {cfg.student}{set_url} --set launch.num_processes={opd['student_gpus']}")
    out.append(f"distill eval --model {opd['output_dir']} --tasks {','.join(ev['tasks'])} --backend vllm "
               f"--tensor-parallel {ev['tensor_parallel']} --data-parallel {ev['data_parallel']}")
    return out


def count_prompts(cfg: PlanConfig, measured: Measured) -> tuple[int, str]:
    if cfg.prompts is None:
        if "generate" in measured.totals:
            return int(measured.totals["generate"]["prompts"]), f"the run in {measured.dirs['generate']}"
        raise DistillError("how many prompts? pass --prompts N (a count) or --prompts FILE (a prompt file to count), "
                           "or --from a finished generate run")
    text = str(cfg.prompts).replace("_", "").replace(",", "")
    if text.isdigit():
        if int(text) < 1:
            raise DistillError("--prompts must be at least 1")
        return int(text), "given"
    if not Path(cfg.prompts).expanduser().exists():
        raise DistillError(f"--prompts '{cfg.prompts}' is neither a count nor an existing prompt file; pass a number "
                           "(--prompts 200000) or a .jsonl/.json/.parquet file or directory")

    from distill.generate.prompts import load_prompts  # pyarrow: only when --prompts names a file

    table = load_prompts(cfg.prompts)
    if table.num_rows and "prompt_tokens_mean" not in measured.values:  # the file says how long its prompts are
        suffix = get_teacher(cfg.teacher).prompt_suffix
        chars = sum(len(user_prompt(p, suffix)) for p in table.column("problem").to_pylist()) / table.num_rows
        measured.values["prompt_tokens_mean"] = chars / CHARS_PER_TOKEN
        measured.sources["prompt_tokens_mean"] = (f"{cfg.prompts}: {chars:,.0f} characters per prompt / "
                                                  f"{CHARS_PER_TOKEN} (estimate of BPE tokenizers on math text)")
    return table.num_rows, f"counted in {cfg.prompts}"


# ---------------------------------------------------------------- generate


def plan_generate(cfg: PlanConfig, a: Assumptions, gpu: GPU, prompts: int, samples: int) -> dict[str, Any]:
    teacher = get_teacher(cfg.teacher)
    profile = TEACHER_PROFILES.get(teacher.name)
    traces = prompts * samples
    completion = a.get("completion_tokens_mean", *((profile.trace_tokens, profile.trace_source) if profile else
                                                  (teacher.max_tokens / 4, "estimate: a quarter of the teacher's "
                                                   "max_tokens (no published trace length for it)")))
    prompt_tokens = round(traces * a.get("prompt_tokens_mean"))
    completion_tokens = round(traces * completion)
    out = {"traces": traces, "samples_per_prompt": samples, "prompt_tokens": prompt_tokens,
           "completion_tokens": completion_tokens}
    if teacher.backend == "arithmetic":  # a program teacher: CPU only
        rate = a.get("arithmetic_tokens_per_s")
        return {**out, "gpu_hours": 0.0, "wall_hours": completion_tokens / rate / 3600, "replicas": 1,
                "serving": "CPU (program teacher)"}
    hint = serving_hint(teacher, cfg.gpu.lower(), gpu, cfg.gpus_per_node)
    replica_gpus = hint["tensor_parallel"] * hint["pipeline_parallel"]
    replicas = (cfg.nodes * cfg.gpus_per_node) // replica_gpus
    warning = None
    if replicas < 1:  # the other stages can still be planned: say it, and time one replica of the needed size
        warning = (f"one replica of {teacher.name} on {cfg.gpu} needs {replica_gpus} GPUs ({hint['nodes']} node(s)); "
                   f"{cfg.nodes} x {cfg.gpus_per_node} is less: add nodes or pick a GPU with more memory "
                   "(wall time shown for one such replica)")
        replicas = 1
    elif (idle := cfg.nodes * cfg.gpus_per_node - replicas * replica_gpus) > 0:
        warning = (f"{idle} GPU(s) idle during generate: {cfg.nodes} x {cfg.gpus_per_node} is not a multiple of one "
                   f"replica's {replica_gpus} GPUs (GPU-hours count only the busy ones)")
    decode = decode_per_node(a, profile, gpu, cfg.gpus_per_node) / cfg.gpus_per_node
    prefill = a.get("prefill_tokens_per_s_per_node") * gpu.peak_flops / GPUS["h800"].peak_flops / 8  # the H800 figure, per GPU
    gpu_hours = (completion_tokens / decode + prompt_tokens / prefill) / 3600
    return {**out, "gpu_hours": gpu_hours, "wall_hours": gpu_hours / (replicas * replica_gpus), "replicas": replicas,
            "serving": f"{replicas} replica(s) of TP {hint['tensor_parallel']} x PP {hint['pipeline_parallel']}",
            "tensor_parallel": hint["tensor_parallel"], "pipeline_parallel": hint["pipeline_parallel"],
            "warning": warning}


def decode_per_node(a: Assumptions, profile: Any, gpu: GPU, per_node: int) -> float:
    run = a.measured.totals.get("generate", {})
    if a.cfg.generate_tokens_per_s_per_node is None and run.get("tokens_per_s_per_gpu") and \
            run.get("teacher") == a.cfg.teacher and str(run.get("gpu_type")).lower() == a.cfg.gpu.lower():
        return a.get("generate_tokens_per_s_per_node", run["tokens_per_s_per_gpu"] * per_node,
                     f"measured: {run['dir']} ({run['tokens_per_s']:,.0f} tokens/s on {run['gpus']} GPUs)")
    if a.cfg.generate_tokens_per_s_per_node is None:
        if profile is None:
            raise DistillError(f"no decode throughput known for teacher '{a.cfg.teacher}'; give it by hand: "
                               "--set generate_tokens_per_s_per_node=5000")

        scale = gpu.hbm_tb_s / GPUS[profile.decode_gpu].hbm_tb_s
        note = f"{profile.decode_source}; x{scale:.2f} HBM bandwidth of this GPU" if scale != 1 else profile.decode_source
        return a.get("generate_tokens_per_s_per_node", profile.decode_tok_s_per_gpu * scale * per_node, note)
    return a.get("generate_tokens_per_s_per_node")


# ---------------------------------------------------------------- curate


def plan_curate(a: Assumptions, gen: dict[str, Any]) -> dict[str, Any]:
    """Kept traces: the keep rate, and never more per prompt than curate's per_prompt_cap keeps (4 by default:
    beyond 4 samples a prompt, more samples buy fewer kept traces)."""
    keep = a.get("keep_rate")
    cap = a.get("max_per_prompt", PerPromptCapParams().max_per_prompt, "distill curate's default per_prompt_cap "
                "(recipes/curate/r1_math.yaml)")
    kept = min(round(gen["traces"] * keep), round(gen["traces"] / gen["samples_per_prompt"] * cap))
    return {"input_traces": gen["traces"], "kept": kept, "traces_per_kept": gen["traces"] / max(1, kept),
            "gpu_hours": 0.0, "wall_hours": 0.0, "note": "CPU: verification, filters, dedup and decontamination"}


# ---------------------------------------------------------------- sft


def plan_sft(cfg: PlanConfig, a: Assumptions, gpu: GPU, cur: dict[str, Any], measured: Measured) -> dict[str, Any]:
    recipe = load_recipe(cfg.student, cfg.recipe_overrides)
    args = {**SFT_DEFAULTS, **recipe.sft}  # TRL's names; planned for a GPU run, whatever this machine is
    shape, params, shape_source = student_shape(recipe.model.name, recipe.model.config,
                                                recipe.model.init == "from_config", recipe.model.tokenizer)
    a.used["student_shape"] = {"value": f"{params / 1e9:.2f}B parameters", "source": shape_source}
    max_length, epochs = int(args.get("max_length") or 1024), float(args.get("num_train_epochs", 3.0))
    docs = example_lengths(a, measured, cur)
    kept, used, sq = length_stats(docs, max_length, recipe.drop_too_long)
    examples = round(cur["kept"] * kept)
    tokens = examples * used * epochs
    # LoRA: no weight gradients, ~2/3 of full fine-tuning's FLOPs
    attention = attention_flops(shape.layers, shape.hidden, sq) * examples * epochs
    flops = linear_flops(params, tokens, frozen=bool(recipe.lora)) + attention
    world = cfg.nodes * cfg.gpus_per_node
    accel = accelerate_config(recipe.launch.accelerate_config)
    sharding = _sharding(accel, world)
    mfu = a.get("sft_mfu")
    per_device = int(args.get("per_device_train_batch_size", 1))
    per_example, fill = packed_rows(docs, max_length) if args.get("packing") else (1.0, None)
    rows = per_example * examples
    micro_steps = max(1.0, rows * epochs / (world * per_device))
    compute_s = flops / (mfu * gpu.peak_flops) / world / micro_steps
    comm_s = comm_seconds(a, cfg, gpu, params, sharding, int(args.get("gradient_accumulation_steps", 1)))
    step_s = max(compute_s, comm_s)
    if _offloads(accel):
        step_s *= a.get("offload_slowdown")
    wall = micro_steps * step_s / 3600
    mem = memory_check(recipe, args, accel, shape, world, gpu, sharding)
    return {"examples": examples, "dropped_too_long": round(cur["kept"] * (1 - kept)), "tokens": round(tokens),
            "epochs": epochs, "max_length": max_length, "flops": flops, "attention_flops": attention, "params": params, "rows": round(rows),
            "packing_fill": fill, "accelerate_config": recipe.launch.accelerate_config,
            "step_s": step_s, "bound": "communication" if comm_s > compute_s else "compute", "sharding": sharding,
            "offload": _offloads(accel), "gpu_hours": wall * world, "wall_hours": wall, "memory": mem,
            "output_dir": recipe.output_dir, "recipe": str(cfg.student)}


def example_lengths(a: Assumptions, measured: Measured, cur: dict[str, Any]) -> list[int]:
    """SFT example lengths: the measured ones (scaled to a --set mean), else a lognormal with the assumed mean
    and spread, seeded so every plan of the same inputs agrees."""
    gen_mean = a.used["prompt_tokens_mean"]["value"] + a.used["completion_tokens_mean"]["value"] + 10
    mean = a.get("sft_tokens_mean", gen_mean, "prompt + completion tokens + ~10 of chat template")
    if measured.lengths and a.cfg.sft_tokens_mean is None:
        return measured.lengths
    if measured.lengths:
        scale = mean / (sum(measured.lengths) / len(measured.lengths))
        return [max(1, round(n * scale)) for n in measured.lengths]
    cv = a.get("length_cv")
    sigma = math.sqrt(math.log(1 + cv * cv))
    rng = random.Random(0)
    return [max(1, round(rng.lognormvariate(math.log(mean) - sigma * sigma / 2, sigma))) for _ in range(20000)]


def length_stats(docs: list[int], max_length: int, drop: bool) -> tuple[float, float, float]:
    """(share of examples kept, mean tokens of a kept example, mean of its length squared)."""
    kept = [n for n in docs if n <= max_length] if drop else [min(n, max_length) for n in docs]
    if not kept:
        raise DistillError(f"every example is longer than sft.max_length {max_length}; raise it or set "
                           "drop_too_long: false")
    return len(kept) / len(docs), sum(kept) / len(kept), sum(n * n for n in kept) / len(kept)


def packed_rows(docs: list[int], max_length: int) -> tuple[float, float]:
    """(rows per example, share of row positions filled) after best-fit-decreasing packing into max_length rows,
    what TRL's bfd strategy does; padding-free rows cost no compute for the unfilled rest, only steps."""
    free: list[int] = []  # remaining capacity of each open row, sorted
    fitting = sorted((d for d in docs if d <= max_length), reverse=True)
    for n in fitting:
        i = bisect_left(free, n)
        if i < len(free):
            left = free.pop(i) - n
        else:
            left = max_length - n
        insort(free, left)
    rows = max(1, len(free))
    return rows / max(1, len(fitting)), sum(fitting) / (rows * max_length)


def accelerate_config(path: str | None) -> dict[str, Any]:
    """The recipe's accelerate config as YAML (accelerate itself is not imported: planning needs no torch)."""
    import yaml

    if not path:
        return {}
    for candidate in (Path(path).expanduser(), ROOT / path):
        if candidate.is_file():
            return yaml.safe_load(candidate.read_text()) or {}
    raise DistillError(f"launch.accelerate_config '{path}' not found; pass a file under recipes/accelerate/")


def _sharding(accel: dict[str, Any], world: int) -> str:
    return sharding(accel) if world > 1 or accel else "none"


def _offloads(accel: dict[str, Any]) -> bool:
    ds = accel.get("deepspeed_config") or {}
    fsdp = accel.get("fsdp_config") or {}
    return any(str(ds.get(k, "none")).lower() not in ("none", "", "false") for k in
               ("offload_optimizer_device", "offload_param_device")) or bool(fsdp.get("fsdp_offload_params"))


def comm_seconds(a: Assumptions, cfg: PlanConfig, gpu: GPU, params: int, sharding: str, accumulation: int) -> float:
    """Seconds of collective traffic per micro-batch: ZeRO-3/FSDP gathers the bf16 weights for forward and for
    backward and reduce-scatters the gradients every micro-batch (3 x 2 bytes x N through each GPU's link);
    DDP and ZeRO-1/2 all-reduce the gradients once per optimizer step (2 x 2 bytes x N)."""
    world = cfg.nodes * cfg.gpus_per_node
    if world == 1:
        return 0.0
    link = (a.get("internode_gb_s") if cfg.nodes > 1 else gpu.nvlink_gb_s) * 1e9
    if sharding in ("zero3", "fsdp"):
        return 3 * 2 * params / link
    return 2 * 2 * params / link / max(1, accumulation)


def memory_check(recipe: Any, args: dict[str, Any], accel: dict[str, Any], shape: Any, world: int, gpu: GPU,
                 sharding: str) -> dict[str, Any]:
    """distill sft's own estimate at this plan's GPU count; when it does not fit, the fixes, and the fewest GPUs
    that would fit with ZeRO-3 (or that no count does)."""
    launch = dataclasses.replace(recipe.launch, num_processes=world, num_machines=1, gpu_memory_gb=gpu.memory_gb)
    mplan = memory_plan(dataclasses.replace(recipe, launch=launch), args, accel, shape)
    mplan = dataclasses.replace(mplan, sharding=sharding)
    est = estimate(shape, mplan)
    out = {"per_gpu_gib": round(est.total / GIB, 1), "gpu_gib": gpu.memory_gb, "fits": est.fits,
           "parts_gib": {k: round(v / GIB, 1) for k, v in est.parts.items()}, "fixes": est.fixes, "helps": est.helps}
    if not est.fits:
        out["fits_on_gpus"] = next((n for n in (2 ** k for k in range(1, 13)) if n > world and estimate(
            shape, dataclasses.replace(mplan, world=n, sharding="zero3")).fits), None)
        if out["fits_on_gpus"] is None:
            out["note"] = (f"does not fit on any count of {gpu.memory_gb:g} GB GPUs as configured (activations and "
                           "overhead alone exceed one GPU); change the recipe: " + "; ".join(est.fixes or est.helps))
    return out


# ---------------------------------------------------------------- eval


def plan_eval(cfg: PlanConfig, a: Assumptions, gpu: GPU, sft: dict[str, Any], measured: Measured) -> dict[str, Any]:
    tasks = eval_tasks(cfg, measured)
    world = cfg.nodes * cfg.gpus_per_node
    rate = a.get("eval_decode_mfu") * gpu.peak_flops / (2 * sft["params"])  # output tokens/s per GPU
    per_task, tokens = {}, 0
    for name, (n, k, mean) in tasks.items():
        mean = a.get(f"eval_tokens.{name}", *mean)
        per_task[name] = {"problems": n, "k": k, "samples": n * k, "tokens": round(n * k * mean)}
        tokens += per_task[name]["tokens"]
    tp = 2 ** math.ceil(math.log2(max(1.0, 2 * sft["params"] / (0.6 * gpu.memory_gb * 1e9))))
    gpu_hours = tokens / rate / 3600
    return {"tasks": per_task, "tokens": tokens, "gpu_hours": gpu_hours, "wall_hours": gpu_hours / world,
            "tensor_parallel": tp, "data_parallel": max(1, world // tp)}


def eval_tasks(cfg: PlanConfig, measured: Measured) -> dict[str, tuple[int, int, tuple]]:
    """name -> (problems, k, (default mean tokens, source))."""
    if cfg.tasks is None and "eval" in measured.totals:
        return {name: (t["n"], cfg.eval_samples or t["k"], (t["mean_tokens"] or 0, f"measured: {measured.dirs['eval']}"))
                for name, t in measured.totals["eval"]["tasks"].items()}
    names: list[str] = []
    for task in cfg.tasks or ["aime", "math500"]:
        names += ["aime24", "aime25"] if task == "aime" else [task]
    unknown = [t for t in names if t not in EVAL_TASKS]
    if unknown:
        raise DistillError(f"unknown eval task {', '.join(unknown)} for the plan; known: aime, {', '.join(EVAL_TASKS)}")
    return {t: (EVAL_TASKS[t][0], cfg.eval_samples or EVAL_TASKS[t][1], EVAL_TOKENS[t]) for t in names}


# ---------------------------------------------------------------- commands


def commands(cfg: PlanConfig, stages: dict[str, Any]) -> list[str]:
    gen, teacher = stages["generate"], get_teacher(cfg.teacher)
    src = cfg.prompts if cfg.prompts and not str(cfg.prompts).replace("_", "").isdigit() else "prompts.jsonl"
    out = []
    if "tensor_parallel" in gen:
        tp, pp = gen["tensor_parallel"], gen["pipeline_parallel"]
        serve = f"vllm serve {teacher.model_id} --tensor-parallel-size {tp}" + (
            f" --pipeline-parallel-size {pp}" if pp > 1 else "") + f" --max-model-len {teacher.max_model_len}"
        where = " (across nodes: recipes/serving/README.md)" if pp > 1 else ""
        out.append(f"# on each of {gen['replicas']} replica(s){where}: {serve}")
        urls = " ".join(f"--base-url http://REPLICA{i}:8000/v1" for i in range(min(gen["replicas"], 4)))
        more = " ..." if gen["replicas"] > 4 else ""
        out.append(f"distill generate --teacher {teacher.name} --prompts {src} --out runs/gen --num-samples "
                   f"{gen['samples_per_prompt']} {urls}{more} --concurrency {256 * gen['replicas']}")
    else:
        out.append(f"distill generate --teacher {teacher.name} --prompts {src} --out runs/gen --num-samples "
                   f"{gen['samples_per_prompt']}")
    out.append("distill curate runs/gen --out runs/data")
    if "sft" in stages:
        sft = stages["sft"]
        if cfg.nodes > 1:
            out.append("# on every node N (or sbatch recipes/slurm/sft_multinode.sbatch):")
        multi = f" --set launch.num_machines={cfg.nodes} --set launch.main_process_ip=NODE0 --set " \
                "launch.machine_rank=N" if cfg.nodes > 1 else ""
        out.append(f"distill sft {cfg.student} --set launch.num_processes={cfg.gpus_per_node}{multi}  # launches "
                   f"with {sft['accelerate_config'] or 'one process'} ({sft['sharding']})")
        ev = stages["eval"]
        out.append(f"distill eval --model {sft['output_dir']} --tasks {','.join(ev['tasks'])} --backend vllm "
                   f"--tensor-parallel {ev['tensor_parallel']} --data-parallel {ev['data_parallel']}")
    return out
