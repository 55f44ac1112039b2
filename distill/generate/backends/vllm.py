"""The `vllm` backend: vLLM's offline engine in this process, the default on a GPU node.

    distill generate --teacher qwq-32b --prompts prompts.jsonl --out runs/gen --tensor-parallel 2 --data-parallel 4

- `--tensor-parallel`/`--pipeline-parallel` shard one replica; pipeline parallelism across nodes goes through
  vLLM's Ray executor (start a Ray cluster first, as vLLM's multi-node docs describe).
- `--data-parallel N` runs N engine replicas on disjoint GPU sets of this node, each in its own process.
  Across nodes, run `vllm serve` on each node and point `--backend openai` at all of them (client-side load
  balancing), which also survives the loss of a node.
- Requests stream through the engine: up to `--batch-size` (default 2048) are in it at once, vLLM batches them
  continuously, and each is journaled the step it finishes, when the next request takes its place. A crash loses
  only the requests in flight, and after SIGTERM nothing new is sent while those in flight finish. With
  `--data-parallel`, each replica takes chunks of `--batch-size` and returns a chunk when it is done.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from itertools import count, islice

from distill.core.chat_template import renderer_for
from distill.core.errors import DistillError
from distill.core.model_source import local_model
from distill.core.protocol import prefilled_think
from distill.core.vllm_args import engine_error, engine_kwargs, require_vllm
from distill.generate.backends import BackendOptions, Completion, Request, normalize_finish_reason

DEFAULT_CHUNK = 2048


class VLLMBackend:
    name = "vllm"

    def __init__(self, options: BackendOptions):
        require_vllm()
        self.options = options
        self.model = options.model
        self.chunk = options.batch_size or DEFAULT_CHUNK
        self._engine = None
        self._workers = None

    def _make_engine(self):
        from vllm import LLM

        base = dict(
            model=local_model(self.options.model),  # vLLM's CPU build cannot open a .gguf file itself
            tensor_parallel_size=self.options.tensor_parallel,
            pipeline_parallel_size=self.options.pipeline_parallel,
            seed=self.options.seed,
            dtype=self.options.dtype,
            trust_remote_code=self.options.trust_remote_code,
            generation_config="vllm",  # not the model's sampling defaults (top_k, repetition_penalty): the teacher's
        )
        if self.options.max_model_len:
            base["max_model_len"] = self.options.max_model_len
        if self.options.pipeline_parallel > 1:
            base["distributed_executor_backend"] = "ray"
        kwargs = engine_kwargs(base, self.options.engine_args,
                               world_size=self.options.tensor_parallel * self.options.pipeline_parallel)
        try:
            return LLM(**kwargs)
        except Exception as err:  # vLLM raises ValueError, pydantic errors and RuntimeErrors alike
            raise engine_error(err, self.options.model) from None

    def generate(self, requests: Iterable[Request]) -> Iterator[Completion]:
        if self.options.data_parallel > 1:
            yield from self._generate_replicas(requests)
            return
        if self._engine is None:
            self._engine = self._make_engine()
        self.prompt_format = renderer_for(self._engine.get_tokenizer(), self.options.default_system).record()
        yield from stream(self._engine, requests, self.chunk, self.model, self.options.default_system)

    def _generate_replicas(self, requests: Iterable[Request]) -> Iterator[Completion]:
        """Data parallelism on one node: one engine process per GPU slice, fed chunk by chunk."""
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # CUDA cannot be initialised in a forked child
        replicas = self.options.data_parallel
        gpus_each = self.options.tensor_parallel * self.options.pipeline_parallel
        inbox, outbox = ctx.Queue(maxsize=2 * replicas), ctx.Queue()
        procs = []
        for rank in range(replicas):
            devices = ",".join(str(rank * gpus_each + i) for i in range(gpus_each))
            p = ctx.Process(target=_replica_main, args=(self.options, devices, inbox, outbox), daemon=True)
            p.start()
            procs.append(p)
        try:
            it = iter(requests)
            in_flight = 0
            feeding = True
            while feeding or in_flight:
                while feeding and in_flight < 2 * replicas:
                    chunk = list(islice(it, self.chunk))
                    if not chunk:
                        feeding = False
                        break
                    inbox.put(chunk)
                    in_flight += 1
                result = outbox.get()
                if isinstance(result, str):  # a replica failed: its message
                    raise DistillError(f"a vLLM replica failed: {result}")
                in_flight -= 1
                yield from result
        finally:
            for _ in procs:
                inbox.put(None)
            for p in procs:
                p.join(timeout=60)

    def close(self) -> None:
        self._engine = None


_request_ids = count()  # vLLM's ids must be unique within an engine, across calls


def stream(llm, requests: Iterable[Request], window: int, model: str, default_system: str = "keep",
           ) -> Iterator[Completion]:
    """Each request's completion as it finishes, with at most `window` requests in the engine: the loop of
    vLLM's LLM.generate (add requests, step the engine, collect the finished), fed as it drains instead of all at
    once. Requests are drawn from `requests` only when there is room, so a caller that stops yielding them (a
    stop request) sends nothing more; those still in the engine when the caller closes this are aborted."""
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    engine, tokenizer = llm.llm_engine, llm.get_tokenizer()
    render = renderer_for(tokenizer, default_system)
    pending: dict[str, tuple[Request, str]] = {}
    todo = iter(requests)
    try:
        while True:
            for request in islice(todo, window - len(pending)):
                text = render(request.messages)
                params = SamplingParams(temperature=request.temperature, top_p=request.top_p,
                                        max_tokens=request.max_tokens, seed=request.seed,
                                        output_kind=RequestOutputKind.FINAL_ONLY)
                # The chat template already wrote the BOS token: encode without adding another (a doubled BOS
                # measurably changes R1's outputs).
                key = str(next(_request_ids))
                engine.add_request(key, {"prompt_token_ids": tokenizer.encode(text, add_special_tokens=False)},
                                   params)
                pending[key] = (request, text)
            if not pending:
                return
            for out in engine.step():
                if out.finished:
                    request, text = pending.pop(out.request_id)
                    yield completion(request, text, out, model)
    finally:
        if pending:
            engine.abort_request(list(pending))


def completion(request: Request, text: str, out, model: str) -> Completion:
    sample = out.outputs[0]
    return Completion(
        id=request.id,
        text=prefilled_think(text) + sample.text,
        finish_reason=normalize_finish_reason(sample.finish_reason),
        prompt_tokens=len(out.prompt_token_ids or []),
        completion_tokens=len(sample.token_ids),
        model=model,
    )


def _replica_main(options: BackendOptions, devices: str, inbox, outbox) -> None:
    import signal

    # Slurm and Kubernetes signal the whole process group: the parent decides when to stop (it stops sending
    # chunks), and a replica that died of the signal would take its finished chunk with it.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.environ["CUDA_VISIBLE_DEVICES"] = devices
    try:
        single = BackendOptions(**{**options.__dict__, "data_parallel": 1})
        engine = VLLMBackend(single)._make_engine()
        while (chunk := inbox.get()) is not None:
            outbox.put(list(stream(engine, chunk, len(chunk), options.model, options.default_system)))
    except Exception as err:  # noqa: BLE001 - reported to the parent as one line
        outbox.put(f"{type(err).__name__}: {err}")


def create(options: BackendOptions) -> VLLMBackend:
    return VLLMBackend(options)
