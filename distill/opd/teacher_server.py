"""A teacher behind a running `vllm serve` (the OpenAI-compatible server `distill generate --backend openai`
uses), asked for the log-probability of every token the student sampled.

    teacher = ServedTeacher(recipe.teacher, "Qwen/QwQ-32B")
    teacher.check(student_tokenizer, probe_ids=[...])    # same vocabulary, prompt log-probabilities returned
    scores = teacher.get_sequence_logprobs(sequences, prompt_lengths, top_logprobs=1, temperature=1.0)

Protocol: POST {base}/completions with the token ids as the prompt, `max_tokens: 1` and vLLM's
`prompt_logprobs: k`. Entry i of `choices[0].prompt_logprobs` holds, for token i of the sequence, the teacher's
log-probability given tokens < i (entry 0 is null), keyed by token id as a string, always including the token
that is there plus the top k. This is the same request TRL's VLLMClient.get_sequence_logprobs makes (and returns
the same dict), so TRL's ServerDistillationTrainer loss runs unchanged on it. What TRL's client lacks, and why
distill has its own: it needs the vllm package importable on the training node; it sends no API key; it retries
only 500/502/503; and a response without prompt log-probabilities becomes `-inf` entries, not an error. Here
429/5xx/timeouts are retried with generate's backoff, 401/403/404 and a response without log-probabilities
stop the run with one line, and nothing ever becomes a silent zero loss.

Temperature: vLLM returns raw log-probabilities (before temperature) unless the server runs with
`--logprobs-mode processed_logprobs`; keep loss.temperature at 1.0 with a served teacher.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
import urllib.error
import urllib.request
from typing import Any

from distill.core.errors import DistillError
from distill.core.log import get_logger
from distill.generate.backends.openai import BACKOFF_CAP_S, FATAL_STATUS, RETRYABLE_STATUS, normalize_base_url

NO_LOGPROBS = ("the teacher server at {url} returned no prompt log-probabilities{why}; on-policy distillation "
               "needs vLLM's OpenAI server (`vllm serve MODEL`), which returns them for `prompt_logprobs`")


class ServedTeacher:
    """TRL's VLLMClient interface (`get_sequence_logprobs`) over vLLM's OpenAI-compatible API."""

    def __init__(self, spec: Any, model: str):
        self.url = normalize_base_url(spec.base_url)
        self.root = self.url[: -len("/v1")] if self.url.endswith("/v1") else self.url
        self.headers = {"Content-Type": "application/json"}
        if spec.api_key_env:
            key = os.environ.get(spec.api_key_env)
            if not key:
                raise DistillError(f"environment variable {spec.api_key_env} is not set; export it with the "
                                   "server's API key (teacher.api_key_env names the variable)")
            self.headers["Authorization"] = f"Bearer {key}"
        self.timeout, self.max_retries, self.backoff = spec.request_timeout, spec.max_retries, spec.retry_backoff_s
        self.retries = 0
        self.model = self._served_model(model)

    # ------------------------------------------------------------ start-up checks, before anything is written

    def _served_model(self, wanted: str) -> str:
        try:
            served = [m["id"] for m in self._call("GET", self.url + "/models", None, retries=2).get("data", [])]
        except DistillError as err:
            raise DistillError(f"cannot reach the teacher server at {self.url} ({err}); start it with "
                               "`vllm serve MODEL` or fix teacher.base_url") from None
        if wanted in served or not served:
            return wanted
        if len(served) == 1:
            return served[0]
        raise DistillError(f"the teacher server serves {', '.join(served[:8])}, not '{wanted}'; set teacher.name")

    def check(self, tokenizer: Any, probe_ids: list[int]) -> None:
        """Token ids mean the same strings to the server as to the student, and the server returns prompt
        log-probabilities (so no position is ever scored as nothing)."""
        self._check_vocabulary(tokenizer, probe_ids)
        self.get_sequence_logprobs([probe_ids], [max(1, len(probe_ids) - 4)], 1, 1.0)

    def _check_vocabulary(self, tokenizer: Any, probe_ids: list[int]) -> None:
        # Ids, not texts: a teacher may have tokens the student lacks (QwQ writes </think> as one token of its
        # own, the Qwen2.5 students in pieces), so the same text may tokenize differently while every id the
        # student can sample still means the same string. vLLM's /detokenize (at the server root, beside /v1)
        # decodes ids with the served tokenizer; a sample across the whole vocabulary plus every added token.
        step = max(1, len(tokenizer) // 2048)
        ids = probe_ids + list(range(0, len(tokenizer), step)) + sorted(tokenizer.get_added_vocab().values())
        try:
            body = self._call("POST", self.root + "/detokenize", {"model": self.model, "tokens": ids}, retries=2)
        except DistillError as err:
            get_logger().warning(f"the teacher server cannot detokenize ({err}); vocabulary not checked: set "
                                 "teacher.tokenizer to check it from the teacher's tokenizer")
            return
        if body.get("prompt") != tokenizer.decode(ids):
            raise DistillError(f"the teacher '{self.model}' at {self.url} does not share the student's vocabulary: "
                               f"{len(ids):,} token ids decode to other text there than in the student's "
                               f"tokenizer '{tokenizer.name_or_path}'; serve a teacher of the student's model family "
                               "(same tokenizer)")

    # ------------------------------------------------------------ scoring

    def get_sequence_logprobs(self, sequences: list[list[int]], prompt_lengths: list[int], top_logprobs: int = 1,
                              temperature: float = 1.0) -> dict[str, list]:
        """Per completion token: the teacher's top-k (log-prob, id) and the log-prob of the token sampled."""
        body = {"model": self.model, "prompt": sequences, "max_tokens": 1, "temperature": temperature,
                "prompt_logprobs": top_logprobs}
        choices = self._call("POST", self.url + "/completions", body).get("choices") or []
        if len(choices) != len(sequences):
            raise DistillError(NO_LOGPROBS.format(url=self.url, why=f" ({len(choices)} choices for "
                                                  f"{len(sequences)} sequences)"))
        choices = sorted(choices, key=lambda c: c.get("index", 0))
        out = [self._one(c, s, p, top_logprobs) for c, s, p in zip(choices, sequences, prompt_lengths, strict=True)]
        return {key: [o[key] for o in out] for key in out[0]}

    def _one(self, choice: dict, sequence: list[int], prompt_length: int, k: int) -> dict[str, list]:
        entries = choice.get("prompt_logprobs")
        if not isinstance(entries, list) or len(entries) != len(sequence):
            raise DistillError(NO_LOGPROBS.format(url=self.url, why=""))
        top, top_ids, actual = [], [], []
        for position in range(prompt_length, len(sequence)):
            scored = entries[position] or {}
            token = scored.get(str(sequence[position]))
            value = token.get("logprob") if isinstance(token, dict) else None
            if value is None or not math.isfinite(value):
                # a missing score would enter the loss as -inf (or, clamped, as zero): stop instead
                raise DistillError(NO_LOGPROBS.format(url=self.url, why=f" for token {sequence[position]} at "
                                                      f"position {position}"))
            ranked = sorted(scored.items(), key=lambda kv: kv[1].get("rank", 0))[:k]
            top.append([v["logprob"] for _, v in ranked] + [-math.inf] * (k - len(ranked)))
            top_ids.append([int(t) for t, _ in ranked] + [0] * (k - len(ranked)))
            actual.append([value])
        return {"logprobs": top, "logprob_token_ids": top_ids, "actual_logprobs": actual,
                "actual_token_ids": [[t] for t in sequence[prompt_length:]]}

    def _call(self, method: str, url: str, body: dict | None, retries: int | None = None) -> dict:
        """One JSON request, retried on 408/409/425/429/5xx, timeouts and dropped connections."""
        retries = self.max_retries if retries is None else retries
        data = json.dumps(body).encode() if body is not None else None
        last = ""
        for attempt in range(retries + 1):
            retry_after = None
            try:
                req = urllib.request.Request(url, data=data, headers=self.headers, method=method)
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return json.loads(resp.read() or b"{}")
            except urllib.error.HTTPError as err:
                text = err.read()[:200].decode(errors="replace")
                last = f"HTTP {err.code}: {text}"
                if err.code in FATAL_STATUS or err.code not in RETRYABLE_STATUS:
                    hint = FATAL_STATUS.get(err.code, "the request was refused")
                    raise DistillError(f"{url} answered {err.code} ({hint}): {text.strip()[:160]}") from None
                retry_after = err.headers.get("Retry-After")
            except (urllib.error.URLError, OSError, ValueError) as err:
                last = f"{type(err).__name__}: {getattr(err, 'reason', err)}"
            if attempt < retries:
                self.retries += 1
                wait = random.uniform(0, min(BACKOFF_CAP_S, self.backoff * 2**attempt))
                time.sleep(min(BACKOFF_CAP_S, float(retry_after)) if _number(retry_after) else wait)
        raise DistillError(f"{url} failed after {retries} retries ({last[:160]}); re-run the same command to resume "
                           "from the last checkpoint")


def _number(value: str | None) -> bool:
    try:
        return value is not None and float(value) >= 0
    except ValueError:
        return False
