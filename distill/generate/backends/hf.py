"""The `transformers` backend: a local model through `model.generate`, on CPU or one GPU.

For small teachers, the demo and the tests; a 671B teacher belongs on vLLM or a server. Requests are batched
by shared sampling parameters and similar prompt length (left padding) for greedy decoding; a sampled request
runs alone under its own seed, so a resumed run draws the same samples.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import groupby

from distill.core.backend_common import clear_sampling_defaults, decode_keeping_think, eos_ids
from distill.core.chat_template import PromptRenderer
from distill.core.errors import DistillError
from distill.core.model_source import local_model, remote_code_error
from distill.core.protocol import prefilled_think
from distill.generate.backends import BackendOptions, Completion, Request


class TransformersBackend:
    name = "transformers"

    def __init__(self, options: BackendOptions):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_id = options.model
        self.model = options.model
        self.batch_size = options.batch_size or 8
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        trust = options.trust_remote_code
        source = local_model(options.model)  # a .gguf file: its converted directory
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust)
            dtype = getattr(torch, options.dtype) if options.dtype != "auto" else "auto"
            self.lm = AutoModelForCausalLM.from_pretrained(source, dtype=dtype,
                                                           trust_remote_code=trust).to(self.device).eval()
        except ValueError as err:
            raise remote_code_error(err, options.model) or DistillError(
                f"cannot load model '{options.model}' with transformers ({str(err).strip().splitlines()[0][:200]})"
            ) from None
        except OSError as err:
            first = str(err).strip().splitlines()[0][:200]
            raise DistillError(
                f"cannot load model '{options.model}' with transformers ({first}); pass --model with a local "
                "model directory or a hub id you can download"
            ) from None
        if self.tokenizer.chat_template is None:
            raise DistillError(f"model '{options.model}' has no chat template; add one to its tokenizer_config.json")
        clear_sampling_defaults(self.lm.generation_config)  # the vllm backend and eval drop them the same way
        self.tokenizer.padding_side = "left"  # generation continues from the right edge of every row
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.eos_ids = eos_ids(self.lm.generation_config, self.tokenizer)
        self.render = PromptRenderer(self.tokenizer, options.default_system)  # says so if the template adds a system turn

    def generate(self, requests: Iterable[Request]) -> Iterator[Completion]:
        def params(r: Request) -> tuple:
            return (r.max_tokens, r.temperature, r.top_p)

        batch: list[tuple[Request, str]] = []
        for key, group in groupby(requests, key=params):
            for request in group:
                text = self.render(request.messages)
                batch.append((request, text))
                if len(batch) == self.batch_size:
                    yield from self._run(batch, *key)
                    batch = []
            if batch:
                yield from self._run(batch, *key)
                batch = []

    def _run(self, batch: list[tuple[Request, str]], max_tokens: int, temperature: float, top_p: float):
        if temperature <= 0:  # greedy decoding draws nothing: the batch stays whole
            yield from self._generate(batch, max_tokens, dict(do_sample=False))
            return
        # Sampling: one request at a time, under its own seed. `generate` draws one RNG stream per call, so in a
        # batch a sample's text would depend on its batch-mates, and a resumed run (which batches what is left
        # differently) would redraw it; the vllm and openai backends seed each request the same way.
        for item in batch:
            yield from self._generate([item], max_tokens, dict(do_sample=True, temperature=temperature, top_p=top_p))

    def _generate(self, batch: list[tuple[Request, str]], max_tokens: int, sampling: dict):
        import torch

        texts = [text for _, text in batch]
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        torch.manual_seed(batch[0][0].seed)  # the request's own seed when sampling (one request per call)
        with torch.inference_mode():
            out = self.lm.generate(
                **enc,
                max_new_tokens=max_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=sorted(self.eos_ids),
                **sampling,
            )
        width = enc["input_ids"].shape[1]
        for i, (request, text) in enumerate(batch):
            generated = out[i, width:].tolist()
            stop_at = next((j for j, t in enumerate(generated) if t in self.eos_ids), None)
            n = stop_at + 1 if stop_at is not None else min(len(generated), max_tokens)
            body = decode_keeping_think(self.tokenizer, generated[:n])  # as eval decodes: <think> survives
            yield Completion(
                id=request.id,
                text=prefilled_think(text) + body,
                finish_reason="stop" if stop_at is not None else "length",
                prompt_tokens=int(enc["attention_mask"][i].sum()),
                completion_tokens=n,
                model=self.model_id,
            )

    @property
    def prompt_format(self) -> dict:
        return self.render.record()

    def close(self) -> None:
        self.lm = None


def create(options: BackendOptions) -> TransformersBackend:
    return TransformersBackend(options)
