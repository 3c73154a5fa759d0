"""Everything a report shows, computed once from a run folder."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ruler.dataset import DatasetFolder
from ruler.errors import RulerError
from ruler.predictions import latest_predictions
from ruler.report.telemetry import LengthTelemetry, telemetry
from ruler.scoring.aggregate import (
    RULER_THRESHOLD,
    Cell,
    EffectiveLength,
    LengthMean,
    ScoredSample,
    Verdict,
    accepted_length,
    cells,
    effective_lengths,
    length_means,
    score_samples,
    weighted_averages,
)


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

    @property
    def wavg(self) -> tuple[float, float] | None:
        return weighted_averages([m.mean for m in self.means]) if self.means else None

    def cell(self, task: str, length: int) -> Cell | None:
        return next((c for c in self.cells if c.task == task and c.length == length), None)

    def to_json(self) -> dict[str, Any]:
        inc, dec = self.wavg or (None, None)
        return {
            "model": self.manifest.get("run", {}).get("model"), "run": self.manifest.get("run"),
            "tokenizer": self.manifest.get("tokenizer"), "tasks": self.tasks, "lengths": self.lengths,
            "verdict": {"line": self.verdict.line(), "claimed": self.verdict.claimed,
                        "accepted": self.verdict.accepted, "probed_window": self.verdict.probed,
                        "holds": self.verdict.holds()},
            "effective_lengths": [{**asdict(e), "decided": e.decided, "text": e.describe(self.lengths)}
                                  for e in self.effective],
            "length_means": [asdict(m) for m in self.means],
            "wavg": {"inc": inc, "dec": dec},
            "cells": [asdict(c) for c in self.cells],
            "validity": dict(Counter(s.validity for s in self.scored)),
            "telemetry": [asdict(row) for row in self.telemetry],
        }


def load(root: Path, threshold: float = RULER_THRESHOLD, claimed: int | None = None) -> RunResults:
    """Read and score a run folder; `claimed` defaults to the claim the run was given, else the window the backend
    reported."""
    if not root.is_dir():
        raise RulerError(f"no such run folder: {str(root)!r}")
    folder = DatasetFolder(root)
    manifest = folder.manifest()
    if manifest is None:
        raise RulerError(f"{root} is not a ruler run folder (no manifest.json)")
    predictions = latest_predictions(root / "predictions.jsonl")
    if not predictions:
        raise RulerError(f"{root} holds no predictions yet; run `ruler run` first")
    samples = [s for s in folder.samples().values() if s.id in predictions]
    scored = score_samples(samples, predictions)
    tasks = list(dict.fromkeys(s.task for s in scored))
    lengths = sorted({s.length for s in scored})
    means = length_means(scored)
    effective = effective_lengths(means, threshold)
    if not effective:
        counts = Counter(s.validity for s in scored)
        raise NothingToScore(f"{root} has no answers to score (validity: "
                             + ", ".join(f"{name} {count}" for name, count in counts.items()) + ")")
    run = manifest.get("run") or {}
    claimed = claimed or run.get("claimed") or run.get("window")
    verdict = Verdict(claimed, accepted_length(scored), effective[0], lengths, run.get("probed_window"))
    return RunResults(manifest, scored, cells(scored), means, effective, verdict, tasks, lengths,
                      telemetry(predictions.values()))
