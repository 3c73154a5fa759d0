"""A run's predictions journal, read back."""

from __future__ import annotations

from pathlib import Path

from ruler.journal import read_jsonl
from ruler.types import Prediction


def latest_predictions(path: Path) -> dict[str, Prediction]:
    """The journal's last word on each id (a retried error is superseded by its retry)."""
    return {record["id"]: Prediction.from_json(record) for record in read_jsonl(path)}
