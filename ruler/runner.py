"""Sends requests to a backend with bounded concurrency and journals every finished one at once.

Each prediction is appended (flushed and fsynced, off the event loop) the moment it completes, so a killed run
loses at most the requests in flight. Prompt texts are rebuilt from their recipes off the event loop as requests
start, so memory stays flat at any length.
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

    async def worker() -> None:
        for sample in pending:
            request = await asyncio.to_thread(request_for, sample)
            completion = await backend.generate(request)
            prediction = Prediction(
                id=sample.id, task=sample.task, length=sample.length, index=sample.index,
                prediction=completion.text, validity=classify(completion), finish_reason=completion.finish_reason,
                prompt_tokens=sample.prompt_tokens, usage=completion.usage, latency_s=round(completion.latency_s, 4),
                error=completion.error, timings={k: round(v, 4) for k, v in completion.timings.items()} or None,
            )
            await asyncio.to_thread(journal.append, prediction.to_json())
            on_done(prediction)

    await asyncio.gather(*(worker() for _ in range(max(concurrency, 1))))
