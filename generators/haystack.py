"""Haystacks as streams of units with token costs, and the Draft shared by every task that hides lines in one.

Three haystacks, as in RULER: `noise` (one fixed paragraph repeated, a line each), `essay` (a corpus's words,
repeated when exhausted, needles at sentence starts) and `needle` (every line a distractor needle). Costs come from
the counter: a repeating stream is tokenized once per tokenizer (and cached on disk), and so are the distractor
lines, drawn once into a pool that each sample shuffles. No prompt is ever tokenized to find its size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from generators.base import REACH, Counted, Counter, Draft, Layout, Piece

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

    def piece(self, text: str, start: int, stop: int) -> Piece:
        """Units start..stop-1, each after its separator (`text`), counted as the corpus count placed them: among
        the units around them."""
        before, i = "", start
        while len(before) < REACH:
            i -= 1
            before = self.unit(i) + (self.sep + before if before else "")
        after, i = "", stop
        while len(after) < REACH:
            after += self.sep + self.unit(i)
            i += 1
        return Counted(text, self.cost(stop) - self.cost(start), before, after)


class Shuffled:
    """A sample's own order of a finite list of units counted beforehand (the distractor lines of a pool, see
    niah.py): costs are exact prefix sums, and the list ends (`size`)."""

    def __init__(self, units: list[str], costs: np.ndarray, sep: str) -> None:
        self.units, self.sep = units, sep
        self._cum = np.concatenate([[0], np.cumsum(costs)])

    @property
    def size(self) -> int:
        return len(self.units)

    def cost(self, n: int) -> int:
        return int(self._cum[n])

    def take(self, n: int) -> list[str]:
        return self.units[:n]

    def unit(self, i: int) -> str:
        return self.units[i % len(self.units)]

    def piece(self, text: str, start: int, stop: int) -> Piece:
        """Units start..stop-1, each after its separator, counted each with the separator after it: every unit
        has the same shape at its ends, so any of them stands for the neighbours it was counted among."""
        return Counted(text, self.cost(stop) - self.cost(start), self.unit(start - 1), self.sep + self.unit(stop))


@dataclass
class Insert:
    """Text hidden in the haystack: before unit `floor(fraction * n)`, or at a sentence start for `depth` placement."""

    text: str
    fraction: float
    order: int = 0


@dataclass
class HaystackDraft(Draft):
    """A sample whose context is a unit stream with inserts (needles, variable chains) placed by fraction."""

    stream: Periodic | Shuffled | None = None
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

    def layout(self, n: int, words: int = 0) -> Layout:
        """Runs of units between the inserts, joined by the separator; a run goes as the stream counted it."""
        units, positions, sep = self.stream.take(n), self.positions(n), self.stream.sep
        placed = sorted(range(len(self.inserts)), key=lambda i: (positions[i], self.inserts[i].order))
        pieces: list[Piece] = []
        marks, offset = [0] * len(self.inserts), 0

        def add(piece: Piece) -> None:
            nonlocal offset
            pieces.append(piece)
            offset += len(piece if isinstance(piece, str) else piece.text)

        def run(start: int, stop: int) -> None:
            if not pieces:  # the first unit has no separator before it: not as the stream counted it
                add(units[start])
                start += 1
            if stop > start:
                add(self.stream.piece(sep + sep.join(units[start:stop]), start, stop))

        start = 0
        for i in placed:
            if positions[i] > start:
                run(start, positions[i])
                start = positions[i]
            lead = sep if pieces else ""
            marks[i] = offset + len(lead)
            add(lead + self.inserts[i].text)
        if start < n:
            run(start, n)
        if words:
            add(self.tail(n)[words - 1])
        return Layout(pieces, tuple(marks))


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
