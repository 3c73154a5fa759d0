"""RULER's metrics, exactly: lower-cased substring matches after RULER's post-processing, per sample in [0, 1].

`string_match_all`: the fraction of references found. `string_match_part`: 1 if any reference is found (NVIDIA's
definition; lm-evaluation-harness's port credits the fraction instead, which scores multi-answer QA lower).
"""

from __future__ import annotations

import re
from collections.abc import Callable

_CONTROL = re.compile(r"[\x00-\x1f]")


def postprocess(prediction: str | None) -> str:
    """RULER's evaluate.py: strip, control characters to newlines, strip again."""
    return _CONTROL.sub("\n", (prediction or "").strip()).strip()


def string_match_all(prediction: str, references: list[str]) -> float:
    found = prediction.lower()
    return sum(reference.lower() in found for reference in references) / len(references)


def string_match_part(prediction: str, references: list[str]) -> float:
    found = prediction.lower()
    return float(any(reference.lower() in found for reference in references))


METRICS: dict[str, Callable[[str, list[str]], float]] = {
    "string_match_all": string_match_all,
    "string_match_part": string_match_part,
}


def score(metric: str, prediction: str | None, references: list[str]) -> float:
    return METRICS[metric](postprocess(prediction), references)


_SHAPES = (
    (re.compile(r"^\d+$"), r"\b\d+\b"),
    (re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
     r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"),
    (re.compile(r"^[A-Z]+$"), r"\b[A-Z]+\b"),
    (re.compile(r"^[a-z]+(?:-[a-z]+)*$"), r"\b[a-z]+(?:-[a-z]+)*\b"),
)


def exact_set_precision(prediction: str | None, references: list[str]) -> float | None:
    """A diagnostic beside RULER's recall-only metrics: of the distinct answer-shaped items in the prediction (7-digit
    numbers, uuids, upper-case names, words, as the references look), the share that are references. Dumping many
    candidates scores full recall but low precision. None when the references have no single shape (QA answers)
    or the prediction holds no item of it."""
    shapes = {pattern for test, pattern in _SHAPES for reference in references if test.match(reference)}
    if len(shapes) != 1 or not all(any(test.match(r) for test, _ in _SHAPES) for r in references):
        return None
    text = postprocess(prediction)
    items = set(re.findall(shapes.pop(), text))
    if not items:
        return None
    return len(items & set(references)) / len(items)
