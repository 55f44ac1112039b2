"""The student of `distill sft`: tokenizer with its chat template, the model (pretrained or from a config, with
document-masked attention and the template's EOS), the trainer, and the final save.

    tokenizer, eos_id = load_tokenizer(recipe.model)
    model = load_model(recipe.model, args, tokenizer, eos_id)
    trainer = build_trainer(recipe, sft_config(args, out), model, tokenizer, train_dataset)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill.core.errors import DistillError
from distill.core.log import get_logger, is_main_process
from distill.core.model_source import local_model, remote_code_error
from distill.sft.attention import register
from distill.sft.memory import shape_of
from distill.sft.student_template import apply_template, get_template, set_model_eos
from distill.sft.trainer import DistillSFTTrainer, SelectiveCheckpointing


def load_tokenizer(spec: Any) -> tuple[Any, int]:
    from transformers import AutoTokenizer

    source = local_model(spec.tokenizer or spec.name)  # a .gguf file: tokenizer and template from the file
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=spec.trust_remote_code)
    except (OSError, ValueError) as err:
        if remote_code_error(err, source):
            raise remote_code_error(err, source) from None
        raise DistillError(f"cannot load the tokenizer '{source}' ({str(err).splitlines()[0][:160]}); set "
                           "model.tokenizer to a tokenizer dir or hub id") from None
    return tokenizer, apply_template(tokenizer, get_template(spec.chat_template, spec.eos_token))


def load_model_config(spec: Any) -> Any:
    """The model config with the recipe's overrides applied through the config's constructor, so derived fields
    (layer types, rope parameters) follow them; rope_theta goes into rope_parameters on transformers 5."""
    from transformers import AutoConfig
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    overrides = dict(spec.config)
    try:
        if spec.init == "from_config" and spec.name in CONFIG_MAPPING and not Path(spec.name).exists():
            return AutoConfig.for_model(spec.name, **overrides)
        config = AutoConfig.from_pretrained(local_model(spec.name), trust_remote_code=spec.trust_remote_code)
    except (OSError, ValueError) as err:
        if remote_code_error(err, spec.name):
            raise remote_code_error(err, spec.name) from None
        raise DistillError(f"cannot load the model config of '{spec.name}' ({str(err).splitlines()[0][:160]}); set "
                           "model.name to a model dir, a hub id, or (with init: from_config) a model type") from None
    if not overrides:
        return config
    values = {**config.to_dict(), **overrides}
    if "num_hidden_layers" in overrides:
        values.pop("layer_types", None)
    if "rope_theta" in overrides and isinstance(values.get("rope_parameters"), dict):
        values["rope_parameters"] = {**values["rope_parameters"], "rope_theta": float(values.pop("rope_theta"))}
    return type(config).from_dict(values)


def load_model(spec: Any, args: dict[str, Any], tokenizer: Any | None = None, eos_id: int | None = None) -> Any:
    """The student, with document-masked attention registered, its vocab matching the tokenizer, and EOS set."""
    import torch
    from transformers import AutoModelForCausalLM

    attn = register() if spec.attn_implementation == "auto" else spec.attn_implementation
    dtype = getattr(torch, spec.dtype) if spec.dtype != "auto" else (
        torch.bfloat16 if torch.cuda.is_available() and not args.get("use_cpu") else torch.float32)
    config = load_model_config(spec)
    if spec.init == "from_config" and tokenizer is not None and "vocab_size" not in spec.config:
        config.vocab_size = len(tokenizer)  # a student from scratch gets exactly the tokenizer's vocabulary
    if spec.init == "from_config":
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=attn)
    else:
        try:
            # a .gguf file: its dequantised weights, cast to the training dtype
            model = AutoModelForCausalLM.from_pretrained(local_model(spec.name), config=config, dtype=dtype,
                                                         attn_implementation=attn,
                                                         trust_remote_code=spec.trust_remote_code)
        except OSError as err:
            raise DistillError(f"cannot load the weights of '{spec.name}' ({str(err).splitlines()[0][:160]}); check "
                               "model.name, your hub access, or use model.init: from_config for random weights") from None
    if not torch.cuda.is_available():
        single_thread_if_tiny(model)
    if tokenizer is not None:
        if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
            model.resize_token_embeddings(len(tokenizer))
        set_model_eos(model, tokenizer, eos_id)
    return model


def single_thread_if_tiny(model: Any) -> None:
    """One CPU thread for a tiny model: its matrices are too small to split, and on a busy machine threads that
    spin-wait on each other made steps 7x slower. OMP_NUM_THREADS, when set, wins."""
    import os

    import torch

    if "OMP_NUM_THREADS" not in os.environ and sum(p.numel() for p in model.parameters()) < 20_000_000:
        torch.set_num_threads(1)
        get_logger().info("tiny model on CPU: training on 1 thread (set OMP_NUM_THREADS to choose)")


def build_trainer(recipe: Any, config: Any, model: Any, tokenizer: Any, train: Any,
                  eval_data: Any = None) -> Any:
    """The trainer over a tokenized dataset (input_ids, labels); `config` is the SFTConfig from sft_config()."""
    peft_config = None
    if recipe.lora:
        from peft import LoraConfig

        targets = recipe.lora.target_modules
        peft_config = LoraConfig(r=recipe.lora.r, lora_alpha=recipe.lora.alpha, lora_dropout=recipe.lora.dropout,
                                 target_modules="all-linear" if targets == ["all-linear"] else targets,
                                 task_type="CAUSAL_LM")
    return DistillSFTTrainer(model=model, args=config, train_dataset=train, eval_dataset=eval_data,
                             processing_class=tokenizer, peft_config=peft_config,
                             callbacks=[SelectiveCheckpointing(recipe.checkpoint_layers)])


def model_shape_from_config(spec: Any) -> Any:
    """The model's shape from its config on a meta device (no weights), or None when the config is unreachable."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        config = load_model_config(spec)
    except DistillError:
        return None
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return shape_of(config, sum(p.numel() for p in model.parameters()))


def save_final(trainer: Any, recipe: Any, out: Path) -> None:
    """OUTPUT_DIR loads with AutoModelForCausalLM: the weights (LoRA adapters merged unless lora.merge is false),
    tokenizer with chat template, and a generation_config whose EOS ends the assistant turn."""
    if not recipe.lora or not recipe.lora.merge:
        trainer.save_model(str(out))
        return
    trainer.save_model(str(out / "adapter"))
    trainer.accelerator.wait_for_everyone()
    if not is_main_process():
        return
    if trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled:
        # the in-memory weights are shards: merge from the saved adapter onto a freshly loaded base
        from peft import PeftModel

        base = load_model(recipe.model, {"use_cpu": True}, trainer.processing_class,
                          trainer.processing_class.eos_token_id)
        model = PeftModel.from_pretrained(base, str(out / "adapter"))
    else:
        model = trainer.model
    generation_config = model.generation_config
    merged = model.merge_and_unload()
    merged.generation_config = generation_config
    merged.save_pretrained(str(out))
    trainer.processing_class.save_pretrained(str(out))
