"""`ruler probe`: what an endpoint really serves. First what the server says (its configured context against the
model's trained one); then one-token requests of growing size, doubling until one is refused or cut, and bisecting.

Only a context-length refusal (`overflow`) counts as refused: transient failures are retried like any request, and
a request that still fails (an auth error, a server that keeps failing) ends the probe with its error rather than
with a window that is not one. A refusal that states the window (vLLM, OpenAI, llama.cpp phrasings) settles it.
A prompt the server answers but reports fewer tokens for than were sent was cut (Ollama keeps the last `num_ctx`
tokens): the probe then finds the largest prompt served whole, and says that the server truncates.

Every probe is the same line repeated, so each shares its beginning with the one before and a server with prefix
caching computes only the difference. The result, and how it was obtained, is kept per endpoint and model; `ruler
run` skips only the lengths known not to be served whole.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from generators.haystack import NOISE
from ruler.backends.base import Backend, BackendOptions, Request, ServedContext
from ruler.backends.openai_compat import OpenAICompatible
from ruler.endpoints import api_base, api_key_from_env, public_url
from ruler.errors import RulerError
from ruler.files import write_atomic
from ruler.scoring.truncation import MARGIN
from ruler.tokenizers import Tokenizer, cache_dir, load_tokenizer

#: bisection stops when the served and unserved sizes are this close (a share of the served size, or tokens)
PRECISION, MIN_STEP = 0.01, 64
#: once the first prompt served whole has set the ratio of the server's counts to the local ones, a probe counted
#: this much short of it (a share, plus a few tokens) was cut: every probe is the same line repeated, so the ratio
#: barely moves
TOLERANCE, SLACK = 0.01, 8


@dataclass(frozen=True)
class ProbeResult:
    #: prompt tokens of the largest prompt the endpoint answered whole (with one generated token)
    accepted: int
    #: prompt tokens of the smallest prompt it refused for its length; None when none was
    refused: int | None
    requests: int
    #: why the refused prompt was refused
    reason: str | None = None
    #: the window the server stated in a refusal
    stated: int | None = None
    #: prompt tokens of the smallest prompt the server answered but cut, and how many it said it kept
    cut: int | None = None
    kept: int | None = None
    #: how the window was found: `stated` (the server's refusal said it), `bisection`, or `limit` (nothing up to
    #: --max was refused or cut)
    method: str = "bisection"
    probed_at: str = ""

    @property
    def window(self) -> int:
        """The window this implies: the stated one, else the largest prompt served whole plus its token."""
        return self.stated or self.accepted + 1

    @property
    def limit(self) -> int | None:
        """The largest length (prompt + answer) not known to be refused or cut; None when nothing was."""
        if self.stated:
            return self.stated
        unserved = [size for size in (self.refused, self.cut) if size is not None]
        return min(unserved) if unserved else None

    def describe(self, base_url: str, largest: int) -> str:
        if self.method == "stated":
            found = f"its refusal states a window of {self.stated:,} tokens"
        elif self.cut is not None and (self.refused is None or self.cut <= self.refused):
            found = (f"it TRUNCATES: a {self.cut:,}-token prompt was answered as {self.kept:,} tokens, without an "
                     "error; ruler run scores such answers as `cut`, never as the model's")
        elif self.refused is not None:
            found = f"it refused {self.refused:,} ({self.reason})"
        else:
            found = f"nothing up to {largest:,} was refused or cut"
        return (f"{base_url} serves prompts of {self.accepted:,} tokens whole (+1 generated); {found}; window "
                f"{self.window:,} after {self.requests} requests ({self.method}), kept for `ruler run`")


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


@dataclass
class _Outcome:
    """One probe: served whole, refused, or cut (answered with a smaller prompt count than sent)."""

    whole: bool
    size: int
    refused: bool = False
    stated: int | None = None
    kept: int | None = None
    reason: str | None = None


class _Prober:
    def __init__(self, backend: Backend, tokenizer: Tokenizer) -> None:
        self.backend, self.prompts, self.requests = backend, _Prompts(tokenizer), 0
        #: the server's count over the local one, set by the first prompt served whole
        self.ratio: float | None = None

    async def send(self, lines: int) -> _Outcome:
        text, counted = self.prompts.make(lines)
        self.requests += 1
        completion = await self.backend.generate(Request(f"probe/{lines}", text, 1))
        if completion.failure == "overflow":
            return _Outcome(False, counted, refused=True, stated=completion.stated_window, reason=completion.error)
        if completion.failure:
            raise RulerError(f"a probe of {counted:,} tokens failed ({completion.failure}): {completion.error}")
        served = (completion.usage or {}).get("prompt_tokens")
        if not isinstance(served, int):
            return _Outcome(True, counted)
        if self.ratio is None and served >= counted * (1 - MARGIN):
            self.ratio = served / counted
        if served < counted * (self.ratio or 1.0) * (1 - TOLERANCE) - SLACK:
            return _Outcome(False, counted, kept=served)
        return _Outcome(True, served)


async def probe(backend: Backend, tokenizer: Tokenizer, start: int, limit: int) -> ProbeResult:
    """Double from `start` tokens until a prompt is refused or cut (or `limit` is served), then bisect between the
    last prompt served whole and the first that was not; a stated window ends the search."""
    prober = _Prober(backend, tokenizer)
    top = prober.prompts.lines(limit)
    low, low_size, high = 0, 0, prober.prompts.lines(start)
    while True:
        outcome = await prober.send(min(high, top))
        if not outcome.whole:
            break
        low, low_size = min(high, top), outcome.size
        if low >= top:
            return _result(prober, low_size, method="limit")
        high *= 2
    first_unserved = outcome
    if outcome.stated:  # confirmed by a prompt within a line of the stated window, when none was sent yet
        near = prober.prompts.lines(outcome.stated - 1 - prober.prompts.per_line)
        confirmed = await prober.send(near) if near > low else _Outcome(True, low_size)
        if confirmed.whole:
            return _result(prober, confirmed.size, outcome, method="stated")
    unserved = {"refused": outcome} if outcome.refused else {"cut": outcome}
    while high - low > 1 and outcome.size - low_size > max(MIN_STEP, PRECISION * low_size):
        middle = (low + high) // 2
        tried = await prober.send(middle)
        if tried.whole:
            low, low_size = middle, tried.size
        else:
            high, outcome = middle, tried
            unserved["refused" if tried.refused else "cut"] = tried
    stated = next((o.stated for o in (first_unserved, *unserved.values()) if o.stated), None)
    return _result(prober, low_size, unserved.get("refused"), unserved.get("cut"), stated=stated)


def _result(prober: _Prober, accepted: int, refused: _Outcome | None = None, cut: _Outcome | None = None,
            method: str = "bisection", stated: int | None = None) -> ProbeResult:
    return ProbeResult(accepted, refused.size if refused else None, prober.requests,
                       refused.reason if refused else None, stated or (refused.stated if refused else None),
                       cut.size if cut else None, cut.kept if cut else None, method,
                       time.strftime("%Y-%m-%dT%H:%M:%S%z"))


def probe_key(base_url: str, model: str) -> str:
    """What a probe is kept under: the endpoint, without credentials, and the model."""
    return f"{public_url(api_base(base_url))} {model}"


def probe_endpoint(model: str, base_url: str, api_key_env: str | None, tokenizer: str | None, start: int,
                   limit: int, timeout: float, max_retries: int = 6) -> str:
    """Say what a server is configured to serve, probe what it serves, remember it for later runs."""
    loaded = load_tokenizer(tokenizer or model)
    notes: list[str] = []
    backend = OpenAICompatible.create(model, BackendOptions(base_url=[base_url], api_key=api_key_from_env(api_key_env),
                                                            timeout=timeout, max_retries=max_retries, concurrency=1,
                                                            notify=notes.append))

    async def go() -> tuple[ServedContext, ProbeResult]:
        try:
            context = await backend.context()
            return context, await probe(backend, loaded, start, limit)
        finally:
            await backend.aclose()

    context, result = asyncio.run(go())
    if result.accepted == 0:
        raise RulerError(f"{base_url} served no probe whole, the smallest of {result.refused or result.cut} "
                         f"tokens: {result.reason or f'counted as {result.kept} (cut, or a wrong --tokenizer)'}")
    remember(probe_key(base_url, model), result)
    said = context.describe()
    return "\n".join([*notes, *([said] if said else []), result.describe(base_url, limit)])


def _store() -> Path:
    return cache_dir() / "probes.json"


def _known() -> dict:
    path = _store()
    if not path.is_file():
        return {}
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        raise RulerError(f"{path} is damaged; delete it and run `ruler probe` again") from None
    return known if isinstance(known, dict) else {}


def remember(key: str, result: ProbeResult) -> None:
    write_atomic(_store(), json.dumps({**_known(), key: asdict(result)}, indent=2) + "\n")


def recall(key: str) -> ProbeResult | None:
    """The probe kept for `key`; None for none, and for one kept before probes recorded how they were obtained
    (those took transient errors for refusals)."""
    stored = _known().get(key)
    if not isinstance(stored, dict) or "method" not in stored:
        return None
    names = {f.name for f in fields(ProbeResult)}
    try:
        return ProbeResult(**{name: value for name, value in stored.items() if name in names})
    except TypeError:
        raise RulerError(f"{_store()} holds a damaged probe for {key}; run `ruler probe` again") from None
