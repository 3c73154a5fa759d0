"""Generation streamed into sending: samples are built in a thread a few ahead of the requests that take them, so
the first request leaves as soon as its sample exists and the rest are built while answers are awaited.

The thread checks, before building each item, whether there is room and whether the taker has stopped (a
spending cap, a failure): a run that stops early waits only for the item being built, never for the rest, and the
thread has ended (its appends to the folder with it) before the run lets go of its folder."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from typing import TypeVar

T = TypeVar("T")
#: samples built ahead of the senders: enough to keep them busy, few enough that a stop wastes little
AHEAD = 4
_END = object()


async def built_ahead(items: Iterator[T], ahead: int = AHEAD) -> AsyncIterator[T]:
    """`items`, produced in a thread at most `ahead` before they are taken; an error raised while producing them
    is raised here, where the next item was awaited."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[object, BaseException | None]] = asyncio.Queue()
    room, stop = threading.Semaphore(ahead), threading.Event()

    def hand(item: object, error: BaseException | None = None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is taking any more
            loop.call_soon_threadsafe(queue.put_nowait, (item, error))

    def produce() -> None:
        try:
            while True:
                room.acquire()
                if stop.is_set():
                    return
                item = next(items, _END)
                hand(item)
                if item is _END:
                    return
        except BaseException as error:  # handed to the taker, which raises it
            hand(_END, error)
        finally:
            close = getattr(items, "close", None)
            if close:  # a generator's own cleanup (its open journal) runs in its thread
                close()

    thread = threading.Thread(target=produce, name="ruler-generate", daemon=True)
    thread.start()
    try:
        while True:
            item, error = await queue.get()
            if error is not None:
                raise error
            if item is _END:
                return
            room.release()
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        room.release(ahead + 1)  # whatever the thread waits for, it wakes, sees the stop and ends
        await asyncio.to_thread(thread.join)
