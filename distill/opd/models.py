"""The two models of `distill opd`: the student's tokenizer with its chat template, the teacher's tokenizer, the
vocabulary check between them (before any weights load), the causal-LM check, and loading the weights.

    tokenizer, eos_id = student_tokenizer(recipe.student)
    check_same_vocabulary(tokenizer, teacher_tokenizer(recipe.teacher), recipe.student.name, teacher_model)
    student = load_student(recipe.student, args, tokenizer, eos_id)

On-policy distillation compares the two models' next-token distributions token by token, so a token id must
mean the same string to both. TRL compares only `config.vocab_size`, after both models are loaded; two
tokenizers can have equal sizes and different tokens (DeepSeek-R1-Distill-Qwen renames Qwen2.5's special tokens
at the same ids), and a size check after loading a 32B teacher comes minutes late.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from distill.core.errors import DistillError
from distill.core.model_source import is_gguf, local_model, remote_code_error
from distill.core.teachers import TEACHERS
from distill.sft.model import load_model, load_model_config
from distill.sft.student_template import apply_template, get_template

CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")  # the architectures that generate text token by token


def teacher_model(spec: Any) -> str:
    """The teacher's model: a registry name's model id, else the name as given."""
    return TEACHERS[spec.name].model_id if spec.name in TEACHERS else spec.name


def read_tokenizer(source: str, trust_remote_code: bool, what: str) -> Any:
    """A tokenizer without the weights: a .gguf file's is read from the file itself, not by converting it."""
    from transformers import AutoTokenizer

    try:
        if is_gguf(source):
            path = Path(source).expanduser()
            if not path.is_file():
                raise DistillError(f"{what} GGUF file '{source}' not found; pass the path of a .gguf file")
            return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        return AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as err:
        if remote_code_error(err, source):
            raise remote_code_error(err, source) from None
        raise DistillError(f"cannot load the {what} tokenizer '{source}' ({str(err).splitlines()[0][:160]}); "
                           f"set {what}.tokenizer to a tokenizer dir or hub id") from None


def student_tokenizer(spec: Any) -> tuple[Any, int]:
    """The student's tokenizer with the chat template it is prompted with, and the id of its end-of-turn token."""
    tokenizer = read_tokenizer(spec.tokenizer or spec.name, spec.trust_remote_code, "student")
    name = spec.chat_template
    if name == "auto":
        # an sft output already carries its training template (chatml_r1, llama3_r1): keep it, as eval does
        name = "tokenizer" if tokenizer.chat_template else "chatml_r1"
    tokenizer.padding_side = "left"  # TRL left-pads prompts for generation
    return tokenizer, apply_template(tokenizer, get_template(name, spec.eos_token))


def teacher_tokenizer(spec: Any) -> Any:
    return read_tokenizer(spec.tokenizer or teacher_model(spec), spec.trust_remote_code, "teacher")


def vocabulary_mismatch(student: Any, teacher: Any) -> list[str]:
    """Tokens of the student's vocabulary that the teacher spells with another id or lacks. The teacher may have
    more tokens (Qwen3 adds <think> to the Qwen2.5 vocabulary): the student never samples those."""
    theirs = teacher.get_vocab()
    return [tok for tok, i in sorted(student.get_vocab().items(), key=lambda kv: kv[1]) if theirs.get(tok) != i]


def check_same_vocabulary(student: Any, teacher: Any, student_name: str, teacher_name: str) -> None:
    bad = vocabulary_mismatch(student, teacher)
    if bad:
        ours = student.get_vocab()
        shown = ", ".join(f"{t!r} (id {ours[t]})" for t in bad[:3])
        raise DistillError(f"the teacher '{teacher_name}' does not share the student's vocabulary: {len(bad):,} of "
                           f"the student's {len(ours):,} tokens differ, e.g. {shown}, in the tokenizer of "
                           f"'{student_name}'; pick a teacher of the student's model family (same tokenizer)")


def check_causal_lm(config: Any, name: str, what: str) -> None:
    """Refuse a model that is not a decoder-only language model (BERT, T5 encoders, classifiers)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    archs = getattr(config, "architectures", None) or []
    causal = (any(a.endswith(CAUSAL_SUFFIXES) for a in archs) if archs
              else config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)
    if not causal or getattr(config, "is_encoder_decoder", False):
        kind = ", ".join(archs) or config.model_type
        raise DistillError(f"the {what} '{name}' is not a causal language model ({kind}); on-policy distillation "
                           "needs a decoder-only model that generates (…ForCausalLM)")


def student_config(spec: Any) -> Any:

    config = load_model_config(spec)
    check_causal_lm(config, spec.name, "student")
    return config


def teacher_config(spec: Any) -> Any:

    name = teacher_model(spec)
    config = load_model_config(SimpleNamespace(name=name, init="pretrained", config={},
                                         trust_remote_code=spec.trust_remote_code))
    check_causal_lm(config, name, "teacher")
    return config


def check_vocab_size(teacher: Any, tokenizer: Any, student_name: str, teacher_name: str) -> int:
    """The in-process loss projects both heads over one vocabulary, so the student's head gets the teacher's row
    count (Qwen2.5 pads 1.5B to 151,936 and 7B to 152,064 rows over the same 151,665 tokens; rows past the
    tokenizer are padding that neither model samples). A teacher with fewer rows than the student has tokens is
    refused."""
    rows = teacher.get_text_config().vocab_size
    if rows < len(tokenizer):
        raise DistillError(f"the teacher '{teacher_name}' has {rows:,} output rows, fewer than the {len(tokenizer):,} "
                           f"tokens of the student '{student_name}'; pick a teacher of the student's model family")
    return rows


def load_student(spec: Any, args: dict[str, Any], tokenizer: Any, eos_id: int, vocab_size: int | None) -> Any:
    """The student (sft's loader: pretrained, .gguf or from a config), its embedding matched to the teacher's."""

    model = load_model(spec, args, tokenizer, eos_id)
    if vocab_size and model.get_input_embeddings().weight.shape[0] != vocab_size:
        model.resize_token_embeddings(vocab_size)  # rows past the tokenizer are padding neither model samples
    return model


def load_teacher(spec: Any, args: dict[str, Any]) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    name = teacher_model(spec)
    dtype = getattr(torch, spec.dtype) if spec.dtype != "auto" else (
        torch.bfloat16 if torch.cuda.is_available() and not args.get("use_cpu") else torch.float32)
    try:
        model = AutoModelForCausalLM.from_pretrained(local_model(name), dtype=dtype,
                                                     trust_remote_code=spec.trust_remote_code)
    except OSError as err:
        raise DistillError(f"cannot load the weights of the teacher '{name}' ({str(err).splitlines()[0][:160]}); "
                           "check teacher.name or your hub access") from None
    model.eval()
    model.requires_grad_(False)
    return model
