"""Haystacks as streams of units with token costs, and the Draft shared by every task that hides lines in one.

Three haystacks, as in RULER: `noise` (one fixed paragraph repeated, a line each), `essay` (a corpus's words,
repeated when exhausted, needles at sentence starts) and `needle` (every line a distractor needle). Costs come from
the counter: a repeating stream is tokenized once per tokenizer (and cached on disk), a drawn stream in batches of
short lines as it grows. No prompt is ever tokenized to find its size.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from generators.base import Context, Counter, Draft

NOISE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
#: the noise haystack's one unit, as a shared list so its token counts are looked up, not re-keyed, per sample
NOISE_LINES = [NOISE]


class Periodic:
    """Units repeated without end (essay words, noise lines), with exact in-context costs for one period."""

    def __init__(self, units: list[str], sep: str, counter: Counter) -> None:
        self.units, self.sep = units, sep
        self._cum = counter.corpus_costs(units, sep)
        self._period = int(self._cum[-1])

    def cost(self, n: int) -> int:
        laps, rest = divmod(n, len(self.units))
        return laps * self._period + int(self._cum[rest])

    def take(self, n: int) -> list[str]:
        laps, rest = divmod(n, len(self.units))
        return self.units * laps + self.units[:rest]

    def unit(self, i: int) -> str:
        return self.units[i % len(self.units)]


class Drawn:
    """Units drawn one at a time from a seeded maker (distractor needles); costed in batches as the stream grows.

    The first EXACT_UNITS are counted one by one; beyond them each unit is estimated at their mean, so a 1M-token
    haystack of distractors is not tokenized twice (once in lines, once to verify). The estimate is off by the
    square root of the units times their spread (a few hundred tokens at 1M, against a 5,000-token tolerance);
    the verifying tokenization corrects what is left, as it does for every prompt."""

    EXACT_UNITS = 2048

    def __init__(self, make: Callable[[], str], sep: str, counter: Counter) -> None:
        self.sep, self._make, self._counter = sep, make, counter
        self.units: list[str] = []
        self._cum = np.zeros(1, dtype=np.float64)

    def _grow(self, n: int) -> None:
        if n <= len(self.units):
            return
        new = [self._make() for _ in range(max(n - len(self.units), len(self.units) // 16, 64))]
        exact = max(0, min(len(new), self.EXACT_UNITS - len(self.units)))
        counts = np.asarray(self._counter.count_batch([unit + self.sep for unit in new[:exact]]), dtype=np.float64)
        if exact < len(new):
            counted = np.concatenate([np.diff(self._cum[:self.EXACT_UNITS + 1]), counts])
            counts = np.concatenate([counts, np.full(len(new) - exact, counted.mean())])
        self.units += new
        self._cum = np.concatenate([self._cum, self._cum[-1] + np.cumsum(counts)])

    def cost(self, n: int) -> int:
        self._grow(n)
        return round(self._cum[n])

    def take(self, n: int) -> list[str]:
        self._grow(n)
        return self.units[:n]

    def unit(self, i: int) -> str:
        self._grow(i + 1)
        return self.units[i]


@dataclass
class Insert:
    """Text hidden in the haystack: before unit `floor(fraction * n)`, or at a sentence start for `depth` placement."""

    text: str
    fraction: float
    order: int = 0


@dataclass
class HaystackDraft(Draft):
    """A sample whose context is a unit stream with inserts (needles, variable chains) placed by fraction."""

    stream: Periodic | Drawn | None = None
    inserts: list[Insert] = field(default_factory=list)
    #: word indices where sentences start (essay); inserts then go to the sentence start at their fraction
    sentence_starts: np.ndarray | None = None
    insert_cost: int = 0

    def cost(self, n: int) -> int:
        return self.stream.cost(n) + self.insert_cost

    def tail(self, n: int) -> list[str]:
        return partial_texts(self.stream.sep, self.stream.unit(n))

    def positions(self, n: int) -> list[int]:
        """Unit index before which each insert goes, for a haystack of `n` units."""
        if self.sentence_starts is None:
            return [min(int(insert.fraction * n), n) for insert in self.inserts]
        starts = self._starts_below(n)
        slots = [int(len(starts) * insert.fraction) for insert in self.inserts]
        return [int(starts[slot]) if slot < len(starts) else n for slot in slots]

    def _starts_below(self, n: int) -> np.ndarray:
        period = len(self.stream.units)
        laps = -(-n // period)
        starts = np.concatenate([self.sentence_starts + lap * period for lap in range(max(laps, 1))])
        return starts[starts < n]

    def render(self, n: int, words: int = 0) -> Context:
        units, positions, sep = self.stream.take(n), self.positions(n), self.stream.sep
        placed = sorted(range(len(self.inserts)), key=lambda i: (positions[i], self.inserts[i].order))
        pieces, marks, offset, start = [], [0] * len(self.inserts), 0, 0
        for i in placed:
            if positions[i] > start:
                chunk = sep.join(units[start:positions[i]])
                pieces.append(chunk)
                offset += len(chunk) + len(sep)
                start = positions[i]
            marks[i] = offset
            pieces.append(self.inserts[i].text)
            offset += len(self.inserts[i].text) + len(sep)
        if start < n:
            pieces.append(sep.join(units[start:]))
        text = sep.join(pieces)
        if words:
            text += self.tail(n)[words - 1]
        return Context(text, tuple(marks))


def partial_texts(lead: str, unit: str) -> list[str]:
    """`lead` plus ever longer beginnings of `unit`, cut after spaces and hyphens (a uuid is cut in its groups) and
    between digits (a number is many tokens for tokenizers that split digits: whole numbers leave gaps too wide to
    fill a short window exactly)."""
    pieces = re.split(r"(?<=[ -])|(?<=\d)(?=\d)", unit)
    return [lead + "".join(pieces[:count]).rstrip(" ") for count in range(1, len(pieces))]


def insert_cost(counter: Counter, texts: list[str], sep: str) -> int:
    """Tokens the inserts add, each counted with the separator it is joined by."""
    return sum(counter.count_batch([text + sep if sep != " " else sep + text for text in texts]))


def fractions_in_order(rng, count: int) -> list[float]:
    """`count` sorted uniform positions in [0, 1): RULER's sorted random line indices, independent of length."""
    return sorted(rng.random() for _ in range(count))


def pick_depths(rng, count: int) -> list[float]:
    """RULER's essay depths: `count` distinct values of round(linspace(0, 100, 40)), sorted, as fractions."""
    depths = sorted({round(100 * i / 39) for i in range(40)})
    return [depth / 100 for depth in sorted(rng.sample(depths, count))]
