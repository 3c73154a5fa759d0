"""`ruler probe`: the largest prompt an endpoint accepts, for servers that do not say (llama.cpp, Ollama, many
hosted APIs): one-token requests of growing size, doubling until one is refused, then bisecting.

Every probe is the same line repeated, so each shares its beginning with the one before and a server with prefix
caching computes only the difference. Sizes are the server's own counts when it reports usage. The result is kept
per endpoint and model, and `ruler run` uses it as the window when the server reports none.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from generators.haystack import NOISE
from ruler.backends.base import Backend, BackendOptions, Request
from ruler.backends.openai_compat import OpenAICompatible, api_base, api_key_from_env, public_url
from ruler.errors import RulerError
from ruler.tokenizers import Tokenizer, cache_dir, load_tokenizer

#: bisection stops when the accepted and refused sizes are this close (a share of the accepted size, or tokens)
PRECISION, MIN_STEP = 0.01, 64


@dataclass(frozen=True)
class ProbeResult:
    #: prompt tokens of the largest prompt the endpoint answered (with one generated token)
    accepted: int
    #: prompt tokens of the smallest prompt it refused; None when it took everything up to the limit
    refused: int | None
    requests: int
    #: why the refused prompt was refused
    reason: str | None = None

    @property
    def window(self) -> int:
        """The window this implies: the accepted prompt plus its generated token."""
        return self.accepted + 1


class _Prompts:
    """Prompts of n copies of the noise line, with the exact token count of each."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.per_line = tokenizer.count((NOISE + "\n") * 64) / 64

    def lines(self, tokens: int) -> int:
        return max(1, int(tokens / self.per_line))

    def make(self, lines: int) -> tuple[str, int]:
        text = (NOISE + "\n") * lines
        return text, self.tokenizer.count(text) + self.tokenizer.added_tokens


async def probe(backend: Backend, tokenizer: Tokenizer, start: int, limit: int) -> ProbeResult:
    """Double from `start` tokens until a prompt is refused (or `limit` is taken), then bisect between the last
    accepted and the first refused size."""
    prompts = _Prompts(tokenizer)
    requests, reason = 0, None

    async def accepts(lines: int) -> tuple[bool, int]:
        nonlocal requests, reason
        text, counted = prompts.make(lines)
        requests += 1
        completion = await backend.generate(Request(f"probe/{lines}", text, 1))
        served = (completion.usage or {}).get("prompt_tokens")
        if completion.failure:
            reason = completion.error
            return False, counted
        return True, served if isinstance(served, int) else counted

    top = prompts.lines(limit)
    low, low_size, high, high_size = 0, 0, prompts.lines(start), 0
    while True:
        ok, size = await accepts(min(high, top))
        if not ok:
            high_size = size
            break
        low, low_size = min(high, top), size
        if low >= top:
            return ProbeResult(low_size, None, requests)
        high *= 2
    while high - low > 1 and high_size - low_size > max(MIN_STEP, PRECISION * low_size):
        middle = (low + high) // 2
        ok, size = await accepts(middle)
        if ok:
            low, low_size = middle, size
        else:
            high, high_size = middle, size
    return ProbeResult(low_size, high_size, requests, reason)


def probe_key(base_url: str, model: str) -> str:
    """What a probe is kept under: the endpoint, without credentials, and the model."""
    return f"{public_url(api_base(base_url))} {model}"


def probe_endpoint(model: str, base_url: str, api_key_env: str | None, tokenizer: str | None, start: int,
                   limit: int, timeout: float) -> str:
    """Probe a server's window, remember it for later runs, and say what was found."""
    loaded = load_tokenizer(tokenizer or model)
    backend = OpenAICompatible.create(model, BackendOptions(base_url=[base_url], api_key=api_key_from_env(api_key_env),
                                                            timeout=timeout, max_retries=2, concurrency=1))

    async def go() -> ProbeResult:
        try:
            await backend.context_window()
            return await probe(backend, loaded, start, limit)
        finally:
            await backend.aclose()

    result = asyncio.run(go())
    if result.accepted == 0:
        raise RulerError(f"{base_url} refused every probe, the smallest of {result.refused} tokens: {result.reason}")
    remember(probe_key(base_url, model), result)
    refused = (f", refused {result.refused:,} ({result.reason})" if result.refused is not None
               else f", the limit {limit:,}")
    return (f"{base_url} accepts prompts of {result.accepted:,} tokens (+1 generated){refused}; window "
            f"{result.window:,} after {result.requests} requests, kept for `ruler run`")


def _store() -> Path:
    return cache_dir() / "probes.json"


def remember(key: str, result: ProbeResult) -> None:
    path = _store()
    known = json.loads(path.read_text()) if path.is_file() else {}
    known[key] = asdict(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(known, indent=2) + "\n")


def recall(key: str) -> ProbeResult | None:
    path = _store()
    known = json.loads(path.read_text()) if path.is_file() else {}
    return ProbeResult(**known[key]) if key in known else None
