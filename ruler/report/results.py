"""Everything a report shows, computed once from a run folder."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ruler.dataset import DatasetFolder
from ruler.errors import RulerError
from ruler.lengths import format_length
from ruler.predictions import latest_predictions
from ruler.report.telemetry import LengthTelemetry, telemetry
from ruler.scoring.aggregate import (
    RULER_THRESHOLD,
    Cell,
    EffectiveLength,
    LengthMean,
    LengthState,
    ScoredSample,
    Verdict,
    accepted_length,
    cells,
    effective_lengths,
    length_means,
    length_states,
    score_samples,
    weighted_averages,
)
from ruler.scoring.stats import samples_to_decide
from ruler.scoring.truncation import Truncation, find_cuts, mark_cuts, summarise
from ruler.types import Prediction, Sample


class NothingToScore(RulerError):
    """Every prediction of the run failed (overflow, error): there is no score to report."""


@dataclass
class RunResults:
    manifest: dict[str, Any]
    scored: list[ScoredSample]
    cells: list[Cell]
    means: list[LengthMean]
    effective: list[EffectiveLength]
    verdict: Verdict
    tasks: list[str]
    lengths: list[int]
    telemetry: list[LengthTelemetry] = field(default_factory=list)
    truncation: Truncation | None = None
    #: the run folder it was read from
    folder: Path | None = None

    @property
    def wavg(self) -> tuple[float, float] | None:
        return weighted_averages([m.mean for m in self.means]) if self.means else None

    def cell(self, task: str, length: int) -> Cell | None:
        return next((c for c in self.cells if c.task == task and c.length == length), None)

    def undecided_by_width(self) -> str:
        """Why a claim is not shown to hold when no length fails for certain: the first length whose interval
        straddles the bar, and about how many samples would decide it."""
        bar = self.verdict.effective.bar
        straddling = next((m for m in self.means if m.low < bar <= m.high), None)
        if straddling is None:
            return "no length fails for certain; more --samples narrow the intervals"
        n = min(cell.n for task in self.tasks if (cell := self.cell(task, straddling.length)) and cell.n)
        needed = samples_to_decide(straddling.mean, n, straddling.tasks, bar)
        decide = f"about --samples {needed} would decide it if the mean held" if needed else \
            "the mean sits on the bar, so no sample count decides it"
        return (f"no length fails for certain: at {format_length(straddling.length)} the mean {straddling.mean:.1f} "
                f"[{straddling.low:.1f}, {straddling.high:.1f}] straddles {bar:g} with {n} samples per task; {decide}")

    def to_json(self) -> dict[str, Any]:
        inc, dec = self.wavg or (None, None)
        return {
            "model": self.manifest.get("run", {}).get("model"), "run": self.manifest.get("run"),
            "tokenizer": self.manifest.get("tokenizer"), "tasks": self.tasks, "lengths": self.lengths,
            "verdict": {"line": self.verdict.line(), "claimed": self.verdict.claimed,
                        "accepted": self.verdict.accepted, "probed_window": self.verdict.probed,
                        "holds": self.verdict.holds(), "decision": self.verdict.decision(),
                        "lengths": {str(length): asdict(state) for length, state in self.verdict.states.items()},
                        "truncation": asdict(self.truncation) if self.truncation else None},
            "effective_lengths": [{**asdict(e), "decided": e.decided, "text": e.describe(self.lengths)}
                                  for e in self.effective],
            "length_means": [asdict(m) for m in self.means],
            "wavg": {"inc": inc, "dec": dec},
            "cells": [asdict(c) for c in self.cells],
            "validity": dict(Counter(s.validity for s in self.scored)),
            "telemetry": [asdict(row) for row in self.telemetry],
        }


def _planned(samples: dict[str, Sample], predictions: dict[str, Prediction],
             plan: dict[str, Any] | None) -> dict[str, Sample]:
    """The samples a run folder speaks for: every one answered, and every one the last run planned to send (those
    it did not send are pending). Samples generated but never part of a run's plan (a dry run of more tasks, a
    larger --samples earlier) are not."""
    def in_plan(sample: Sample) -> bool:
        if not plan:
            return False
        # samples a task: one count for every length, or one per length (what adaptive validation asked)
        counts = plan["samples"]
        asked = counts if isinstance(counts, int) else counts.get(str(sample.length), 0)
        return sample.task in plan["tasks"] and sample.length in plan["lengths"] and sample.index < asked

    return {id_: sample for id_, sample in samples.items() if id_ in predictions or in_plan(sample)}


def load(root: Path, threshold: float = RULER_THRESHOLD, claimed: int | None = None) -> RunResults:
    """Read and score a run folder; `claimed` defaults to the claim the run was given, else the window the backend
    reported. Answers to prompts the server cut are marked `cut` before anything is scored."""
    if not root.is_dir():
        raise RulerError(f"no such run folder: {str(root)!r}")
    folder = DatasetFolder(root)
    manifest = folder.manifest()
    if manifest is None:
        raise RulerError(f"{root} is not a ruler run folder (no manifest.json)")
    predictions = latest_predictions(root / "predictions.jsonl")
    if not predictions:
        raise RulerError(f"{root} holds no predictions yet; run `ruler run` first")
    run = manifest.get("run") or {}
    planned = _planned(folder.samples(), predictions, run.get("plan"))
    cuts = find_cuts(predictions.values(), run.get("served_window"))
    predictions = mark_cuts(predictions, cuts)
    truncation = summarise(cuts, planned, predictions, run.get("fix"))
    scored = score_samples([s for s in planned.values() if s.id in predictions], predictions)
    skipped = {int(length): why for length, why in (run.get("skipped") or {}).items()}
    states = {**length_states(list(planned.values()), scored),
              **{length: LengthState(length, "unserved", f"skipped: {why}") for length, why in skipped.items()}}
    tasks = list(dict.fromkeys(s.task for s in scored))
    lengths = sorted({s.length for s in scored})
    means = length_means(scored)
    effective = effective_lengths(means, threshold, states=states)
    if not effective:
        counts = Counter(s.validity for s in scored)
        raise NothingToScore(f"{root} has no answers to score (validity: "
                             + ", ".join(f"{name} {count}" for name, count in counts.items()) + ")")
    claimed = claimed or run.get("claimed") or run.get("window")
    verdict = Verdict(claimed, accepted_length(scored), effective[0], lengths, run.get("probed_window"),
                      {length: state for length, state in states.items() if state.state != "complete"})
    return RunResults(manifest, scored, cells(scored), means, effective, verdict, tasks, lengths,
                      telemetry(predictions.values()), truncation, root)
