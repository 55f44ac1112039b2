"""The model side of `distill eval`: lm-eval model objects for the vllm, hf and openai backends, with the fixes
the R1 protocol needs, and a live progress line (samples, tokens/s, ETA) on each.

    lm = open_model(LMSpec(model="runs/sft/final", backend="hf", max_model_len=33792, ...))
    lm.progress = bar                      # a distill.core.log.Progress; advanced as samples finish

- hf: lm-eval's HFLM, but decoding keeps `<think>`/`</think>` even where a tokenizer marks them special
  (HFLM drops special tokens, which would turn every answer into "truncated").
- vllm: lm-eval's VLLM with `max_model_len` = longest prompt + max new tokens, so no prompt is cut and no
  sample is cut short of its budget; tensor parallel inside the engine, data parallel through Ray replicas.
- openai: lm-eval's local-completions against any OpenAI-compatible server, with every one of the k samples
  of a problem sent with its own seed (lm-eval sends seed 1234 with every request: a server that honours
  seeds, as vLLM does, then returns the same sample k times), and the chat template plus the `<think>\\n`
  prefill rendered here, which a chat-completions endpoint cannot be made to do.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.core.backend_common import api_key_header, clear_sampling_defaults, decode_keeping_think, eos_ids
from distill.core.chat_template import TEMPLATES, ChatTemplate, get_template, token_id
from distill.core.errors import DistillError
from distill.core.model_source import is_gguf, local_model, remote_code_error
from distill.core.protocol import draw_seed
from distill.core.readers import looks_local
from distill.core.vllm_args import engine_error, engine_kwargs, is_cpu_build, require_vllm
from distill.eval.journal import key_seed, sample_keys


@dataclass
class LMSpec:
    """What `open_model` needs, resolved by `distill eval` from its config."""

    model: str
    backend: str
    max_model_len: int  # longest prompt + max new tokens
    max_tokens: int
    seed: int = 1234
    dtype: str = "auto"
    batch_size: int | None = None
    tensor_parallel: int = 1
    data_parallel: int = 1
    gpu_memory_utilization: float | None = None  # vllm: None = 0.9 on a GPU, a fixed KV cache on the CPU build
    engine_args: dict[str, Any] = field(default_factory=dict)  # vllm: the user's vllm.* engine arguments
    trust_remote_code: bool = False
    base_url: str | None = None
    served_model: str | None = None
    api_key_env: str | None = None
    concurrency: int = 64
    request_timeout: float = 3600.0
    max_retries: int = 5
    chat_template: str | None = None  # --chat-template: replaces the model's own
    journal_chunk: int | None = None  # samples per journaled chunk; None: the backend's default (JOURNAL_CHUNK)


# Samples per journaled chunk: what a kill can lose, against the tail each chunk waits for (a chunk ends with its
# longest sample: vLLM and a server keep their batches full only inside a chunk)
JOURNAL_CHUNK = {"vllm": 512, "openai": 256}


def journal_chunk(spec: LMSpec) -> int:
    """hf: four batches (whole batches, sorted by length inside the chunk as lm-eval sorts them); else the table."""
    return 4 * (spec.batch_size or 8) if spec.backend == "hf" else JOURNAL_CHUNK[spec.backend]


# ---------------------------------------------------------------- checking the model before loading it


def check_model_path(model: str) -> Path:
    """`--model` as a path; a one-line error when it names a local model directory that is not there."""
    path = Path(model).expanduser()
    if is_gguf(model):
        if not path.is_file():
            raise DistillError(f"GGUF file '{model}' not found; pass the path of a .gguf model file")
        return path
    if (path.exists() or looks_local(model)) and not path.is_dir():
        raise DistillError(f"model '{model}' not found; pass a model directory (e.g. an sft output) or a hub id")
    return path


def eval_tokenizer(model: str, trust_remote_code: bool = False, chat_template: str | None = None):
    """The model's tokenizer (with --chat-template installed), or a one-line error naming what is wrong."""
    from transformers import AutoTokenizer

    check_model_path(model)
    path = Path(local_model(model)).expanduser()
    if path.is_dir() and not any((path / f).is_file() for f in ("tokenizer_config.json", "tokenizer.json")):
        raise DistillError(f"'{model}' holds no tokenizer (tokenizer_config.json); pass the final model directory "
                           "of an sft run (the one with config.json and the tokenizer files)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path) if path.is_dir() else model,
                                                  trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        known = remote_code_error(err, model)
        if known:
            raise known from None
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise DistillError(f"cannot load the tokenizer of '{model}' ({first}); pass a local model directory or a "
                           "hub id you can download") from None
    if chat_template:
        install_template(tokenizer, get_template(chat_template))
    if tokenizer.chat_template is None:
        raise DistillError(f"model '{model}' has no chat template (a base model?); the R1 protocol prompts through "
                           f"one: pass --chat-template with its family's ({', '.join(TEMPLATES)}) or a .jinja file")
    return tokenizer


def install_template(tokenizer: Any, template: ChatTemplate) -> int | None:
    """Put the template on the tokenizer and make its end-of-turn token the tokenizer's EOS (lm-eval stops at the
    tokenizer's EOS); returns that token's id. A base Gemma's tokenizer names <eos>, while its turns end at
    <end_of_turn>: without this a base model given a chat template would write past the end of its turn."""
    tokenizer.chat_template = template.text
    if not template.eos:
        return None
    eos_id = token_id(tokenizer, template.eos)
    if eos_id is None:
        raise DistillError(f"the end-of-turn token {template.eos!r} of chat template '{template.name}' is not in "
                           "the model's vocabulary; pass the template of the model's family")
    tokenizer.eos_token = template.eos
    return eos_id


def use_template(lm: Any, spec: LMSpec) -> None:
    """--chat-template on the loaded backend: its tokenizer renders with the template, and a sample ends at the
    template's end-of-turn token (hf: in the generation config; vllm and a vLLM server: as a stop token id, since
    stop strings do not match special tokens that detokenization skips)."""
    if not spec.chat_template:
        return
    eos_id = install_template(lm.tokenizer, get_template(spec.chat_template))
    if eos_id is None:
        return
    lm.stop_token_ids = [eos_id]
    generation_config = getattr(getattr(lm, "model", None), "generation_config", None)
    if spec.backend == "hf" and generation_config is not None:
        old = generation_config.eos_token_id
        old = old if isinstance(old, list) else [old] if old is not None else []
        generation_config.eos_token_id = [eos_id] + [t for t in old if t != eos_id]


def context_limit(model: str, trust_remote_code: bool = False) -> int | None:
    """The model's position limit from its config (None when it names none, or for a served model)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(local_model(model), trust_remote_code=trust_remote_code)
    except (OSError, ValueError):
        return None
    limits = [getattr(config, k, None) for k in ("max_position_embeddings", "n_positions", "max_sequence_length")]
    return next((int(v) for v in limits if isinstance(v, int) and v > 0), None)


# ---------------------------------------------------------------- backends


def open_model(spec: LMSpec):
    """An lm-eval LM for the spec's backend; loading errors become one-line DistillErrors."""
    openers = {"hf": _open_hf, "vllm": _open_vllm, "openai": _open_openai}
    if spec.backend not in openers:
        raise DistillError(f"unknown backend '{spec.backend}'; choose one of {', '.join(openers)}")
    try:
        lm = openers[spec.backend](spec)
        lm.journal_chunk = spec.journal_chunk or journal_chunk(spec)
        lm.run_seed = spec.seed
        return lm
    except (OSError, ValueError) as err:
        known = remote_code_error(err, spec.model)
        if known:
            raise known from None
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise DistillError(f"cannot load model '{spec.model}' with the {spec.backend} backend ({first}); check "
                           "--model (a model directory with config.json, or a hub id)") from None


def _open_hf(spec: LMSpec):
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    lm = _hf_class()(pretrained=spec.model, device=device, dtype=spec.dtype, batch_size=spec.batch_size or 8,
                     max_length=spec.max_model_len, trust_remote_code=spec.trust_remote_code)
    # A model's generation_config.json can carry defaults that would quietly change the protocol: a base
    # model's max_new_tokens (2048 for Qwen2.5-Math) takes precedence over lm-eval's max_length, and
    # transformers samples with top_k=50 unless told otherwise. The R1 protocol is temperature + top-p only.
    clear_sampling_defaults(lm.model.generation_config, max_new_tokens=True)
    return lm


def _open_vllm(spec: LMSpec):
    import importlib.util

    require_vllm()
    if spec.data_parallel > 1 and importlib.util.find_spec("ray") is None:
        raise DistillError("--data-parallel > 1 runs vLLM replicas through Ray: pip install ray")
    user = dict(spec.engine_args)
    if spec.gpu_memory_utilization is not None:
        user.setdefault("gpu_memory_utilization", spec.gpu_memory_utilization)
    # vLLM would otherwise take the model's generation_config.json (top_k, repetition_penalty, ...) as sampling
    # defaults, which the R1 protocol does not have; the hf backend clears them the same way.
    kwargs = engine_kwargs({"generation_config": "vllm"}, user, world_size=spec.tensor_parallel)
    if not is_cpu_build():
        kwargs.setdefault("gpu_memory_utilization", 0.9)
    try:
        return _vllm_class()(
            pretrained=spec.model, dtype=spec.dtype, tensor_parallel_size=spec.tensor_parallel,
            data_parallel_size=spec.data_parallel, max_model_len=spec.max_model_len, seed=spec.seed,
            batch_size="auto", trust_remote_code=spec.trust_remote_code, **kwargs,
        )
    except DistillError:
        raise
    except Exception as err:  # vLLM raises ValueError, pydantic errors and RuntimeErrors alike
        raise engine_error(err, spec.model) from None


def _open_openai(spec: LMSpec):
    if not spec.base_url:
        raise DistillError("--backend openai needs --base-url (e.g. http://localhost:8000/v1)")
    header = api_key_header(spec.api_key_env) or None
    base = spec.base_url.rstrip("/")
    served = served_models(base, header)
    model = spec.served_model or (served[0] if len(served) == 1 else spec.model)
    return _openai_class()(
        model=model, base_url=f"{base}/completions", tokenizer=spec.model,
        tokenizer_backend="huggingface", tokenized_requests=False, num_concurrent=spec.concurrency,
        max_retries=spec.max_retries, max_length=spec.max_model_len + 1, max_gen_toks=spec.max_tokens,
        seed=spec.seed, timeout=int(spec.request_timeout), header=header,
    )


def served_models(base_url: str, header: dict[str, str] | None) -> list[str]:
    """The models a server lists at /models; an unreachable server is an error before anything runs."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{base_url}/models", headers=header or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return [m["id"] for m in json.loads(response.read()).get("data", [])]
    except urllib.error.HTTPError as err:
        if err.code in (401, 403):
            raise DistillError(f"{base_url} refused the API key ({err.code}); check --api-key-env") from None
        return []  # some servers have no /models; the completions themselves will tell
    except (OSError, ValueError) as err:
        raise DistillError(f"cannot reach {base_url}/models ({err}); start the server (e.g. `vllm serve MODEL`) "
                           "or fix --base-url") from None


# ---------------------------------------------------------------- lm-eval subclasses (built lazily: heavy imports)


class _Progressing:
    """Mixin: advance `self.progress` (a distill.core.log.Progress, or None) as samples finish, and remember how
    many tokens each response took as generated (re-tokenizing the text can give another count); with
    `self.journal` set (distill.eval.journal), generate in chunks that are journaled as each finishes, and take
    the chunks a killed run finished from the journal."""

    progress = None
    journal = None  # a SampleJournal while a task runs
    journal_chunk = 64  # samples per journaled chunk (LMSpec.journal_chunk)
    run_seed = 1234  # the eval's --seed: each chunk's (or request's) sampling seed derives from it

    def journaled(self, requests: list[Any], generate) -> list[str]:
        """`generate(chunk) -> texts` over fixed chunks of `requests`; see distill.eval.journal for why the
        samples then equal an unbroken run's."""
        if self.journal is None:
            return generate(requests)
        keys = sample_keys(requests)
        texts: list[str] = []
        for start in range(0, len(requests), self.journal_chunk):
            chunk, chunk_keys = requests[start:start + self.journal_chunk], keys[start:start + self.journal_chunk]
            found = [self.journal.get(k) for k in chunk_keys]
            if all(found):
                for text, tokens in found:
                    if tokens is not None:
                        self.token_counts[text] = tokens
                self.journal.resumed += len(chunk)
                self.skipped(chunk)
                self._advance(len(chunk), sum(t or 0 for _, t in found))
                texts += [text for text, _ in found]
                continue
            self.seed_chunk(chunk, chunk_keys)
            out = generate(chunk)
            self.journal.add([(k, t, self.token_counts.get(t)) for k, t in zip(chunk_keys, out, strict=True)])
            texts += out
        return texts

    def seed_chunk(self, chunk: list[Any], keys: list[str]) -> None:
        """Seed the sampling of a chunk about to be generated (per backend)."""

    def skipped(self, chunk: list[Any]) -> None:
        """A chunk taken from the journal (the openai backend counts its draws)."""

    def _advance(self, samples: int, tokens: int) -> None:
        if self.progress is not None:
            self.progress.advance(samples, tokens=tokens)

    @property
    def token_counts(self) -> dict[str, int]:
        """Response text -> tokens generated for it (the backends' own count)."""
        if "_token_counts" not in self.__dict__:
            self.__dict__["_token_counts"] = {}
        return self.__dict__["_token_counts"]


def _hf_class():
    from lm_eval.models.huggingface import HFLM

    class ReasoningHFLM(_Progressing, HFLM):
        def generate_until(self, requests, disable_tqdm: bool = False):
            # disable_tqdm: distill's progress line instead
            return self.journaled(requests, lambda chunk: HFLM.generate_until(self, chunk, disable_tqdm=True))

        def seed_chunk(self, chunk, keys) -> None:
            import torch

            # transformers samples a batch from torch's global generator: seeded per chunk, a chunk generated
            # again after a kill (same requests, same batches) draws the same tokens
            torch.manual_seed(key_seed(self.run_seed, keys[0]))

        def tok_decode(self, tokens, skip_special_tokens: bool = True):
            if isinstance(tokens, int) or not skip_special_tokens:
                return super().tok_decode(tokens, skip_special_tokens=skip_special_tokens)
            # a generated continuation: padded after its end of sequence
            ids = list(tokens)
            stops = set(self.tokenizer.all_special_ids) & ({self.tokenizer.pad_token_id} | eos_ids(
                self.model.generation_config, self.tokenizer))
            end = next((i for i, t in enumerate(ids) if t in stops), len(ids))
            text = decode_keeping_think(self.tokenizer, ids)
            self.token_counts[text] = end + (end < len(ids))  # the end-of-sequence token counts too
            return text

        def _model_generate(self, context, max_length, stop, **generation_kwargs):
            out = super()._model_generate(context, max_length, stop, **generation_kwargs)
            new = out[:, context.shape[1]:]
            self._advance(int(new.shape[0]), int((new != self.tokenizer.pad_token_id).sum()))
            return out

    return ReasoningHFLM


def _vllm_class():
    from lm_eval.models.vllm_causallms import VLLM

    class ReasoningVLLM(_Progressing, VLLM):
        def __init__(self, **kwargs: Any):
            super().__init__(**kwargs)
            # distill's progress line replaces vLLM's bar; with bars hidden (TQDM_DISABLE) vLLM 0.32 would
            # divide by the disabled bar's zero elapsed time at the end of every generate call
            generate = self.model.generate
            self.model.generate = lambda *args, **kw: generate(*args, **{**kw, "use_tqdm": False})

        stop_token_ids: list[int] = []  # --chat-template's end of turn (use_template)

        def modify_gen_kwargs(self, gen_kwargs, eos=None, default_max_gen_toks: int = 256):
            kwargs, until, max_gen_toks = VLLM.modify_gen_kwargs(gen_kwargs, eos=eos,
                                                                 default_max_gen_toks=default_max_gen_toks)
            if self.stop_token_ids:
                kwargs = {**kwargs, "stop_token_ids": list(self.stop_token_ids)}
            return kwargs, until, max_gen_toks

        _seeds: dict[tuple[int, ...], list[int]] = {}  # context token ids -> seeds of its samples, in order

        def generate_until(self, requests, disable_tqdm: bool = False):
            return self.journaled(requests, lambda chunk: VLLM.generate_until(self, chunk, disable_tqdm=True))

        def seed_chunk(self, chunk, keys) -> None:
            # a seed per request (vLLM samples each with its own generator): a sample's text depends on its key
            # alone, not on the engine's state, so a resumed run draws what the unbroken run drew
            encoded = self.tok_encode([r.args[0] for r in chunk])
            self._seeds = {}
            for ids, key in zip(encoded, keys, strict=True):
                self._seeds.setdefault(tuple(ids), []).append(key_seed(self.run_seed, key))

        def _model_generate(self, requests, generate=False, sampling_params=None):
            if generate and self._seeds and sampling_params is not None:
                params = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(requests)
                seeded = []
                for ids, sp in zip(requests, params, strict=True):
                    seeds = self._seeds.get(tuple(ids))
                    one = sp.clone()
                    if seeds:
                        one.seed = seeds.pop(0)
                    seeded.append(one)
                sampling_params = seeded
            outputs = super()._model_generate(requests, generate=generate, sampling_params=sampling_params)
            if generate:
                for o in outputs:
                    self.token_counts[o.outputs[0].text] = len(o.outputs[0].token_ids)
                self._advance(len(outputs), sum(len(o.outputs[0].token_ids) for o in outputs))
            return outputs

    return ReasoningVLLM


def _openai_class():
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    class SeededCompletionsAPI(_Progressing, LocalCompletionsAPI):
        """local-completions with a seed per sample and the chat template rendered client-side."""

        def __init__(self, **kwargs: Any):
            super().__init__(**kwargs)
            self._draws: Counter[str] = Counter()

        def apply_chat_template(self, chat_history, add_generation_prompt: bool = True) -> str:
            text = self.tokenizer.apply_chat_template(chat_history, tokenize=False,
                                                      add_generation_prompt=add_generation_prompt)
            return strip_auto_bos(text, self.tokenizer)

        stop_token_ids: list[int] = []  # --chat-template's end of turn (use_template), sent as vLLM's extra field

        def _create_payload(self, messages, generate=False, gen_kwargs=None, seed=1234, eos=None, **kwargs):
            if generate:
                seed = self.next_seed(messages)
            payload = super()._create_payload(messages, generate=generate, gen_kwargs=gen_kwargs, seed=seed,
                                              eos=eos, **kwargs)
            if generate and self.stop_token_ids:
                payload["stop_token_ids"] = list(self.stop_token_ids)
            return payload

        def generate_until(self, requests, disable_tqdm: bool = False):
            return self.journaled(requests, lambda chunk: LocalCompletionsAPI.generate_until(self, chunk,
                                                                                           disable_tqdm=True))

        def skipped(self, chunk) -> None:
            for request in chunk:  # the draws the journal holds still count, so later samples keep their seeds
                prompt = request.args[0]
                self._draws[prompt if isinstance(prompt, str) else json.dumps(prompt)] += 1

        def next_seed(self, prompt: Any) -> int:
            """The seed of the next sample of this prompt: the run seed, the prompt and how many samples of it
            were drawn before, so a re-run draws the same seeds in the same order (a retry gets a new one)."""
            key = prompt if isinstance(prompt, str) else json.dumps(prompt)
            draw = self._draws[key]
            self._draws[key] += 1
            return draw_seed(self._seed, key, draw)

        def parse_generations(self, outputs, **kwargs) -> list[str]:
            texts = LocalCompletionsAPI.parse_generations(outputs, **kwargs)
            for out in outputs if isinstance(outputs, list) else [outputs]:
                usage = (out.get("usage") or {}).get("completion_tokens")
                if usage is not None and len(out.get("choices", [])) == 1:
                    self.token_counts[out["choices"][0]["text"]] = int(usage)
            return texts

        async def amodel_call(self, *args, **kwargs):
            answers = await super().amodel_call(*args, **kwargs)
            if kwargs.get("generate", True) and answers:
                tokens = [self.token_counts.get(a) or len(self.tokenizer(a).input_ids) for a in answers]
                self._advance(len(answers), sum(tokens))
            return answers

    return SeededCompletionsAPI


def strip_auto_bos(text: str, tokenizer) -> str:
    """Drop a BOS the template wrote when the server's tokenizer will add its own (it would appear twice)."""
    bos = tokenizer.bos_token
    if not bos or not text.startswith(bos):
        return text
    ids = tokenizer("x").input_ids
    return text[len(bos):] if ids and ids[0] == tokenizer.bos_token_id else text
