"""What every task generator shares: seeded randomness, the Draft a generator returns, and its sanity checks.

A generator turns (task arguments, target length, per-sample RNG, data) into a Draft: the sample's random content
(needles, keys, questions, references) with a size knob `n`, the number of haystack units. The sizer in
`ruler.sizing` picks `n` from the Draft's cheap token estimate and lays the context out as pieces, the long ones
with their token counts already known (`Counted`), so that the prompt's exact length is constructed from them and a
few tokens around each join (`ruler.construct`) rather than by tokenizing it whole. Generators know nothing about
backends or chat templates.
"""

from __future__ import annotations

import hashlib
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


class GenerationDefect(Exception):
    """A sample cannot be made as asked (unknown argument, a length too short for the task, data that runs out)."""


class InvalidSample(GenerationDefect):
    """A drawn sample broke one of its own invariants (a needle missing or repeated, an answer not recoverable):
    a rare coincidence of the draw, so the sample is drawn again from the next RNG stream."""


def derive_rng(*key: object) -> random.Random:
    """An RNG that depends on `key` alone (seed, task, length, sample index, purpose): any sample regenerates alone."""
    digest = hashlib.sha256("\x1f".join(map(str, key)).encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


class Counter(Protocol):
    """Token counting as generators need it (implemented over the model's tokenizer in `ruler.counting`)."""

    def count_batch(self, texts: Sequence[str]) -> list[int]: ...

    def costs(self, key: str, texts: Callable[[], list[str]], persist: bool = False) -> np.ndarray:
        """Token counts of a fixed list of texts, computed once per key (and kept on disk if `persist`)."""

    def costs_between(self, key: str, texts: Callable[[], list[str]], joint: str) -> np.ndarray:
        """Token counts of a fixed list of texts, each where it stands between two `joint`s (kept on disk)."""

    def corpus_costs(self, units: Sequence[str], sep: str) -> np.ndarray:
        """Cumulative in-context token counts of `sep`-joined units: entry i counts the tokens before unit i."""


@dataclass(frozen=True)
class Context:
    """The rendered haystack with everything inserted; `marks` are the character offsets of the needles."""

    text: str
    marks: tuple[int, ...] = ()


#: characters on either side of a join beyond which tokenizers make the same tokens whatever was joined: a pre-token
#: (a word, a number, a run of spaces) is far shorter (checked per tokenizer and task by ruler.construct)
REACH = 256


@dataclass(frozen=True)
class Counted:
    """A stretch of context whose tokens are known without tokenizing it: `tokens` tokens start in `text` when it
    stands between `before` and `after`, the neighbours it was counted among ("" for parts each counted alone and
    joined where a tokenizer does not merge, a run's own neighbouring units for a run of a corpus)."""

    text: str
    tokens: int
    before: str = ""
    after: str = ""


Piece = str | Counted


@dataclass(frozen=True)
class Layout:
    """A context as its pieces in order, and where each needle starts in it (Context.marks)."""

    pieces: list[Piece]
    marks: tuple[int, ...] = ()

    def context(self) -> Context:
        return Context("".join(piece if isinstance(piece, str) else piece.text for piece in self.pieces), self.marks)


@dataclass
class Draft(ABC):
    """One sample's content before sizing. `fields` feed the task template; `references` are the gold answers."""

    fields: dict[str, Any]
    references: list[str]
    #: needles or gold passages that must each appear exactly once in the context
    needles: list[str] = field(default_factory=list)
    #: the most units the content allows (None: the haystack repeats without end)
    max_units: int | None = field(default=None, kw_only=True)

    @abstractmethod
    def cost(self, n: int) -> int:
        """Estimated tokens of the context holding `n` haystack units (monotone in `n`, no tokenization)."""

    @abstractmethod
    def layout(self, n: int, words: int = 0) -> Layout:
        """The context with `n` units, plus the first `words` words of the next unit where `tail` allows it, as
        pieces: what the draft already counted as `Counted`, the rest as text."""

    def render(self, n: int, words: int = 0) -> Context:
        return self.layout(n, words).context()

    def tail(self, n: int) -> list[str]:
        """Texts of the partial unit that may follow `n` units (1, 2 ... words, each with its separator)."""
        return []

    def guess(self, tokens: int) -> int:
        """A starting point for the search: roughly how many units make `tokens`."""
        per_unit = max(self.cost(64) - self.cost(0), 1) / 64
        return max(int(tokens / per_unit), 1)

    def check(self, context: Context) -> None:
        """Raise InvalidSample unless each needle is present once and each reference can be read off the text."""
        for needle in self.needles:
            found = context.text.count(needle)
            if found != 1:
                raise InvalidSample(f"needle {needle[:60]!r} appears {found} times, not once")
        for reference in self.references:
            if reference not in context.text:
                raise InvalidSample(f"reference {reference!r} is not in the context")


class Generator(Protocol):
    """A task kind: builds sample `index`'s Draft from the task's arguments, the length, its RNG and the data
    (`generators.resources.Resources`)."""

    def __call__(self, args: dict[str, Any], length: int, index: int, rng: random.Random, data: Any) -> Draft: ...
