"""`ruler probe`: the largest prompt an endpoint accepts, for servers that do not say (llama.cpp, Ollama, many
hosted APIs): one-token requests of growing size, doubling until one is refused, then bisecting.

Every probe is the same line repeated, so each shares its beginning with the one before and a server with prefix
caching computes only the difference. Sizes are the server's own counts when it reports usage. The result is kept
per endpoint and model, and `ruler run` uses it as the window when the server reports none.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from generators.haystack import NOISE
from ruler.backends.base import Backend, Request
from ruler.tokenizers import Tokenizer, cache_dir

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
