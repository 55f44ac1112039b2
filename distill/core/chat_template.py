"""The packaged R1 chat templates (one per model family), and what a model's chat template does to a prompt: the
system turn it adds when none is given, the prompt without it, and whether the template or tokenizer knows
`<think>` (which `distill eval --reasoning auto` reads).

    get_template("gemma_r1")                 # ChatTemplate(name, text, eos="<end_of_turn>", pad="<pad>")

    default = default_system(tokenizer)      # DefaultSystem(text="You are Qwen, created by ...", block="<|im_start|>...")
    render = PromptRenderer(tokenizer, default_system="drop")
    render([{"role": "user", "content": "What is 2 + 3?"}])   # the template's text, its default system turn cut out
    render.record()                           # {"template_system_prompt": ..., "default_system": "drop", ...}

Reads only the tokenizer (its template, its vocabulary); writes nothing. Qwen2.5(-Math, -Instruct) and SmolLM2
templates add a system turn of their own when the messages have none, so a prompt sent "without a system prompt"
(the R1 protocol) is not what the model sees unless that turn is cut out; Qwen2.5-Math's even repeats R1's
boxed-answer instruction there. The default is found by rendering the template with and without a system message,
never by knowing the template.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from distill.core.errors import DistillError
from distill.core.log import get_logger
from distill.core.protocol import THINK_CLOSE, THINK_OPEN, prefilled_think

# Probe contents: no template default starts or ends like these, so the texts rendered with and without a
# system message differ exactly where the system content goes.
PROBE_USER = "\u2063distill probe: what is 1 + 1?\u2063"
PROBE_SYSTEM = "\u2063distill probe system\u2063"
DEFAULT_SYSTEM_POLICIES = ("keep", "drop")

DefaultSystemPolicy = Literal["keep", "drop"]


@dataclass(frozen=True)
class DefaultSystem:
    """A system turn the template renders when the messages have none."""

    text: str  # its content, e.g. "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    block: str | None  # the whole turn as rendered (header, content, end of turn); None: its edges were not found


def render(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def default_system(tokenizer: Any) -> DefaultSystem | None:
    """The system turn the chat template adds on its own, or None when it adds none (or cannot take one)."""
    user = [{"role": "user", "content": PROBE_USER}]
    bare = render(tokenizer, user)
    try:
        given = render(tokenizer, [{"role": "system", "content": PROBE_SYSTEM}, *user])
    except Exception:  # noqa: BLE001 - a template that refuses system turns (Gemma's raises) adds none either
        return None
    if PROBE_SYSTEM not in given:
        return None  # the template drops system messages: nothing of ours or its own goes there
    head = common_prefix(bare, given)
    tail = _common_suffix(bare, given, max(0, min(len(bare), len(given)) - head))
    content = bare[head:len(bare) - tail]
    if not content.strip():
        return None  # what the template writes without a system message, it writes with one too
    start, end = _turn_edges(tokenizer, bare, head, len(bare) - tail)
    return DefaultSystem(content, bare[start:end] if start is not None else None)


def _turn_edges(tokenizer: Any, bare: str, head: int, stop: int) -> tuple[int | None, int | None]:
    """Where the injected system turn starts and ends in `bare`. The user turn's header follows it, and a
    template's system header is its user header with the role renamed (`<|im_start|>user\\n` ->
    `<|im_start|>system\\n`), so the longest such header that ends where the default content begins marks the
    start; edges inside a special token (`<|begin_of_text|>`) are not edges."""
    user_at = bare.find(PROBE_USER)
    between = bare[stop:user_at]  # the system turn's end, then the user turn's header
    specials = _special_strings(tokenizer)
    for k in range(len(between), 0, -1):
        suffix = between[-k:]
        for user_role, system_role in (("user", "system"), ("User", "System")):
            if user_role not in suffix:
                continue
            header = suffix.replace(user_role, system_role, 1)
            start, end = head - len(header), user_at - k
            if start >= 0 and bare[:head].endswith(header) and not _splits_token(bare, start, specials) \
                    and not _splits_token(bare, end, specials):
                return start, end
    return None, None


def _special_strings(tokenizer: Any) -> list[str]:
    added = list(getattr(tokenizer, "get_added_vocab", dict)() or {})
    return sorted({*tokenizer.all_special_tokens, *added}, key=len, reverse=True)


def _splits_token(text: str, at: int, tokens: list[str]) -> bool:
    return any(text.startswith(t, i) for t in tokens for i in range(max(0, at - len(t) + 1), at))


def _common_suffix(a: str, b: str, limit: int) -> int:
    n = 0
    while n < limit and a[len(a) - 1 - n] == b[len(b) - 1 - n]:
        n += 1
    return n


# ---------------------------------------------------------------- packaged templates


@dataclass(frozen=True)
class ChatTemplate:
    name: str
    text: str
    eos: str | None  # the token that ends an assistant turn; None: the tokenizer's own EOS
    pad: str | None = None  # preferred pad token when the tokenizer has none


# name -> (file under distill/templates/, end-of-turn token, preferred pad token). One per model family's turn
# format, each without a default system prompt and with a generation prompt that opens <think>: a base model of
# the family (no template of its own) gets the R1 format from it, for sft and for eval's "before" row.
TEMPLATES = {
    "chatml_r1": ("chatml_r1.jinja", "<|im_end|>", "<|endoftext|>"),    # Qwen2.5, SmolLM2, the demo student
    "llama3_r1": ("llama3_r1.jinja", "<|eot_id|>", "<|finetune_right_pad_id|>"),   # Llama 3.x
    "gemma_r1": ("gemma_r1.jinja", "<end_of_turn>", "<pad>"),           # Gemma 2 and 3
    "mistral_r1": ("mistral_r1.jinja", "</s>", "<unk>"),                # Mistral 7B, Nemo, Small
}


def token_id(tokenizer: Any, token: str | None) -> int | None:
    """The id of a single token, or None when the vocabulary lacks it."""
    if not token:
        return None
    tid = tokenizer.convert_tokens_to_ids(token)
    if tid is None or (tokenizer.unk_token_id is not None and tid == tokenizer.unk_token_id):
        return None
    return tid


def get_template(spec: str, eos: str | None = None) -> ChatTemplate:
    """A packaged template by name, a .jinja file, or "tokenizer" (keep the tokenizer's own template)."""
    if spec in TEMPLATES:
        file, default_eos, pad = TEMPLATES[spec]
        text = resources.files("distill").joinpath("templates", file).read_text()
        return ChatTemplate(spec, text, eos or default_eos, pad)
    if spec == "tokenizer":
        return ChatTemplate(spec, "", eos)
    path = Path(spec)
    if path.suffix == ".jinja" and path.is_file():
        return ChatTemplate(path.stem, path.read_text(), eos)
    raise DistillError(
        f"chat template '{spec}' is neither a packaged template ({', '.join(TEMPLATES)}), an existing .jinja "
        "file, nor 'tokenizer'; pick one of those"
    )


# ---------------------------------------------------------------- rendering prompts


class PromptRenderer:
    """The chat template applied to messages, with the template's own system turn kept or dropped. It says once
    per template in the log what the template adds, and records what it rendered (`record()`)."""

    _said: set[str] = set()  # (policy, template) pairs already reported in this process

    def __init__(self, tokenizer: Any, default_system: DefaultSystemPolicy = "keep", say: bool = True):
        if default_system not in DEFAULT_SYSTEM_POLICIES:
            raise DistillError(f"default_system must be keep or drop, not {default_system!r}")
        self.tokenizer = tokenizer
        self.policy = default_system
        self.default = default_system_of(tokenizer)
        if self.default and self.policy == "drop" and self.default.block is None:
            raise DistillError(f"cannot cut the default system turn {self.default.text[:80]!r} out of this chat "
                               "template's prompts (its edges were not found); use default_system keep, or give "
                               "the model a template without a default system prompt")
        self.first_prompt: str | None = None
        if say:
            self._say_once()

    def __call__(self, messages: list[dict[str, str]]) -> str:
        text = render(self.tokenizer, messages)
        if self.dropping(messages):
            text = text.replace(self.default.block, "", 1)
        if self.first_prompt is None:
            self.first_prompt = text
        return text

    def dropping(self, messages: list[dict[str, str]]) -> bool:
        """True when the template's default turn is cut from these messages' prompt (they bring no system turn)."""
        return bool(self.default and self.policy == "drop" and not any(m["role"] == "system" for m in messages))

    def record(self) -> dict[str, Any]:
        """For manifests and results.json: what the template adds, what was done with it, the first prompt."""
        return {
            "template_system_prompt": self.default.text if self.default else None,
            "default_system": self.policy,
            "system_prompt_injected": bool(self.default) and self.policy == "keep",
            "first_prompt": self.first_prompt,
        }

    def _say_once(self) -> None:
        if not self.default:
            return
        key = f"{self.policy}\0{self.tokenizer.chat_template or ''}"
        if key in PromptRenderer._said:
            return
        PromptRenderer._said.add(key)
        get_logger().warning(notice(self.default, self.policy))


def notice(default: DefaultSystem, policy: str) -> str:
    """The one log line about a template's own system turn."""
    what = f"the chat template adds a system prompt when the messages have none: {default.text!r}"
    if policy == "drop":
        return f"{what}; it is cut out (default_system drop), as the R1 protocol sends no system prompt"
    return f"{what}; it is kept as the model's own format (default_system keep; 'drop' removes it)"


def default_system_of(tokenizer: Any) -> DefaultSystem | None:
    """default_system(), computed once per tokenizer object."""
    cache = getattr(tokenizer, "_distill_default_system", ())
    if cache and cache[0] == tokenizer.chat_template:
        return cache[1]
    found = default_system(tokenizer)
    try:
        tokenizer._distill_default_system = (tokenizer.chat_template, found)
    except AttributeError:  # a tokenizer that takes no new attributes: compute again next time
        pass
    return found


# ---------------------------------------------------------------- <think>


def opens_think(tokenizer: Any) -> bool:
    """Does the template's generation prompt itself open the think block (R1-0528, QwQ and chatml_r1 do)?"""
    prompt = render(tokenizer, [{"role": "user", "content": PROBE_USER}])
    return bool(prefilled_think(prompt))


def knows_think(tokenizer: Any) -> str | None:
    """Why this template or tokenizer looks made for `<think>` reasoning, or None when nothing in it knows the tag."""
    if opens_think(tokenizer):
        return "its chat template opens <think> in the generation prompt"
    if THINK_OPEN in (tokenizer.chat_template or "") or THINK_CLOSE in (tokenizer.chat_template or ""):
        return "its chat template handles <think> blocks"
    vocab = getattr(tokenizer, "get_added_vocab", dict)() or {}
    if THINK_OPEN in vocab or THINK_CLOSE in vocab:
        return "its tokenizer has <think> as a token of its own"
    return None


def renderer_for(tokenizer: Any, default_system: DefaultSystemPolicy = "keep") -> PromptRenderer:
    """One PromptRenderer per tokenizer object and policy, so a backend that renders chunk by chunk detects the
    template's default once and records the first prompt of the run."""
    cache = getattr(tokenizer, "_distill_renderers", None)
    if cache is None:
        cache = {}
        try:
            tokenizer._distill_renderers = cache
        except AttributeError:
            return PromptRenderer(tokenizer, default_system)
    if default_system not in cache:
        cache[default_system] = PromptRenderer(tokenizer, default_system)
    return cache[default_system]


def common_prefix(a: Sequence, b: Sequence) -> int:
    """Length of the common prefix (of token ids, or of strings). For reasoning rows this is the whole prompt,
    "<think>\\n" included; for a non-reasoning row (no <think>) it stops after the assistant header."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
