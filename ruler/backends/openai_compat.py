"""Any OpenAI-compatible server: vLLM, SGLang, llama.cpp, Ollama, LM Studio, OpenRouter, hosted APIs.

Prefill mode posts the exact chat-templated prompt, ending in the answer prefix, to `/v1/completions` (RULER's
protocol); chat mode posts the user message to `/v1/chat/completions`. Greedy decoding; `stream` reads server-sent
events and times the first token. Thinking returned beside the answer is kept apart. Failures are retried with
capped exponential backoff and full jitter, honouring `Retry-After`; a refused context length is an `overflow`,
never retried and never scored as a wrong answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import replace
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from ruler.backends.base import Backend, BackendOptions, Completion, Request, ServedContext
from ruler.backends.served_context import served_context
from ruler.endpoints import api_base, auth_headers, positive_int, public_url, query_params, server_root
from ruler.errors import RulerError
from ruler.types import Prices

POOL_SIZE = 8
#: seconds a replica that refused a connection is left out of the rotation (unless every replica is)
DOWN_FOR = 30.0
#: streams cut short while other requests were in flight before a replica gets one stream at a time
CUTS_BEFORE_SERIAL = 2
RETRYABLE = {408, 409, 425, 429, 500, 502, 503, 504}
OVERFLOW_HINTS = ("context", "too long", "exceed", "n_ctx", "max_model_len", "maximum length", "too many tokens")
#: how servers state their window when they refuse a prompt: vLLM, OpenAI, OpenRouter and llama-cpp-python ("maximum
#: context length is 4096 tokens"), vLLM's engine ("maximum model length of 4096") and newer renderer ("the model's
#: context length is only 4096"), llama-server ("exceeds the available context size (4096 tokens)"), SGLang ("the
#: model's context length (4096 tokens)", "maximum context length of 4096")
STATED_WINDOW = tuple(re.compile(pattern, re.IGNORECASE) for pattern in (
    r"maximum context length (?:is|of) (\d+)", r"context window of (\d+)", r"maximum model length (?:of |is )?(\d+)",
    r"context length is (?:only )?(\d+)", r"context (?:size|length) \((\d+) tokens\)"))
#: the stream reader's reason for a stream that ended with [DONE] but no finish reason
CUT_STREAM = "the stream ended without a finish reason (cut off by the server)"
#: and for one that closed before its first event: llama-cpp-python fails a streamed prompt longer than its window
#: that way, after the headers, so only the same request unstreamed says why
SILENT_STREAM = "the stream closed before its first event"


def _error(response: httpx.Response) -> tuple[str, dict[str, Any]]:
    """The error message of a failed response, and the error object it came in (empty when none)."""
    try:
        body = response.json()
    except ValueError:
        return " ".join(response.text.split())[:300], {}
    error = body.get("error", body) if isinstance(body, dict) else body
    text = error.get("message", error) if isinstance(error, dict) else error
    return " ".join(str(text).split())[:300], error if isinstance(error, dict) else {}


def stated_window(message: str, error: dict[str, Any] | None = None) -> int | None:
    """The window a refusal states: llama-server's `n_ctx` field, else a number in one of STATED_WINDOW's
    phrasings."""
    if n_ctx := positive_int((error or {}).get("n_ctx")):
        return n_ctx
    for pattern in STATED_WINDOW:
        if match := pattern.search(message):
            return int(match.group(1))
    return None


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
    message, error = _error(response)
    refusal = response.status_code in (400, 413, 422) or "context size" in message.lower()  # older llama-server: 500
    if refusal and any(hint in message.lower() for hint in OVERFLOW_HINTS):
        return Completion(failure="overflow", error=message, stated_window=stated_window(message, error))
    if response.status_code not in RETRYABLE:
        return Completion(failure="error", error=f"HTTP {response.status_code}: {message}")
    return f"HTTP {response.status_code}: {message}"


def _reasoning(message: dict[str, Any]) -> str:
    """Thinking a server returns apart from the answer: `reasoning_content` (vLLM, SGLang, llama.cpp, DeepSeek)
    or `reasoning` (OpenRouter, Ollama)."""
    value = message.get("reasoning_content") or message.get("reasoning") or ""
    return value if isinstance(value, str) else ""


def _server_timings(timings: Any) -> dict[str, float]:
    """llama-server's own `timings` (prompt_ms, predicted_ms): the server's prefill and decode time, free of any
    queueing in front of it."""
    if not isinstance(timings, dict):
        return {}
    pairs = (("server_prefill_s", "prompt_ms"), ("server_decode_s", "predicted_ms"))
    return {name: timings[key] / 1000 for name, key in pairs if isinstance(timings.get(key), (int, float))}


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
    return _completion(text or "", reasoning, refusal, choice.get("finish_reason"), data.get("usage"),
                       _server_timings(data.get("timings")))


async def _read_stream(response: httpx.Response, started: float) -> Completion | str:
    """Server-sent events from either endpoint, timed: the first token (text or thinking) ends the prefill. Only a
    stream that says how it finished is an answer: one that stops before its finish reason (a dropped connection,
    or `[DONE]` sent early, as llama-cpp-python does to a stream when another request arrives) is worth a retry."""
    texts, thinking, refusals = [], [], []
    finish, usage, first, done, timings, events = None, None, None, False, {}, 0
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue
        events += 1
        data = line[5:].strip()
        if data == "[DONE]":
            done = True
            break
        try:
            chunk = json.loads(data)
            if "error" in chunk:
                return f"error in stream: {chunk['error']}"[:300]
            usage = chunk.get("usage") or usage
            timings = _server_timings(chunk.get("timings")) or timings
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
    if finish is None:
        return CUT_STREAM if done else SILENT_STREAM if not events else \
            "the stream ended before the answer did (connection closed)"
    ended = time.monotonic()
    first = first or ended
    return _completion("".join(texts), "".join(thinking), "".join(refusals) or None, finish, usage,
                       {"ttft_s": first - started, "decode_s": ended - first, **timings})


async def _exchange(client: httpx.AsyncClient, path: str, body: dict[str, Any],
                    started: float) -> tuple[Completion | str, httpx.Response]:
    async with client.stream("POST", path, json=body) as response:
        if response.status_code != 200:
            await response.aread()
            return _failed(response), response
        if body["stream"]:
            return await _read_stream(response, started), response
        await response.aread()
        return _parse(response) or f"malformed response: {response.text[:200]!r}", response


class Replica:
    """One server of the model: its connection pools, the requests it has in flight, until when it is considered
    down (after a connection failure), and whether it gets one stream at a time (after cutting streams short)."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float, concurrency: int) -> None:
        self.url = api_base(url)
        # httpcore's pool scans every connection for every waiting request: at high concurrency that costs more
        # CPU than the requests, so connections are spread over small pools.
        self._settings = {"base_url": self.url, "params": query_params(url), "headers": headers,
                          "timeout": httpx.Timeout(timeout, connect=min(timeout, 30.0))}
        self.clients = [httpx.AsyncClient(**self._settings, limits=httpx.Limits(
            max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE))
            for _ in range(-(-concurrency // POOL_SIZE))]
        self._next = itertools.cycle(self.clients)
        self.outstanding = self.sent = 0
        self.down_until = 0.0
        self.cuts = 0
        self.warned_alone = False
        self.one_stream: asyncio.Semaphore | None = None

    def client(self) -> httpx.AsyncClient:
        return next(self._next)

    def fresh_client(self) -> httpx.AsyncClient:
        """A client of its own, for a request that must not meet a kept-alive connection of the pools."""
        return httpx.AsyncClient(**self._settings)

    def stream_gate(self, streaming: bool) -> asyncio.Semaphore | contextlib.nullcontext:
        return self.one_stream if streaming and self.one_stream else contextlib.nullcontext()


def _same_model(listed: str, wanted: str) -> bool:
    """Names that unambiguously mean the same model: equal but for case, one the other's `org/` or folder suffix,
    or the same GGUF file name."""
    def stem(name: str) -> str:
        return name.lower().rstrip("/").rsplit("/", 1)[-1].removesuffix(".gguf")

    a, b = listed.lower(), wanted.lower()
    return a == b or a.endswith("/" + b) or b.endswith("/" + a) or stem(a) == stem(b)


def listed_entry(model: str, models: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The entry of `/v1/models` for `model`: the exact id, else the one entry that unambiguously names it; None
    rather than another model's entry (whose window and prices would be wrong)."""
    exact = [entry for entry in models if entry.get("id") == model]
    if exact:
        return exact[0]
    close = [entry for entry in models if _same_model(str(entry.get("id", "")), model)]
    return close[0] if len(close) == 1 else None


class OpenAICompatible(Backend):
    name = "openai"

    def __init__(self, model: str, base_url: str | list[str], api_key: str | None = None, timeout: float = 600.0,
                 max_retries: int = 6, concurrency: int = 8, backoff: float = 1.0, max_backoff: float = 60.0,
                 reasoning_effort: str | None = None, stream: bool = False,
                 extra_body: dict[str, Any] | None = None,
                 notify: Callable[[str], None] = lambda message: None) -> None:
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        self.model, self.base_url = model, api_base(urls[0])
        self.reasoning_effort, self.stream, self.extra_body = reasoning_effort, stream, extra_body or {}
        self.max_retries, self.backoff, self.max_backoff, self.timeout = max_retries, backoff, max_backoff, timeout
        self.notify = notify
        self.replicas = [Replica(url, auth_headers(api_key), timeout, concurrency) for url in urls]
        self._entry: dict[str, Any] | None = None

    def _replica(self) -> Replica:
        """The replica with the fewest requests in flight among those not marked down (all, if all are); of equals,
        the one sent the fewest so far (requests sent one at a time take turns)."""
        now = time.monotonic()
        up = [replica for replica in self.replicas if replica.down_until <= now] or self.replicas
        return min(up, key=lambda replica: (replica.outstanding, replica.sent))

    @classmethod
    def create(cls, model: str, options: BackendOptions) -> OpenAICompatible:
        if not options.base_url:
            raise RulerError("the openai backend needs --base-url (e.g. http://localhost:8000/v1; repeat it for "
                             "replicas)")
        return cls(model, options.base_url, options.api_key, options.timeout, options.max_retries,
                   options.concurrency, reasoning_effort=options.reasoning_effort, stream=options.stream,
                   extra_body=options.extra_body, notify=options.notify)

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
        if urlsplit(self.base_url).hostname == "openrouter.ai":
            body["transforms"] = []  # else OpenRouter cuts the middle out of prompts longer than the model's window
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
        """Attempts until an answer or a final failure; the answer's latency is its own request's, not the time
        spent on failed attempts and backoff; `attempts` counts every request sent."""
        path, body = self._body(request)
        error, sent = "no attempt made", 0
        for attempt in range(self.max_retries + 1):
            outcome, response, seconds, sends = await self._attempt(path, body)
            sent += sends
            if isinstance(outcome, Completion):
                return replace(outcome, latency_s=seconds, attempts=sent)
            error = outcome
            if attempt < self.max_retries:
                await asyncio.sleep(self._delay(attempt, response))
        return Completion(failure="error", error=f"{error} (after {self.max_retries + 1} attempts)", attempts=sent)

    async def _attempt(self, path: str, body: dict[str, Any]) -> tuple[Completion | str, httpx.Response | None,
                                                                       float, int]:
        """One attempt on the least busy replica, within --timeout as a whole: a final Completion (an answer, an
        overflow, a client error), or why it is worth retrying; the seconds its last request took; the requests
        it sent. A stream that closed before its first event is asked again unstreamed (the answer, or the refusal
        and its reason). A replica that cannot be reached is left alone for DOWN_FOR seconds; one that cuts streams
        short while others are in flight gets one stream at a time."""
        replica = self._replica()
        replica.outstanding += 1
        replica.sent += 1
        deadline = time.monotonic() + self.timeout
        try:
            async with replica.stream_gate(body["stream"]):
                started = time.monotonic()
                outcome, response, sends = await self._bounded(replica, path, body, started, deadline)
                if outcome == SILENT_STREAM:
                    started = time.monotonic()
                    unstreamed = {key: value for key, value in body.items() if key != "stream_options"}
                    outcome, response, more = await self._bounded(replica, path, {**unstreamed, "stream": False},
                                                                  started, deadline)
                    sends += more
                if outcome == CUT_STREAM:
                    self._cut(replica)
                return outcome, response, time.monotonic() - started, sends
        finally:
            replica.outstanding -= 1

    async def _bounded(self, replica: Replica, path: str, body: dict[str, Any], started: float,
                       deadline: float) -> tuple[Completion | str, httpx.Response | None, int]:
        """`_send` by the attempt's deadline: httpx's timeout bounds each read, and a server that drips bytes must
        not hold a request forever."""
        try:
            return await asyncio.wait_for(self._send(replica, path, body, started), deadline - time.monotonic())
        except asyncio.TimeoutError:
            return f"no whole answer within --timeout {self.timeout:g} s", None, 1

    async def _send(self, replica: Replica, path: str, body: dict[str, Any],
                    started: float) -> tuple[Completion | str, httpx.Response | None, int]:
        """The request, and once more at once on a new connection if the first broke: most often a kept-alive
        connection the server had just closed (llama-cpp-python does after a failed stream), which says nothing
        about the server being down. The requests sent come last."""
        sends = 1
        try:
            try:
                return (*await _exchange(replica.client(), path, body, started), sends)
            except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
                sends, started = 2, time.monotonic()
                async with replica.fresh_client() as client:
                    return (*await _exchange(client, path, body, started), sends)
        except httpx.TimeoutException:
            return "timed out", None, sends
        except httpx.TransportError as failure:
            replica.down_until = time.monotonic() + DOWN_FOR
            return f"connection to {public_url(replica.url)} failed: {type(failure).__name__}: {failure}", None, sends
        except httpx.HTTPError as failure:  # a body that cannot be decoded, and the like: worth a retry
            return f"{type(failure).__name__}: {failure}"[:300], None, sends

    def _cut(self, replica: Replica) -> None:
        """A stream ended without its finish reason. Alone, the server may never send one: say so once. While other
        requests were in flight, after CUTS_BEFORE_SERIAL of them, the server is taken to interrupt a running stream
        whenever another request arrives, and gets one stream at a time."""
        if replica.outstanding == 1:
            if not replica.warned_alone:
                replica.warned_alone = True
                self.notify(f"{public_url(replica.url)} ended a stream with no finish reason while nothing else was "
                            "in flight: it is retried, never scored; if the server never sends finish reasons when "
                            "streaming, run without --stream")
            return
        replica.cuts += 1
        if replica.cuts >= CUTS_BEFORE_SERIAL and replica.one_stream is None:
            replica.one_stream = asyncio.Semaphore(1)
            self.notify(f"{public_url(replica.url)} cut {replica.cuts} streams short when other requests arrived "
                        "(llama-cpp-python's server does this unless started with --interrupt_requests False): "
                        "sending it one stream at a time; the cut answers are retried, never scored")

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
            raise RulerError(f"{public_url(self.base_url)} refused the API key (HTTP {response.status_code}); see "
                             "--api-key-env")
        try:
            models = [m for m in response.json().get("data", []) if isinstance(m, dict)]
        except (ValueError, AttributeError):
            models = []
        entry = listed_entry(self.model, models)
        if entry is None and models:
            names = ", ".join(str(m.get("id")) for m in models[:8]) + (" ..." if len(models) > 8 else "")
            self.notify(f"{self.model!r} is not among the models {public_url(self.base_url)} lists ({names}): its "
                        "window and prices are unknown here")
        self._entry = entry or {}
        return self._entry

    async def context(self) -> ServedContext:
        """What the server says it serves (llama-server `/props`, Ollama `/api/show`, LM Studio `/api/v0`, the
        `/v1/models` entry), against the model's own window."""
        entry = await self._listing()
        replica = self.replicas[0]
        return await served_context(replica.clients[0], server_root(replica.url), self.model, entry)

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
