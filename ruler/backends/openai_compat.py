"""Any OpenAI-compatible server: vLLM, SGLang, llama.cpp, Ollama, LM Studio, OpenRouter, hosted APIs.

Prefill mode posts the exact chat-templated prompt, ending in the answer prefix, to `/v1/completions` (RULER's
protocol); chat mode posts the user message to `/v1/chat/completions`. Greedy decoding; `stream` reads server-sent
events and times the first token. Thinking returned beside the answer is kept apart. Failures are retried with
capped exponential backoff and full jitter, honouring `Retry-After`; a refused context length is an `overflow`,
never retried and never scored as a wrong answer.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import time
from dataclasses import replace
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from ruler.backends.base import Backend, BackendOptions, Completion, Request
from ruler.errors import RulerError
from ruler.types import Prices

DEFAULT_KEY_ENV = "OPENAI_API_KEY"
POOL_SIZE = 8
#: seconds a replica that refused a connection is left out of the rotation (unless every replica is)
DOWN_FOR = 30.0
RETRYABLE = {408, 409, 425, 429, 500, 502, 503, 504}
OVERFLOW_HINTS = ("context", "too long", "exceed", "n_ctx", "max_model_len", "maximum length", "too many tokens")
WINDOW_FIELDS = ("max_model_len", "context_length", "context_window", "max_context_length", "n_ctx", "n_ctx_train")


def api_key_from_env(name: str | None) -> str | None:
    """The key in `name` (which must then be set), else in OPENAI_API_KEY if set; never written anywhere."""
    key = os.environ.get(name or DEFAULT_KEY_ENV)
    if name and not key:
        raise RulerError(f"the API key variable {name} is not set")
    return key


def api_base(url: str) -> str:
    """`http://host:8000`, `http://host:8000/` and `http://host:8000/v1` all mean the `/v1` API root."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


def public_url(url: str) -> str:
    """The URL without credentials or query string, fit for a manifest."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
        error = body.get("error", body) if isinstance(body, dict) else body
        text = error.get("message", error) if isinstance(error, dict) else error
    except ValueError:
        text = response.text
    return " ".join(str(text).split())[:300]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        try:
            return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
        except (TypeError, ValueError):
            return None


def _failed(response: httpx.Response) -> Completion | str:
    """A non-200 answer: a refused context is `overflow` and a client error final; the rest are worth a retry."""
    message = _message(response)
    if response.status_code in (400, 413, 422) and any(hint in message.lower() for hint in OVERFLOW_HINTS):
        return Completion(failure="overflow", error=message)
    if response.status_code not in RETRYABLE:
        return Completion(failure="error", error=f"HTTP {response.status_code}: {message}")
    return f"HTTP {response.status_code}: {message}"


def _reasoning(message: dict[str, Any]) -> str:
    """Thinking a server returns apart from the answer: `reasoning_content` (vLLM, SGLang, llama.cpp, DeepSeek)
    or `reasoning` (OpenRouter, Ollama)."""
    value = message.get("reasoning_content") or message.get("reasoning") or ""
    return value if isinstance(value, str) else ""


def _completion(text: str, reasoning: str, refusal: str | None, finish: str | None, usage: Any,
                timings: dict[str, float] | None = None) -> Completion:
    failure = "refused" if refusal or finish == "content_filter" else None
    return Completion(text=text, finish_reason=finish, usage=usage if isinstance(usage, dict) else None,
                      failure=failure, error=refusal or None, reasoning=reasoning, timings=timings or {})


def _parse(response: httpx.Response) -> Completion | None:
    """A whole (non-streamed) answer from either endpoint; None when it is not one."""
    try:
        data = response.json()
        choice = data["choices"][0]
        message = choice.get("message")
        text = message.get("content") if message is not None else choice["text"]
        refusal = message.get("refusal") if message is not None else None
        reasoning = _reasoning(message if message is not None else choice)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None
    if not isinstance(text, (str, type(None))):
        return None
    return _completion(text or "", reasoning, refusal, choice.get("finish_reason"), data.get("usage"))


async def _read_stream(response: httpx.Response, started: float) -> Completion | str:
    """Server-sent events from either endpoint, timed: the first token (text or thinking) ends the prefill. A
    stream that stops without a finish reason or `[DONE]` was cut off, and is worth a retry."""
    texts, thinking, refusals = [], [], []
    finish, usage, first, done = None, None, None, False
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            done = True
            break
        try:
            chunk = json.loads(data)
            if "error" in chunk:
                return f"error in stream: {chunk['error']}"[:300]
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta")
                piece = delta.get("content") if delta is not None else choice.get("text")
                reasoning = _reasoning(delta if delta is not None else choice)
                if (piece or reasoning) and first is None:
                    first = time.monotonic()
                texts.append(piece or "")
                thinking.append(reasoning)
                refusals.append((delta or {}).get("refusal") or "")
                finish = choice.get("finish_reason") or finish
        except (ValueError, TypeError, AttributeError):
            return f"malformed stream chunk: {data[:200]!r}"
    if not done and finish is None:
        return "the stream ended before the answer did"
    ended = time.monotonic()
    first = first or ended
    return _completion("".join(texts), "".join(thinking), "".join(refusals) or None, finish, usage,
                       {"ttft_s": first - started, "decode_s": ended - first})


class Replica:
    """One server of the model: its connection pools, the requests it has in flight, and until when it is
    considered down (after a connection failure)."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float, concurrency: int) -> None:
        self.url = api_base(url)
        # httpcore's pool scans every connection for every waiting request: at high concurrency that costs more
        # CPU than the requests, so connections are spread over small pools.
        self.clients = [httpx.AsyncClient(
            base_url=self.url, headers=headers, timeout=httpx.Timeout(timeout, connect=min(timeout, 30.0)),
            limits=httpx.Limits(max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE))
            for _ in range(-(-concurrency // POOL_SIZE))]
        self._next = itertools.cycle(self.clients)
        self.outstanding = 0
        self.down_until = 0.0

    def client(self) -> httpx.AsyncClient:
        return next(self._next)


class OpenAICompatible(Backend):
    name = "openai"

    def __init__(self, model: str, base_url: str | list[str], api_key: str | None = None, timeout: float = 600.0,
                 max_retries: int = 6, concurrency: int = 8, backoff: float = 1.0, max_backoff: float = 60.0,
                 reasoning_effort: str | None = None, stream: bool = False,
                 extra_body: dict[str, Any] | None = None) -> None:
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        self.model, self.base_url = model, api_base(urls[0])
        self.reasoning_effort, self.stream, self.extra_body = reasoning_effort, stream, extra_body or {}
        self.max_retries, self.backoff, self.max_backoff = max_retries, backoff, max_backoff
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.replicas = [Replica(url, headers, timeout, concurrency) for url in urls]
        self._entry: dict[str, Any] | None = None

    def _replica(self) -> Replica:
        """The replica with the fewest requests in flight among those not marked down (all, if all are)."""
        now = time.monotonic()
        up = [replica for replica in self.replicas if replica.down_until <= now] or self.replicas
        return min(up, key=lambda replica: replica.outstanding)

    @classmethod
    def create(cls, model: str, options: BackendOptions) -> OpenAICompatible:
        if not options.base_url:
            raise RulerError("the openai backend needs --base-url (e.g. http://localhost:8000/v1; repeat it for "
                             "replicas)")
        return cls(model, options.base_url, options.api_key, options.timeout, options.max_retries,
                   options.concurrency, reasoning_effort=options.reasoning_effort, stream=options.stream,
                   extra_body=options.extra_body)

    def describe(self) -> dict[str, Any]:
        described = {"backend": self.name, "model": self.model, "base_url": public_url(self.base_url)}
        if len(self.replicas) > 1:
            described["replicas"] = [public_url(replica.url) for replica in self.replicas]
        return {**described, "extra_body": self.extra_body} if self.extra_body else described

    def _body(self, request: Request) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {"model": self.model, "max_tokens": request.max_new_tokens, "temperature": 0.0,
                                "top_p": 1.0, "stream": self.stream}
        if self.stream:
            body["stream_options"] = {"include_usage": True}
        body.update(self.extra_body)
        if self.reasoning_effort:
            body["reasoning_effort"] = self.reasoning_effort
        if request.chat:
            return "/chat/completions", {**body, "messages": [{"role": "user", "content": request.prompt}]}
        return "/completions", {**body, "prompt": request.prompt}

    def _delay(self, attempt: int, response: httpx.Response | None = None) -> float:
        hinted = _retry_after(response) if response is not None else None
        if hinted is not None:
            return min(hinted, self.max_backoff)
        return random.uniform(0, min(self.max_backoff, self.backoff * 2**attempt))

    async def generate(self, request: Request) -> Completion:
        path, body = self._body(request)
        started, error = time.monotonic(), "no attempt made"
        for attempt in range(self.max_retries + 1):
            outcome, response = await self._attempt(path, body)
            if isinstance(outcome, Completion):
                return replace(outcome, latency_s=time.monotonic() - started)
            error = outcome
            if attempt < self.max_retries:
                await asyncio.sleep(self._delay(attempt, response))
        return Completion(failure="error", error=f"{error} (after {self.max_retries + 1} attempts)",
                          latency_s=time.monotonic() - started)

    async def _attempt(self, path: str, body: dict[str, Any]) -> tuple[Completion | str, httpx.Response | None]:
        """One request to the least busy replica: a final Completion (an answer, an overflow, a client error), or
        why it is worth retrying. A replica that cannot be reached is left alone for DOWN_FOR seconds."""
        replica = self._replica()
        replica.outstanding += 1
        started = time.monotonic()
        try:
            async with replica.client().stream("POST", path, json=body) as response:
                if response.status_code != 200:
                    await response.aread()
                    return _failed(response), response
                if body["stream"]:
                    return await _read_stream(response, started), response
                await response.aread()
                return _parse(response) or f"malformed response: {response.text[:200]!r}", response
        except httpx.TimeoutException:
            return "timed out", None
        except httpx.TransportError as failure:
            replica.down_until = time.monotonic() + DOWN_FOR
            return f"connection to {public_url(replica.url)} failed: {type(failure).__name__}: {failure}", None
        finally:
            replica.outstanding -= 1

    async def _listing(self) -> dict[str, Any]:
        """This model's entry in `/v1/models` (fetched once; also proves the server is up and the key works)."""
        if self._entry is not None:
            return self._entry
        response, failures = None, []
        for replica in self.replicas:
            try:
                response = await replica.clients[0].get("/models")
                break
            except httpx.HTTPError as failure:
                failures.append(f"cannot reach {public_url(replica.url)}: {type(failure).__name__} {failure}".strip())
        if response is None:
            raise RulerError("; ".join(failures))
        if response.status_code in (401, 403):
            raise RulerError(f"{self.base_url} refused the API key (HTTP {response.status_code}); see --api-key-env")
        try:
            models = [m for m in response.json().get("data", []) if isinstance(m, dict)]
        except (ValueError, AttributeError):
            models = []
        self._entry = next((m for m in models if m.get("id") == self.model), models[0] if models else {})
        return self._entry

    async def context_window(self) -> int | None:
        """From `/v1/models` (vLLM's max_model_len, OpenRouter's context_length ...)."""
        entry = await self._listing()
        for place in (entry, entry.get("meta") or {}, entry.get("top_provider") or {}):
            for name in WINDOW_FIELDS:
                if isinstance(place.get(name), int) and place[name] > 0:
                    return place[name]
        return None

    async def prices(self) -> Prices | None:
        """OpenRouter-style `pricing` ({"prompt": "0.0000001", "completion": ...}, dollars per token)."""
        pricing = (await self._listing()).get("pricing") or {}
        try:
            return Prices(float(pricing["prompt"]) * 1e6, float(pricing["completion"]) * 1e6)
        except (KeyError, TypeError, ValueError):
            return None

    async def aclose(self) -> None:
        for replica in self.replicas:
            for client in replica.clients:
                await client.aclose()
