"""`ruler validate`'s rounds: the sequential validation (scoring/sequential.py) names a rung and the answers per
task it should reach; this generates those samples, sends the ones not yet answered, scores them and records
them, until the verdict is known. A resumed validation replays the answers in the journal and takes the same path
(the stakes depend on nothing else), sending only what is missing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from ruler import dataset
from ruler.predictions import latest_predictions
from ruler.samples import SampleBuilder
from ruler.scoring.aggregate import score_samples
from ruler.scoring.sequential import OPEN, Validation
from ruler.tasks import TaskSpec
from ruler.types import Prediction, Sample


def decision(record: dict) -> str:
    """The decision an adaptive validation recorded, in the words of Verdict.decision."""
    verdict = record.get("verdict", OPEN)
    return "undecided" if verdict == OPEN else verdict


def cost(record: dict) -> str:
    """What an adaptive validation sent, against the fixed design it replaces."""
    requests, fixed = record.get("requests", 0), record.get("fixed_requests")
    return (f"{requests} requests, {requests / (fixed or 1):.0%} of the fixed design of {record.get('fixed_samples')} "
            f"samples a task and length ({fixed}), and {record.get('tokens', 0):,} of its "
            f"{record.get('fixed_tokens', 0):,} context tokens; wrong verdicts at most {record.get('alpha', 0.05):.0%}"
            + (f"; stopped: {record['stopped']}" if record.get("stopped") else ""))


@dataclass(frozen=True)
class Stopped:
    """Why the rounds ended before the verdict: requests left in error, or a spending cap reached."""

    why: str


async def validate_in_rounds(validation: Validation, folder: dataset.DatasetFolder, builder: SampleBuilder,
                             tasks: list[TaskSpec], journal: Path, retry_errors: bool,
                             send: Callable[[list[Sample], list[Prediction]], Awaitable[bool]]) -> Stopped | None:
    """Play the rounds; `send` sends samples (given the answers journaled so far) and says whether sending may go
    on (False: a cap was reached)."""
    while (step := validation.next_round()) is not None:
        length, per_task = step
        rung = validation.rungs[length]
        samples = [sample for sample in dataset.generate(folder, builder, dataset.Plan(tasks, [length], per_task))
                   if sample.index >= rung.per_task]
        done = latest_predictions(journal)
        pending = [s for s in samples if s.id not in done or (retry_errors and done[s.id].validity == "error")]
        if pending and not await send(pending, list(done.values())):
            return Stopped("the spending cap was reached")
        scored = score_samples(samples, latest_predictions(journal))
        failed = [s for s in scored if s.validity == "error"]
        if failed or len(scored) < len(samples):
            return Stopped(f"{len(failed) or len(samples) - len(scored)} requests at {length} ended in error")
        # an answer the server refused or cut counts against its length, which it did not serve whole
        validation.record(length, [0.0 if s.score is None else s.score for s in scored], per_task)
    return None
