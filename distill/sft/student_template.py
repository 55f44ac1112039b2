"""Chat templates for the students, and turning one SFT example into training tokens with its loss mask.

    template = get_template("chatml_r1")                  # distill.core.chat_template: the packaged templates
    eos_id = apply_template(tokenizer, template)           # sets chat template, EOS and pad on the tokenizer
    ids, labels = tokenize_example(tokenizer, messages, eos_id)

An example is [user, assistant "<think>\\n...\\n</think>\\n\\n..."]. The tokens are exactly what the eval stage
feeds the student: the user turn rendered by the template with its generation prompt (which ends in
"<think>\\n"), then the rest of the assistant text, then EOS. Prompt tokens get label -100; the student learns the
reasoning, the answer and the EOS that makes it stop. Anything the template adds after EOS (a newline) is cut.
"""

from __future__ import annotations

from typing import Any

from distill.core.chat_template import ChatTemplate, common_prefix, get_template, token_id  # noqa: F401 - sft's names
from distill.core.errors import DistillError

IGNORE = -100


def apply_template(tokenizer: Any, template: ChatTemplate) -> int:
    """Install the template, make its end-of-turn token the tokenizer's EOS and give it a pad token; returns the
    EOS id. A base model's tokenizer usually names another EOS (<|endoftext|>), the classic reason a distilled
    student never stops."""
    if template.text:
        tokenizer.chat_template = template.text
    elif not tokenizer.chat_template:
        raise DistillError("model.chat_template is 'tokenizer' but the tokenizer has none; use a packaged template of its family (chatml_r1, llama3_r1, gemma_r1, mistral_r1)")
    eos = template.eos or tokenizer.eos_token
    eos_id = token_id(tokenizer, eos)
    if eos_id is None:
        raise DistillError(
            f"EOS token {eos!r} of chat template '{template.name}' is not in the tokenizer's vocabulary; set "
            "model.eos_token to the token that ends an assistant turn, or pick the template of this model family"
        )
    tokenizer.eos_token = eos
    if tokenizer.pad_token is None:
        pad = template.pad if template.pad and token_id(tokenizer, template.pad) is not None else eos
        tokenizer.pad_token = pad
    return eos_id


def tokenize_example(tokenizer: Any, messages: list[dict[str, str]], eos_id: int) -> tuple[list[int], list[int]]:
    """(input_ids, labels) for a conversation whose last turn is the assistant's; only that turn is trained."""
    if not messages or messages[-1]["role"] != "assistant":
        raise DistillError("an SFT example must end with an assistant message (curate output does); fix the dataset")
    full = render(tokenizer, messages, generation_prompt=False)
    context = render(tokenizer, messages[:-1], generation_prompt=False)
    if not full.startswith(context) or messages[-1]["content"] not in full:
        raise DistillError(
            "the chat template does not render the assistant turn verbatim after the prompt (does it strip "
            "<think>...</think>?); use model.chat_template: chatml_r1, llama3_r1, gemma_r1 or mistral_r1"
        )
    ids = encode(tokenizer, full)
    prompt_ids = encode(tokenizer, render(tokenizer, messages[:-1], generation_prompt=True))
    # The loss starts where the tokens of the whole example stop matching the prompt's own tokens, not at the
    # prompt's length in characters: BPE can merge across the prompt/answer boundary, so the tokens there differ
    # from the prompt's last tokens, and the first token that differs is the first one the student must predict.
    n_prompt = common_prefix(ids, prompt_ids)
    end = last_index(ids, eos_id)
    if end is None or end < n_prompt:
        raise DistillError(
            f"the chat template does not end the assistant turn with the EOS token (id {eos_id}); the student would "
            "never learn to stop: fix model.eos_token or the template"
        )
    ids = ids[: end + 1]
    return ids, [IGNORE] * n_prompt + ids[n_prompt:]


def render(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def encode(tokenizer: Any, text: str) -> list[int]:
    # the template already writes every special token (BOS included) as text
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def last_index(ids: list[int], value: int) -> int | None:
    for i in range(len(ids) - 1, -1, -1):
        if ids[i] == value:
            return i
    return None


def set_model_eos(model: Any, tokenizer: Any, eos_id: int) -> None:
    """Make the model stop at the template's EOS: config and generation config, keeping the base model's own EOS
    as a second stop token; sampling defaults are R1's (temperature 0.6, top-p 0.95)."""
    gen = model.generation_config
    old = gen.eos_token_id if isinstance(gen.eos_token_id, list) else [gen.eos_token_id]
    gen.eos_token_id = [eos_id] + [t for t in old if t is not None and t != eos_id]
    gen.pad_token_id = tokenizer.pad_token_id
    gen.bos_token_id = tokenizer.bos_token_id
    gen.do_sample, gen.temperature, gen.top_p = True, 0.6, 0.95
    model.config.eos_token_id = eos_id
    model.config.pad_token_id = tokenizer.pad_token_id
