"""Generation on every core: the samples a folder lacks are built in worker processes, each opening its own
workspace from the same options, and handed back in plan order. Every sample is a function of its key alone
(seed, task, length, index), so the output is the one a single process makes, whatever the number of workers.

Starting a worker costs seconds (it imports its libraries, loads the tokenizer and checks counting by
construction for each task) while a 1M-token sample costs a tenth of a second or so, so by default processes are
used only when there is a lot to build: POOL_MIN_TOKENS tokens of prompts (64 1M-token samples, or 512 at 128K).
`--workers N` sets the number outright."""

from __future__ import annotations

import os
import signal
from collections import deque
from collections.abc import Iterator
from itertools import islice
from multiprocessing import get_context
from multiprocessing.pool import AsyncResult, Pool

from ruler.samples import SampleBuilder
from ruler.tasks import TaskSpec
from ruler.types import Sample
from ruler.workspace import Workspace, WorkspaceRecipe

POOL_MIN_TOKENS = 64 * 2**20
#: samples each worker may have queued beyond the one it builds: enough to keep it busy, few to waste on a stop
QUEUED = 1

_workspace: Workspace | None = None


def _start(recipe: WorkspaceRecipe) -> None:
    global _workspace
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the run's to handle: it ends the workers itself
    _workspace = recipe.open()


def _build(spec: TaskSpec, length: int, index: int) -> Sample:
    assert _workspace is not None, "a worker builds only after _start"
    return _workspace.builder.build(spec, length, index)[0]


def cores() -> int:
    """The cores this process may run on (a container's share, not the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class Workers:
    """Builds samples in plan order, in this process or in `count` worker processes (None: every core, when there
    is enough to build). Without a recipe (a tokenizer only this process can use: the server's) it builds here."""

    def __init__(self, builder: SampleBuilder, recipe: WorkspaceRecipe | None = None, count: int | None = None):
        self.builder, self.recipe, self.count = builder, recipe, count

    def processes(self, keys: list[tuple[TaskSpec, int, int]]) -> int:
        if self.recipe is None or not keys:
            return 1
        if self.count is not None:
            return min(self.count, len(keys))
        return min(cores(), len(keys)) if sum(length for _, length, _ in keys) >= POOL_MIN_TOKENS else 1

    def build(self, keys: list[tuple[TaskSpec, int, int]]) -> Iterator[Sample]:
        processes = self.processes(keys)
        if processes == 1:
            yield from (self.builder.build(*key)[0] for key in keys)
            return
        pool = start_pool(processes, self.recipe)
        try:
            remaining = iter(keys)
            window: deque[AsyncResult[Sample]] = deque(pool.apply_async(_build, key)
                                                       for key in islice(remaining, processes * (1 + QUEUED)))
            while window:
                sample = window.popleft().get()
                following = next(remaining, None)
                if following is not None:
                    window.append(pool.apply_async(_build, following))
                yield sample
        finally:  # done, failed or stopped early: what is queued or being built is dropped at once
            pool.terminate()
            pool.join()


def start_pool(processes: int, recipe: WorkspaceRecipe) -> Pool:
    """Worker processes, spawned: a fork of a process whose tokenizer runs threads can deadlock."""
    return get_context("spawn").Pool(processes, initializer=_start, initargs=(recipe,))
