"""Sends requests to a backend with bounded concurrency and journals every finished one.

A worker hands each prediction to one writer and moves on to its next request; the writer appends whatever has
finished since its last write with a single fsync (a group commit), so bursts of answers cost one disk flush, not
one each. A killed run loses at most the requests in flight and the answers not yet flushed (milliseconds' worth).
Prompt texts are rebuilt from their recipes off the event loop as requests start, so memory stays flat at any
length.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from ruler.backends.base import Backend, Request
from ruler.journal import Journal
from ruler.scoring.validity import classify
from ruler.types import Prediction, Sample


async def predict(backend: Backend, samples: Iterable[Sample], request_for: Callable[[Sample], Request],
                  journal: Journal, concurrency: int, on_done: Callable[[Prediction], None]) -> None:
    pending = iter(samples)
    finished: asyncio.Queue[Prediction | None] = asyncio.Queue()

    async def worker() -> None:
        for sample in pending:
            request = await asyncio.to_thread(request_for, sample)
            completion = await backend.generate(request)
            finished.put_nowait(Prediction(
                id=sample.id, task=sample.task, length=sample.length, index=sample.index,
                prediction=completion.text, validity=classify(completion), finish_reason=completion.finish_reason,
                prompt_tokens=sample.prompt_tokens, usage=completion.usage, latency_s=round(completion.latency_s, 4),
                error=completion.error, timings={k: round(v, 4) for k, v in completion.timings.items()} or None,
            ))

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
    try:
        await asyncio.gather(*(worker() for _ in range(max(concurrency, 1))))
    finally:
        finished.put_nowait(None)
        await asyncio.shield(writing)
