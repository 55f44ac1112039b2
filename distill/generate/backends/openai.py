"""The `openai` backend: any OpenAI-compatible chat server (vLLM or SGLang serve, `transformers serve`,
DeepSeek's hosted API), many requests in flight, across one or several servers.

    options = BackendOptions(model="deepseek-ai/DeepSeek-R1", base_url=["http://n1:8000/v1", "http://n2:8000/v1"],
                             api_key_env="DEEPSEEK_API_KEY", concurrency=256)

- Load balancing: each request goes to the server with the fewest requests in flight; a server that refuses
  connections is rested for a while and the others carry on.
- Retries: 408/409/425/429/5xx, timeouts and dropped connections are retried with exponential backoff and
  full jitter (honouring Retry-After); after `max_retries` the request is reported as retryable and not
  written, so a re-run picks it up. 400/422 (e.g. prompt too long) are recorded as `finish_reason="error"`.
  401/403/404 stop the run: every other request would fail the same way.
- The API key is read only from the environment variable named by `api_key_env`, never from a flag.

`generate()` steps the event loop from the caller's thread and yields each completion as it finishes; the
writer journals it before the loop runs on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Iterable, Iterator
from urllib.parse import urlparse

from distill.core.backend_common import api_key_header
from distill.core.errors import DistillError
from distill.core.log import get_logger
from distill.generate.backends import BackendOptions, Completion, Request, join_completion, normalize_finish_reason

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
FATAL_STATUS = {401: "the server rejected the API key", 403: "the API key may not use this model", 404: "not found"}
BACKOFF_CAP_S = 60.0
SERVER_REST_S = 15.0  # how long a server that refused a connection sits out


def normalize_base_url(url: str) -> str:
    """`http://host:8000` and `http://host:8000/v1` both mean the OpenAI routes under /v1."""
    url = url.strip().rstrip("/")
    if not urlparse(url).scheme:
        raise DistillError(f"--base-url '{url}' has no scheme; write it like http://localhost:8000/v1")
    return url if urlparse(url).path not in ("", "/") else url + "/v1"


class FatalServerError(Exception):
    pass


class _Server:
    def __init__(self, url: str):
        self.url = url
        self.in_flight = 0
        self.rest_until = 0.0


class OpenAIBackend:
    name = "openai"

    def __init__(self, options: BackendOptions):
        if not options.base_url:
            raise DistillError("the openai backend needs --base-url (e.g. http://localhost:8000/v1)")
        self.servers = [_Server(normalize_base_url(u)) for u in options.base_url]
        self.headers = {"Content-Type": "application/json"}
        self.headers.update(api_key_header(
            options.api_key_env, " (--api-key-env names the variable, the key itself never goes on the command line)"))
        self.concurrency = options.concurrency
        self.timeout = options.request_timeout
        self.max_retries = options.max_retries
        self.backoff_base = options.retry_backoff_s
        self.extra_body = options.extra
        self.requested_model = options.model
        self.model = options.model
        self.log = get_logger()
        self.stats = {"retries": 0}
        self.model = self._probe_servers()

    # ------------------------------------------------------------ start-up checks

    def _probe_servers(self) -> str:
        """Check every server answers GET /models, and pick the model name they serve."""
        import urllib.error
        import urllib.request

        served: list[str] = []
        reachable = []
        for server in self.servers:
            req = urllib.request.Request(server.url + "/models", headers=self.headers)
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    body = json.loads(resp.read() or b"{}")
                served += [m.get("id") for m in body.get("data", []) if isinstance(m, dict)]
                reachable.append(server)
            except urllib.error.HTTPError as err:
                if err.code in (401, 403):
                    raise DistillError(
                        f"{server.url} answered {err.code} ({FATAL_STATUS[err.code]}); check the key in "
                        "the variable named by --api-key-env"
                    ) from None
                reachable.append(server)  # /models is optional for some servers; chat may still work
            except (urllib.error.URLError, OSError, ValueError) as err:
                reason = getattr(err, "reason", err)
                if len(self.servers) > 1:
                    self.log.warning(f"cannot reach {server.url}: {reason}")
        if not reachable:
            urls = ", ".join(s.url for s in self.servers)
            raise DistillError(
                f"cannot reach the teacher server at {urls}; start it (see recipes/serving/README.md) or fix --base-url"
            )
        if len(reachable) < len(self.servers):
            self.log.warning(f"using {len(reachable)} of {len(self.servers)} servers; the others did not answer")
        self.servers = reachable
        return self._pick_model(sorted(set(m for m in served if m)))

    def _pick_model(self, served: list[str]) -> str:
        if not served or self.requested_model in served:
            return self.requested_model
        if len(served) == 1:
            self.log.info(f"server serves '{served[0]}' (not '{self.requested_model}'); using it")
            return served[0]
        raise DistillError(
            f"the server does not serve '{self.requested_model}' (it serves {', '.join(served[:8])}); "
            "pass --model with one of those names"
        )

    # ------------------------------------------------------------ generation

    def generate(self, requests: Iterable[Request]) -> Iterator[Completion]:
        """Drive the event loop from the caller's thread, one finished completion at a time: the writer runs
        between two steps of the loop, with no second thread to hand rows over to (that hand-over, GIL
        ping-pong included, cost more than the HTTP work at 1,000+ completions/s)."""
        loop = asyncio.new_event_loop()
        stream = self._stream(iter(requests))
        step = None
        try:
            while True:
                step = asyncio.ensure_future(stream.__anext__(), loop=loop)
                try:
                    yield loop.run_until_complete(step)
                except StopAsyncIteration:
                    return
                except FatalServerError as err:
                    raise DistillError(str(err)) from None
        finally:
            if step is not None and not step.done():
                # left mid-step by an exception from outside the loop (a signal handler: the stop grace after
                # SIGTERM): cancelling the step runs the stream's own cleanup of the requests in flight
                step.cancel()
                with contextlib.suppress(BaseException):
                    loop.run_until_complete(step)
            loop.run_until_complete(stream.aclose())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _stream(self, requests: Iterator[Request]):
        """Keep `concurrency` requests in flight and yield each completion as soon as it is done."""
        import aiohttp

        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        timeout = aiohttp.ClientTimeout(total=self.timeout, sock_connect=10)
        finished: asyncio.Queue = asyncio.Queue()
        in_flight: set[asyncio.Task] = set()

        async def one(request: Request) -> None:
            try:
                finished.put_nowait(await self._complete(session, request))
            except BaseException as err:  # noqa: BLE001 - re-raised in the consumer
                finished.put_nowait(err)

        session = aiohttp.ClientSession(connector=connector, timeout=timeout, headers=self.headers)
        try:
            exhausted = False
            while True:
                while not exhausted and len(in_flight) < self.concurrency:
                    request = next(requests, None)
                    if request is None:
                        exhausted = True
                        break
                    task = asyncio.ensure_future(one(request))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                if not in_flight and finished.empty():
                    return
                item = await finished.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            for task in in_flight:
                task.cancel()
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)
            await session.close()

    def _choose_server(self) -> _Server:
        now = time.monotonic()
        live = [s for s in self.servers if s.rest_until <= now] or self.servers
        return min(live, key=lambda s: s.in_flight)

    async def _complete(self, session, request: Request) -> Completion:
        import aiohttp

        body = {
            "model": self.model,
            "messages": request.messages,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": request.seed,  # every sample its own seed: k samples of a prompt must differ
            **self.extra_body,
        }
        payload = json.dumps(body).encode()
        last_error = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.stats["retries"] += 1
            server = self._choose_server()
            server.in_flight += 1
            retry_after = None
            try:
                # the server applies the chat template (and its system turn): nothing here renders a prompt
                async with session.post(server.url + "/chat/completions", data=payload) as resp:
                    raw = await resp.read()
                    if resp.status == 200:
                        return self._parse(request, raw)
                    last_error = f"HTTP {resp.status}: {raw[:200].decode(errors='replace')}"
                    if resp.status in FATAL_STATUS:
                        raise FatalServerError(
                            f"{server.url} answered {resp.status} ({FATAL_STATUS[resp.status]}) for model "
                            f"'{self.model}': {raw[:160].decode(errors='replace')}; check --model and --api-key-env"
                        )
                    if resp.status not in RETRYABLE_STATUS:
                        return self._error(request, last_error)
                    retry_after = _retry_after(resp.headers.get("Retry-After"))
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError) as err:
                last_error = f"{type(err).__name__}: {err}"
                if isinstance(err, aiohttp.ClientConnectorError):
                    server.rest_until = time.monotonic() + SERVER_REST_S
            except ValueError as err:  # a 200 with a body that is not a chat completion
                last_error = f"bad response: {err}"
            finally:
                server.in_flight -= 1
            if attempt < self.max_retries:
                backoff = random.uniform(0, min(BACKOFF_CAP_S, self.backoff_base * 2**attempt))
                await asyncio.sleep(retry_after if retry_after is not None else backoff)
        self.log.warning(f"{request.id}: gave up after {self.max_retries} retries ({last_error[:160]})")
        return Completion(request.id, "", "error", 0, 0, self.model, error=last_error, retryable=True)

    def _parse(self, request: Request, raw: bytes) -> Completion:
        data = json.loads(raw)
        if not isinstance(data, dict) or not data.get("choices"):
            raise ValueError(f"no choices in {raw[:120]!r}")
        choice = data["choices"][0]
        message = choice.get("message") or {}
        # vLLM/SGLang/DeepSeek call it reasoning_content; newer vLLM and some gateways call it reasoning
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        finish = normalize_finish_reason(choice.get("finish_reason"))
        usage = data.get("usage") or {}
        return Completion(
            id=request.id,
            text=join_completion(message.get("content"), reasoning, finish),
            finish_reason=finish,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            model=data.get("model") or self.model,
        )

    def _error(self, request: Request, message: str) -> Completion:
        self.log.warning(f"{request.id}: {message[:200]}")
        return Completion(request.id, "", "error", 0, 0, self.model, error=message)

    def close(self) -> None:
        pass


def _retry_after(value: str | None) -> float | None:
    try:
        return min(BACKOFF_CAP_S, max(0.0, float(value))) if value else None
    except ValueError:
        return None


def create(options: BackendOptions) -> OpenAIBackend:
    return OpenAIBackend(options)
