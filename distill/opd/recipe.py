"""The recipe of `distill opd`: the student, a same-vocabulary teacher, the prompts, the loss, generation, and
TRL's DistillationConfig under its own names. Import-light (no torch, no TRL), so `distill --help` stays instant.

    recipe = load_recipe("recipes/opd/tiny.yaml", ["student.name=runs/sft/tiny", "opd.max_steps=20"])

A recipe reads (YAML, `--set key=value` on top):

    student: {name: runs/sft/qwen7b}                 # an sft output dir, a hub id, a dir or a .gguf
    teacher: {name: qwq-32b, base_url: http://n1:8000/v1}   # a registry name or a model; base_url: a `vllm serve`
    prompts: {path: runs/data}                       # a curate output dir (its user turns), a prompts file/dir, a hub id
    loss: {beta: 1.0}                                # 1.0: per-token reverse KL (the on-policy distillation loss)
    generation: {max_tokens: 4096, samples_per_prompt: 4}
    opd: {learning_rate: 1.0e-6, max_steps: 200}     # TRL DistillationConfig fields
    output_dir: runs/opd/qwen7b
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from distill.core.config import load_config, option
from distill.core.errors import DistillError
from distill.sft.recipe import LaunchSpec, LoraSpec


@dataclass
class StudentSpec:
    name: str = option(help="The student: an sft output dir (the usual cold start; its lineage is carried "
                       "forward), a hub id, a local dir or a .gguf file. With init: from_config, a model type.")
    init: Literal["pretrained", "from_config"] = option(
        "pretrained", help="pretrained: load the weights; from_config: random weights from `config` (tests).")
    tokenizer: str | None = option(None, help="Tokenizer id or dir; default: the student's.")
    config: dict[str, Any] = option({}, help="Model config overrides, or a whole tiny config with from_config.")
    chat_template: str = option("auto", help="auto: the student's own template when it has one (an sft output "
                                "does), else chatml_r1; or chatml_r1, llama3_r1, a .jinja file, 'tokenizer'.")
    eos_token: str | None = option(None, help="Token that ends an assistant turn; default: the template's.")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = option(
        "auto", help="Weights dtype; auto: bfloat16 on GPU, float32 on CPU.")
    attn_implementation: str = option("sdpa", help="transformers attention (sdpa, flash_attention_2, eager): "
                                      "on-policy batches are padded, not packed.")
    trust_remote_code: bool = option(False, help="Let the model run the Python code it ships (auto_map).")


@dataclass
class TeacherSpec:
    name: str = option(help="A registry name (`distill teachers`: its model) or a model: hub id, dir, .gguf. It "
                       "must share the student's vocabulary (checked from the tokenizers before any weights load).")
    base_url: str | None = option(None, help="A running OpenAI-compatible `vllm serve` of the teacher (the one "
                                  "`distill generate --backend openai` uses): it scores the student's samples "
                                  "through prompt log-probabilities. None: the teacher runs in-process.")
    tokenizer: str | None = option(None, help="Teacher tokenizer for the vocabulary check; default: the model's "
                                   "(in-process) or the server's /tokenize route (base_url).")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = option(
        "auto", help="In-process teacher dtype; auto: bfloat16 on GPU, float32 on CPU.")
    api_key_env: str | None = option(None, help="Environment variable holding the server's API key.")
    request_timeout: float = option(600.0, help="Seconds before a scoring request is abandoned and retried.")
    max_retries: int = option(8, help="Retries of a scoring request on 429/5xx/timeouts; then the run stops with "
                              "an error (a re-run resumes from the last checkpoint), never a zero loss.")
    retry_backoff_s: float = option(1.0, help="Base of the exponential retry backoff (full jitter, capped at 60 s).")
    trust_remote_code: bool = option(False, help="Let the teacher run the Python code it ships (auto_map).")


@dataclass
class PromptsSpec:
    path: str = option(help="A curate output dir (its user turns are reused), a prompts .jsonl/.json/.parquet "
                       "file or dir, or a hub dataset id. Problems only: no answers or traces are needed.")
    problem_field: str = option("problem", help="Prompt field holding the problem text.")
    id_field: str = option("id", help="Prompt field holding a unique id.")
    split: str = option("train", help="Split of a hub dataset.")
    subset: str | None = option(None, help="Config (subset) of a hub dataset.")
    limit: int | None = option(None, help="Use only the first N prompts.")
    prompt_suffix: str | None = option(None, help="Line after each problem; default: R1's boxed-answer instruction.")
    default_system: Literal["keep", "drop"] = option(
        "keep", help="A system turn the student's template adds on its own: keep it or drop it (as generate).")
    think_prefill: bool = option(True, help="End the prompt with '<think>\\n' when the template does not (R1).")


@dataclass
class LossSpec:
    beta: float = option(1.0, help="Generalized JSD: 1.0 reverse KL (on-policy distillation), 0.0 forward KL.")
    temperature: float = option(1.0, help="Temperature of both distributions in the loss, and of the sampling.")
    top_k: int = option(1, help="Remote teacher: log-probabilities per position the server returns. TRL's server "
                        "loss needs 1 for beta > 0 (the sampled token plus a tail bucket).")
    add_tail: bool = option(True, help="Remote teacher: a bucket for the mass outside the top-k (no trivial zero).")


@dataclass
class GenerationSpec:
    max_tokens: int = option(1024, help="Max completion tokens per student sample.")
    samples_per_prompt: int = option(1, help="Student samples per prompt (each prompt is repeated this often).")
    top_p: float = option(1.0, help="Nucleus sampling of the student's samples.")
    temperature: float | None = option(None, help="Sampling temperature of the student's samples; default: "
                                       "loss.temperature (TRL samples and scores at one temperature). 0.6 is R1's.")


@dataclass
class OPDRecipe:
    student: StudentSpec = option(help="The student: model, tokenizer, chat template, dtype.")
    teacher: TeacherSpec = option(help="The teacher: in-process, or a running vllm serve (base_url).")
    prompts: PromptsSpec = option(help="The problems the student answers.")
    output_dir: str = option(help="Final model dir; checkpoints go to OUTPUT_DIR/checkpoint-*/.")
    loss: LossSpec = option(default_factory=LossSpec, help="Divergence: beta, temperature, remote top-k.")
    generation: GenerationSpec = option(default_factory=GenerationSpec, help="Student sampling.")
    opd: dict[str, Any] = option({}, help="Passed to TRL's DistillationConfig under TRL's names (learning_rate, "
                                 "max_steps, per_device_train_batch_size, ...); distill's defaults: OPD_DEFAULTS.")
    lora: LoraSpec | None = option(None, help="Train LoRA adapters instead of every weight (peft).")
    launch: LaunchSpec = option(default_factory=LaunchSpec, help="How to launch: accelerate config, processes.")
    name: str | None = option(None, help="Recipe name for the manifest; default: the recipe file's name.")
    force: bool = option(False, help="Train into an OUTPUT_DIR that holds a run of another recipe.")

    def __post_init__(self) -> None:
        if not 0.0 <= self.loss.beta <= 1.0:
            raise DistillError(f"loss.beta must be in [0, 1] (0 forward KL, 1 reverse KL), not {self.loss.beta}")
        if self.loss.temperature <= 0:
            raise DistillError(f"loss.temperature must be > 0, not {self.loss.temperature}")
        if self.generation.temperature is not None and self.generation.temperature <= 0:
            raise DistillError(f"generation.temperature must be > 0, not {self.generation.temperature}")
        if self.generation.max_tokens < 1 or self.generation.samples_per_prompt < 1:
            raise DistillError("generation.max_tokens and generation.samples_per_prompt must be at least 1")
        if self.teacher.base_url and self.loss.beta > 0 and self.loss.top_k != 1:
            raise DistillError(f"loss.top_k must be 1 with a remote teacher and beta > 0 (TRL's server loss is the "
                               f"sampled token plus a tail bucket), not {self.loss.top_k}; or set loss.beta: 0")
        for key, where in MANAGED_OPD_KEYS.items():
            if key in self.opd:
                raise DistillError(f"opd.{key} is managed by distill: {where}")
        if self.lora and self.student.init == "from_config":
            raise DistillError("lora adapts pretrained weights, but student.init is from_config; drop lora:")
        if self.launch.num_processes < 1 or self.launch.num_machines < 1:
            raise DistillError("launch.num_processes and launch.num_machines must be at least 1")


# DistillationConfig keys the recipe sets elsewhere, and where.
MANAGED_OPD_KEYS = {
    "output_dir": "set output_dir at the top level of the recipe",
    "resume_from_checkpoint": "runs resume from the last checkpoint in output_dir by themselves",
    "beta": "set loss.beta",
    "temperature": "set loss.temperature",
    "loss_top_k": "set loss.top_k",
    "loss_add_tail": "set loss.add_tail",
    "max_completion_length": "set generation.max_tokens",
    "top_p": "set generation.top_p",
    "teacher_model_name_or_path": "set teacher.name",
    "teacher_model_server_url": "set teacher.base_url",
    "teacher_model_init_kwargs": "set teacher.dtype",
    "model_init_kwargs": "set student.dtype and student.config",
}

# distill's defaults below the recipe's `opd:` (TRL's own defaults below these).
OPD_DEFAULTS: dict[str, Any] = {
    "per_device_train_batch_size": 4,
    "logging_steps": 1,  # every on-policy step costs a generation: log each one
    "save_strategy": "steps",
    "save_steps": 50,
    "save_total_limit": 2,
    "report_to": "none",
    "disable_tqdm": True,  # distill's own progress line shows steps, tokens/s, KL, sample length, EOS share
    "gradient_checkpointing_kwargs": {"use_reentrant": False},
    "ddp_find_unused_parameters": False,
}


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> OPDRecipe:
    """The recipe from YAML + `key=value` overrides; its name defaults to the file's stem."""

    recipe = load_config(OPDRecipe, path, list(overrides))
    if recipe.name is None:
        recipe.name = Path(path).stem
    return recipe
