"""Synthetic task generators, one module per task kind, registered by name.

Adding a kind means one module with `generate(args, length, index, rng, data) -> Draft` and one line below;
a variant of an existing kind needs only a YAML entry in configs/.
"""

from __future__ import annotations

import difflib
import importlib

from generators.base import Generator
from ruler.errors import RulerError

GENERATORS = {
    "niah": "generators.niah",
    "variable_tracking": "generators.variable_tracking",
    "common_words": "generators.common_words",
    "freq_words": "generators.freq_words",
    "qa": "generators.qa",
}


def get_generator(kind: str) -> Generator:
    """The `generate` function of a task kind, imported on first use."""
    if kind not in GENERATORS:
        close = difflib.get_close_matches(kind, GENERATORS, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else f" (known: {', '.join(GENERATORS)})"
        raise RulerError(f"unknown generator {kind!r}{hint}")
    return importlib.import_module(GENERATORS[kind]).generate
