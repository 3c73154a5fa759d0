"""`ruler validate`'s rounds: the sequential validation (scoring/sequential.py) names a rung and the answers per
task it should reach; this generates those samples, sends the ones not yet answered, scores them and records
them, until the verdict is known. A resumed validation replays the answers in the journal and takes the same path
(the stakes depend on nothing else), sending only what is missing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from ruler import dataset
from ruler.lengths import format_length
from ruler.predictions import latest_predictions
from ruler.scoring.aggregate import SAID, length_states, score_samples
from ruler.scoring.sequential import OPEN, Validation
from ruler.scoring.truncation import find_cuts, mark_cuts
from ruler.tasks import TaskSpec
from ruler.types import Prediction, Sample
from ruler.workspace import Workspace


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


def summary(run: dict) -> list[str]:
    """What the terminal shows first of an adaptive validation (the run record of its manifest): the verdict, the
    decision path and what it cost."""
    record, skipped = run.get("adaptive") or {}, run.get("skipped") or {}
    verdict = (f"{SAID[decision(record)]}: claimed {format_length(run['claimed'])} | effective "
               f"{record.get('effective_said', 'unknown')}"
               + (f" | skipped: {', '.join(format_length(int(length)) for length in skipped)}" if skipped else ""))
    return [verdict, *(f"  {step}" for step in record.get("path", [])), cost(record)]


@dataclass(frozen=True)
class Stopped:
    """Why the rounds ended before the verdict: requests left in error, or a spending cap reached."""

    why: str


async def validate_in_rounds(validation: Validation, folder: dataset.DatasetFolder, workspace: Workspace,
                             tasks: list[TaskSpec], journal: Path, retry_errors: bool,
                             send: Callable[[list[Sample], list[Prediction]], Awaitable[bool]]) -> Stopped | None:
    """Play the rounds; `send` sends samples (given the answers journaled so far) and says whether sending may go
    on (False: a cap was reached). After each round, a length whose prompts the server refused or cut (judged, as
    the report does, on the answers asked for so far, so that a resumed validation sees what the first one saw)
    fails at once."""
    served_window = ((folder.manifest() or {}).get("run") or {}).get("served_window")
    asked: dict[str, Sample] = {}
    while (step := validation.next_round()) is not None:
        length, per_task = step
        rung = validation.rungs[length]
        round_plan = dataset.Plan(tasks, [length], per_task)
        samples = [sample for sample in dataset.generate(folder, workspace.builder, round_plan, build=workspace.build)
                   if sample.index >= rung.per_task]
        asked.update((sample.id, sample) for sample in samples)
        done = latest_predictions(journal)
        pending = [s for s in samples if s.id not in done or (retry_errors and done[s.id].validity == "error")]
        if pending and not await send(pending, list(done.values())):
            return Stopped("the spending cap was reached")
        answers = {id_: p for id_, p in latest_predictions(journal).items() if id_ in asked}
        scored = score_samples(list(asked.values()), mark_cuts(answers, find_cuts(answers.values(), served_window)))
        this_round = [s for s in scored if s.length == length and s.index >= rung.per_task]
        failed = [s for s in this_round if s.validity == "error"]
        if failed or len(this_round) < len(samples):
            return Stopped(f"{len(failed) or len(samples) - len(this_round)} requests at {length} ended in error")
        validation.record(length, [0.0 if s.score is None else s.score for s in this_round], per_task)
        for state in length_states(list(asked.values()), scored).values():
            if state.state == "unserved":
                validation.fail(state.length, state.why)
    return None
