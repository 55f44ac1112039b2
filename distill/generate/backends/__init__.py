"""Teacher backends: one small interface over vLLM, any OpenAI-compatible server, and transformers.

    backend = open_backend("openai", model="deepseek-ai/DeepSeek-R1", base_url=["http://node1:8000/v1"])
    for done in backend.generate(requests):      # yields Completions as they finish, in any order
        ...
    backend.close()

A backend receives `Request`s (one per prompt x sample, each with its own seed) and yields `Completion`s
whose `text` always holds the whole teacher output with the reasoning inside `<think>...</think>`, however
the server returned it.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from distill.core.backend_common import backend_name, has_cuda, vllm_installed
from distill.core.errors import DistillError
from distill.core.protocol import THINK_CLOSE, THINK_OPEN


@dataclass
class Request:
    id: str
    messages: list[dict[str, str]]
    max_tokens: int
    temperature: float
    top_p: float
    seed: int


@dataclass
class Completion:
    id: str
    text: str
    finish_reason: str  # stop | length | error
    prompt_tokens: int
    completion_tokens: int
    model: str
    error: str | None = None
    retryable: bool = False  # a transient failure: not written, so that a re-run retries it


class Backend(Protocol):
    name: str
    model: str

    def generate(self, requests: Iterable[Request]) -> Iterator[Completion]: ...

    def close(self) -> None: ...


@dataclass
class BackendOptions:
    """What a backend may need from the generate config; each backend reads the fields it uses."""

    model: str
    base_url: list[str] = field(default_factory=list)
    api_key_env: str | None = None
    concurrency: int = 64
    request_timeout: float = 3600.0
    max_retries: int = 8
    retry_backoff_s: float = 1.0
    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    data_parallel: int = 1
    max_model_len: int | None = None
    batch_size: int | None = None
    dtype: str = "auto"
    seed: int = 0
    trust_remote_code: bool = False
    engine_args: dict[str, Any] = field(default_factory=dict)  # vLLM engine arguments the user passed (vllm.*)
    default_system: str = "keep"  # a chat template's own system turn: keep or drop (backends that render prompts)
    extra: dict[str, Any] = field(default_factory=dict)  # openai: extra fields of every request body


# name -> module holding `create(options) -> Backend`; modules are imported only when used
BACKENDS: dict[str, str] = {
    "vllm": "distill.generate.backends.vllm",
    "openai": "distill.generate.backends.openai",
    "transformers": "distill.generate.backends.hf",
    "arithmetic": "distill.generate.backends.arithmetic",  # the demo's program teacher (CPU, no model)
}


def open_backend(name: str, options: BackendOptions) -> Backend:
    if name not in BACKENDS:
        raise DistillError(f"unknown backend '{name}'; choose one of {', '.join(BACKENDS)}")
    return importlib.import_module(BACKENDS[name]).create(options)


def choose_backend(requested: str | None, has_base_url: bool) -> str:
    """The backend to use when none is named: a server if one was given, else vLLM on a GPU machine."""
    if requested:
        return backend_name(requested, "transformers")
    if has_base_url:
        return "openai"
    if vllm_installed() and has_cuda():
        return "vllm"
    missing = "no CUDA GPU" if not has_cuda() else "vLLM is not installed (pip install 'distill[vllm]')"
    raise DistillError(
        f"no usable backend: vLLM needs a GPU and the vllm package ({missing}); pass --base-url URL to use a "
        "served teacher (--backend openai), or --backend transformers to run a small model locally"
    )


def join_completion(content: str | None, reasoning: str | None = None, finish_reason: str = "stop") -> str:
    """One completion string in the `<think>\\n...\\n</think>\\n\\n answer` form.

    Servers with a reasoning parser (vLLM, SGLang, DeepSeek's API) return the reasoning separately; servers
    whose template prefilled `<think>` return text that closes a think block it never opened. A reasoning
    that was cut off by the token limit is not closed here: inventing `</think>` would hide the truncation.
    """
    content = content or ""
    if reasoning:
        if finish_reason == "length" and not content.strip():
            return f"{THINK_OPEN}\n{reasoning.strip()}"
        return f"{THINK_OPEN}\n{reasoning.strip()}\n{THINK_CLOSE}\n\n{content.lstrip()}"
    if THINK_CLOSE in content and THINK_OPEN not in content.split(THINK_CLOSE, 1)[0]:
        return f"{THINK_OPEN}\n{content.lstrip()}"
    return content


def normalize_finish_reason(reason: str | None) -> str:
    """Map the finish reasons of the servers we know onto the trace schema's stop | length | error."""
    if reason in ("stop", "eos", "end_turn", "stop_sequence", "eos_token"):
        return "stop"
    if reason in ("length", "max_tokens", "max_length"):
        return "length"
    return "error"
