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
