"""Sends requests to a backend with bounded concurrency and journals every finished one.

A worker hands each prediction to one writer and moves on to its next request; the writer appends whatever has
finished since its last write with a single fsync (a group commit), so bursts of answers cost one disk flush, not
one each. A killed run loses at most the requests in flight and the answers not yet flushed (milliseconds' worth).
Prompt texts are rebuilt from their recipes off the event loop as requests start, so memory stays flat at any
length.

Latency under concurrency is mostly queueing at a server that serves one request at a time (llama-cpp-python, a
one-slot llama-server). So a few requests of each length are sent alone (the gate lets nothing else run while one
waits or runs) and marked, and the report takes the service time from those.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable

from ruler.backends.base import Backend, Completion, Request
from ruler.endpoints import scrub
from ruler.journal import Journal
from ruler.reasoning import split_reasoning
from ruler.scoring.validity import classify
from ruler.types import Prediction, Sample


def served_reasoning_tokens(completion: Completion) -> int | None:
    """The server's count of thinking tokens, when it reports one."""
    details = (completion.usage or {}).get("completion_tokens_details") or {}
    return details["reasoning_tokens"] if isinstance(details.get("reasoning_tokens"), int) else None


def thinking(completion: Completion) -> str:
    """All the thinking of a completion: returned apart from the text, and inline in it."""
    return "\n".join(filter(None, [completion.reasoning, split_reasoning(completion.text).reasoning]))


def to_prediction(sample: Sample, completion: Completion, reasoning_tokens: int | None,
                  alone: bool = False) -> Prediction:
    validity, note = classify(completion)
    return Prediction(
        id=sample.id, task=sample.task, length=sample.length, index=sample.index, prediction=completion.text,
        validity=validity, finish_reason=completion.finish_reason, prompt_tokens=sample.prompt_tokens,
        usage=completion.usage, latency_s=round(completion.latency_s, 4), error=scrub(note) if note else None,
        timings={k: round(v, 4) for k, v in completion.timings.items()} or None,
        reasoning=completion.reasoning or None, reasoning_tokens=reasoning_tokens, attempts=completion.attempts,
        alone=alone)


class Gate:
    """Requests run together, except those that must run alone: such a request waits until nothing is in flight,
    and nothing new starts while it waits or runs."""

    def __init__(self) -> None:
        self._changed = asyncio.Condition()
        self._in_flight = self._alone_waiting = 0
        self._alone_running = False

    @contextlib.asynccontextmanager
    async def enter(self, alone: bool) -> AsyncIterator[None]:
        async with self._changed:
            if alone:
                self._alone_waiting += 1
                try:
                    await self._changed.wait_for(lambda: self._in_flight == 0 and not self._alone_running)
                finally:
                    self._alone_waiting -= 1
                self._alone_running = True
            else:
                await self._changed.wait_for(lambda: not self._alone_waiting and not self._alone_running)
            self._in_flight += 1
        try:
            yield
        finally:
            async with self._changed:
                self._in_flight -= 1
                self._alone_running = self._alone_running and not alone
                self._changed.notify_all()


def alone_ids(pending: Iterable[tuple[str, int]], done: Iterable[Prediction], per_length: int) -> set[str]:
    """The first pending samples (id and length) of each length, up to `per_length` sent alone there (counting
    earlier runs')."""
    timed: dict[int, int] = {}
    for prediction in done:
        if prediction.alone:
            timed[prediction.length] = timed.get(prediction.length, 0) + 1
    chosen = set()
    for id_, length in pending:
        if timed.get(length, 0) < per_length:
            timed[length] = timed.get(length, 0) + 1
            chosen.add(id_)
    return chosen


async def _each(items: Iterable[Sample]) -> AsyncIterator[Sample]:
    for item in items:
        yield item


async def predict(backend: Backend, samples: Iterable[Sample] | AsyncIterator[Sample],
                  request_for: Callable[[Sample], Request], journal: Journal, concurrency: int,
                  on_done: Callable[[Prediction], None], count: Callable[[str], int],
                  admit: Callable[[Sample], bool] | None = None,
                  alone: set[str] | frozenset[str] = frozenset()) -> None:
    """Send every sample, as they come (until `admit` refuses one: then no new request starts), those in `alone`
    with nothing else in flight, and journal the answers."""
    source = samples if isinstance(samples, AsyncIterator) else _each(samples)
    taking = asyncio.Lock()
    finished: asyncio.Queue[Prediction | None] = asyncio.Queue()
    gate = Gate()

    #: the first failure of a worker (a sample that cannot be built, a refused cost check): no new request starts,
    #: those in flight finish and are journaled, then it is raised
    failures: list[Exception] = []

    async def take() -> Sample | None:
        async with taking:  # one taker at a time: an async generator runs for one caller at once
            return None if failures else await anext(source, None)
    async def answer(sample: Sample, solo: bool) -> Completion:
        """The sample's completion; a failure of this request alone (its prompt cannot be rebuilt, its answer
        cannot be read) is its `error`, never the end of the others."""
        try:
            request = await asyncio.to_thread(request_for, sample)
            async with gate.enter(solo):
                return await backend.generate(request)
        except Exception as failure:
            return Completion(failure="error", error=f"{type(failure).__name__}: {failure}"[:300])

    async def worker() -> None:
        try:
            while (sample := await take()) is not None:
                if admit and not admit(sample):
                    return
                solo = concurrency == 1 or sample.id in alone
                completion = await answer(sample, solo)
                finished.put_nowait(to_prediction(sample, completion, await thinking_tokens(completion), solo))
        except Exception as failure:
            failures.append(failure)

    async def thinking_tokens(completion: Completion) -> int | None:
        """The server's count, else the local one (a tokenizer can be slow on long thinking, or remote: a count
        that fails leaves it unknown, never the answer lost)."""
        tokens = served_reasoning_tokens(completion)
        text = thinking(completion) if tokens is None else ""
        if text:
            with contextlib.suppress(Exception):
                tokens = await asyncio.to_thread(count, text)
        return tokens

    async def writer() -> None:
        while True:
            batch = [await finished.get()]
            while not finished.empty():
                batch.append(finished.get_nowait())
            done = [prediction for prediction in batch if prediction is not None]
            if done:
                await asyncio.to_thread(journal.extend, [prediction.to_json() for prediction in done])
                for prediction in done:
                    on_done(prediction)
            if None in batch:
                return

    writing = asyncio.create_task(writer())
    sending = asyncio.gather(*(worker() for _ in range(max(concurrency, 1))))
    try:
        await asyncio.wait([writing, sending], return_when=asyncio.FIRST_COMPLETED)
        if writing.done():  # the writer ends only when told to: it failed, so nothing more may be sent
            writing.result()
        await sending
    finally:
        if not sending.done():
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
        if not writing.done():
            finished.put_nowait(None)
            await asyncio.shield(writing)
        await source.aclose()  # every worker has ended: the samples not taken (a cap, a failure) are not built
    if failures:
        raise failures[0]
