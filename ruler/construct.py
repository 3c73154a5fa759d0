"""A prompt's exact token count by construction: the sum of its pieces' known counts plus what the tokens around
each join change, instead of one tokenization of the whole prompt.

Tokenizers decide locally: a pre-tokenizer splits text into words, numbers and runs of spaces, and merges never
cross those splits. So the tokens that start inside a long counted piece are the ones its count saw, except within
a few characters of its two ends; those ends are tokenized twice, once beside the neighbours the count saw and once
beside the prompt's, and the difference corrects the count. Text that no count covers (the template, needles, the
first unit, a partial unit) is tokenized with a margin of its neighbours on either side. A needle's token position
is that of the token holding its first character, as a full tokenization reports it.

Whether this is exact is not assumed: `Construction` checks it for each task and tokenizer on random prompts
against a full tokenization before trusting it, and a task where they ever differ (or a tokenizer whose token
offsets are estimates) keeps the full tokenization.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from generators.base import REACH, Counted, Layout, Piece
from ruler.tokenizers import Tokenizer

#: how prompts were counted, as samples record it
CONSTRUCTED, TOKENIZED = "constructed", "tokenized"


@dataclass(frozen=True)
class Counting:
    """A prompt's tokens (without the tokenizer's own added tokens), each mark's token index, and whether any
    counted piece spared tokenizing its inside."""

    tokens: int
    positions: list[int]
    constructed: bool = False


def _starts_in(tokenizer: Tokenizer, left: str, text: str, right: str) -> np.ndarray:
    """Offsets in `text` of the tokens that start in it, tokenized between `left` and `right`."""
    starts = tokenizer.token_starts(left + text + right) - len(left)
    return starts[(starts >= 0) & (starts < len(text))]


def _segments(pieces: Sequence[Piece]) -> list[Piece]:
    """Adjacent texts merged; a counted piece too short to have an inside beyond its two ends becomes text."""
    merged: list[Piece] = []
    for piece in pieces:
        if isinstance(piece, Counted) and len(piece.text) < 4 * REACH:
            piece = piece.text
        if isinstance(piece, str) and merged and isinstance(merged[-1], str):
            merged[-1] += piece
        elif not isinstance(piece, str) or piece:
            merged.append(piece)
    return merged


def _text(piece: Piece) -> str:
    return piece if isinstance(piece, str) else piece.text


def whole(head: str, layout: Layout, tail: str, tokenizer: Tokenizer, context: str | None = None) -> Counting:
    """The count of head + context + tail by one tokenization of it all (`context`: the layout's text, when the
    caller has it already)."""
    text = head + (layout.context().text if context is None else context) + tail
    tokens, positions = tokenizer.measure(text, [len(head) + mark for mark in layout.marks])
    return Counting(tokens, positions)


def construct(head: str, layout: Layout, tail: str, tokenizer: Tokenizer) -> Counting:
    """The count of head + context + tail, from the layout's counted pieces and the tokens around them."""
    segments = _segments([head, *layout.pieces, tail])
    if not any(isinstance(segment, Counted) for segment in segments):  # nothing counted: one tokenization
        return whole(head, layout, tail, tokenizer)
    marks = sorted((len(head) + mark, i) for i, mark in enumerate(layout.marks))
    positions = [0] * len(marks)
    tokens, offset, next_mark = 0, 0, 0
    for k, segment in enumerate(segments):
        before = _text(segments[k - 1])[-REACH:] if k else ""
        after = _text(segments[k + 1])[:REACH] if k + 1 < len(segments) else ""
        if isinstance(segment, str):
            starts = _starts_in(tokenizer, before, segment, after)
            while next_mark < len(marks) and marks[next_mark][0] < offset + len(segment):
                mark, i = marks[next_mark]
                positions[i] = max(tokens + int(np.searchsorted(starts, mark - offset, side="right")) - 1, 0)
                next_mark += 1
            tokens += len(starts)
        else:
            text = segment.text
            head_end, tail_start = text[:2 * REACH], text[-2 * REACH:]
            tokens += segment.tokens + _changed(tokenizer, head_end, before, segment.before, ahead=True) \
                + _changed(tokenizer, tail_start, after, segment.after, ahead=False)
            if next_mark < len(marks) and marks[next_mark][0] < offset + len(text):
                raise ValueError("a needle lies inside a counted piece")
        offset += len(_text(segment))
    return Counting(tokens, positions, constructed=True)


def _changed(tokenizer: Tokenizer, end: str, neighbour: str, counted_among: str, ahead: bool) -> int:
    """Tokens gained at one end of a counted piece (`end`: its first or last 2 x REACH characters) by standing
    beside `neighbour` instead of the neighbour it was counted among: tokens starting in the REACH characters at
    that end, tokenized each way."""
    if ahead:
        return (len(_starts_in(tokenizer, neighbour, end[:REACH], end[REACH:]))
                - len(_starts_in(tokenizer, counted_among, end[:REACH], end[REACH:])))
    return (len(_starts_in(tokenizer, end[:-REACH], end[-REACH:], neighbour))
            - len(_starts_in(tokenizer, end[:-REACH], end[-REACH:], counted_among)))


class Construction:
    """Which tasks' prompts are counted by construction with one tokenizer: each task is checked once, on random
    prompts (`probes`: head, layout, tail) compared with a full tokenization, count and needle positions alike."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self._trusted: dict[str, bool] = {}

    def trusted(self, task: str, probes: Callable[[], Iterable[tuple[str, Layout, str]]]) -> bool:
        if task not in self._trusted:
            agree = [self._agrees(head, layout, tail) for head, layout, tail in probes()] \
                if self.tokenizer.exact_starts else []
            self._trusted[task] = bool(agree) and all(agree)
        return self._trusted[task]

    def _agrees(self, head: str, layout: Layout, tail: str) -> bool:
        try:
            built = construct(head, layout, tail, self.tokenizer)
        except ValueError:
            return False
        reference = whole(head, layout, tail, self.tokenizer)
        return (built.tokens, built.positions) == (reference.tokens, reference.positions)
