"""Any OpenAI-compatible server: vLLM, SGLang, llama.cpp, Ollama, LM Studio, OpenRouter, hosted APIs.

Prefill mode posts the exact chat-templated prompt, ending in the answer prefix, to `/v1/completions` (RULER's
protocol); chat mode posts the user message to `/v1/chat/completions`. Greedy decoding. Failures are retried with
capped exponential backoff and full jitter, honouring `Retry-After`; a refused context length is an `overflow`,
never retried and never scored as a wrong answer.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from ruler.backends.base import Backend, BackendOptions, Completion, Request
from ruler.errors import RulerError

POOL_SIZE = 8
RETRYABLE = {408, 409, 425, 429, 500, 502, 503, 504}
OVERFLOW_HINTS = ("context", "too long", "exceed", "n_ctx", "max_model_len", "maximum length", "too many tokens")
WINDOW_FIELDS = ("max_model_len", "context_length", "context_window", "max_context_length", "n_ctx", "n_ctx_train")


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


class OpenAICompatible(Backend):
    name = "openai"

    def __init__(self, model: str, base_url: str, api_key: str | None = None, timeout: float = 600.0,
                 max_retries: int = 6, concurrency: int = 8, backoff: float = 1.0, max_backoff: float = 60.0) -> None:
        self.model, self.base_url = model, api_base(base_url)
        self.max_retries, self.backoff, self.max_backoff = max_retries, backoff, max_backoff
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # httpcore's pool scans every connection for every waiting request: at high concurrency that costs more
        # CPU than the requests, so connections are spread over small pools.
        pools = -(-concurrency // POOL_SIZE)
        self._clients = [httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=httpx.Timeout(timeout, connect=min(timeout, 30.0)),
            limits=httpx.Limits(max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE))
            for _ in range(pools)]
        self._next = itertools.cycle(self._clients)

    @classmethod
    def create(cls, model: str, options: BackendOptions) -> OpenAICompatible:
        if not options.base_url:
            raise RulerError("the openai backend needs --base-url (e.g. http://localhost:8000/v1)")
        return cls(model, options.base_url, options.api_key, options.timeout, options.max_retries,
                   options.concurrency)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model, "base_url": public_url(self.base_url)}

    def _body(self, request: Request) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {"model": self.model, "max_tokens": request.max_new_tokens, "temperature": 0.0,
                                "top_p": 1.0, "stream": False}
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
            response = None
            try:
                response = await next(self._next).post(path, json=body)
            except httpx.TimeoutException:
                error = "timed out"
            except httpx.TransportError as failure:
                error = f"connection failed: {type(failure).__name__}: {failure}"
            else:
                if response.status_code == 200:
                    completion = self._parse(response, time.monotonic() - started)
                    if completion is not None:
                        return completion
                    error = f"malformed response: {response.text[:200]!r}"
                elif response.status_code in (400, 413, 422) and any(
                        hint in _message(response).lower() for hint in OVERFLOW_HINTS):
                    return Completion(failure="overflow", error=_message(response),
                                      latency_s=time.monotonic() - started)
                elif response.status_code not in RETRYABLE:
                    return Completion(failure="error", error=f"HTTP {response.status_code}: {_message(response)}",
                                      latency_s=time.monotonic() - started)
                else:
                    error = f"HTTP {response.status_code}: {_message(response)}"
            if attempt < self.max_retries:
                await asyncio.sleep(self._delay(attempt, response))
        return Completion(failure="error", error=f"{error} (after {self.max_retries + 1} attempts)",
                          latency_s=time.monotonic() - started)

    @staticmethod
    def _parse(response: httpx.Response, latency: float) -> Completion | None:
        try:
            data = response.json()
            choice = data["choices"][0]
            message = choice.get("message")
            text = message.get("content") if message is not None else choice["text"]
            refusal = message.get("refusal") if message is not None else None
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            return None
        if not isinstance(text, (str, type(None))):
            return None
        finish = choice.get("finish_reason")
        failure = "refused" if refusal or finish == "content_filter" else None
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else None
        return Completion(text=text or "", finish_reason=finish, usage=usage, latency_s=latency, failure=failure,
                          error=refusal or None)

    async def context_window(self) -> int | None:
        """From `/v1/models` (vLLM's max_model_len, OpenRouter's context_length ...); also proves the server is up."""
        try:
            response = await self._clients[0].get("/models")
        except httpx.HTTPError as failure:
            raise RulerError(f"cannot reach {self.base_url}: {type(failure).__name__} {failure}".strip()) from None
        if response.status_code in (401, 403):
            raise RulerError(f"{self.base_url} refused the API key (HTTP {response.status_code}); see --api-key-env")
        try:
            models = response.json().get("data", [])
        except (ValueError, AttributeError):
            return None
        entries = [m for m in models if isinstance(m, dict) and m.get("id") == self.model] or \
            [m for m in models if isinstance(m, dict)][:1]
        for entry in entries:
            for place in (entry, entry.get("meta") or {}, entry.get("top_provider") or {}):
                for name in WINDOW_FIELDS:
                    if isinstance(place.get(name), int) and place[name] > 0:
                        return place[name]
        return None

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()
