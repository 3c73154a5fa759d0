"""Exact-length assembly: choose how much haystack a Draft holds so the prompt fills its window, with no search
over tokenizations.

The window L covers the rendered prompt and the task's generation budget: prompt + budget <= L, and the prompt is
at least 99.5% of L - budget. The haystack size comes from the Draft's cheap estimate (prefix sums of pre-counted
units); the final prompt's exact count verifies it, constructed from its pieces where the task's self-check allows
(ruler.construct), else by one tokenization of the prompt. When merges across unit boundaries put that count
outside the window, the estimate is rescaled by what the count showed and the prompt rebuilt (rare). Long prompts
first calibrate the estimate on a 2% prefix of their haystack.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from generators.base import Draft, GenerationDefect, Layout
from ruler.construct import CONSTRUCTED, TOKENIZED, Counting, construct, whole
from ruler.prompts import Frame
from ruler.tokenizers import Tokenizer

FILL = 0.995
MIN_SLACK = 8
ATTEMPTS = 5
#: calibration probes use 1/PROBE_SHARE of the haystack, only for prompts of PROBE_MIN_* or more
PROBE_SHARE = 50
PROBE_MIN_UNITS = 8
PROBE_MIN_TOKENS = 32_768


@dataclass(frozen=True)
class Fitted:
    units: int
    words: int
    text: str
    tokens: int
    depths: tuple[float, ...]
    #: how the prompt was counted: CONSTRUCTED from its pieces, or TOKENIZED whole
    counted: str = TOKENIZED


def window(budget: int) -> tuple[int, int]:
    """The token counts a prompt may have for a budget of `budget` prompt tokens: at least 99.5% of it, or within
    MIN_SLACK tokens of it for short prompts (below 1,600 tokens, where 0.5% is less than a word or two)."""
    return min(math.ceil(FILL * budget), budget - MIN_SLACK), budget


def aim(budget: int) -> int:
    """The prompt tokens `fit` aims for: a third of the way down the window, so that the merges it cannot foresee
    land inside it. Every prompt ends within 0.5% of this, which is what an estimate counts before building it."""
    low, high = window(budget)
    return high - (high - low) // 3


def _largest(cost: Callable[[int], int], target: float, guess: int, limit: int | None) -> int:
    """The largest n <= limit with cost(n) <= target (cost is monotone), searched from `guess`; -1 if none."""
    if cost(0) > target:
        return -1
    low, high = 0, max(1, guess if limit is None else min(guess, limit))
    while cost(high) <= target:
        if limit is not None and high >= limit:
            return limit
        low, high = high, int(high * 1.1) + 1
        high = high if limit is None else min(high, limit)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if cost(middle) <= target else (low, middle)
    return low


def _tail(draft: Draft, units: int, gap: float, tokenizer: Tokenizer) -> tuple[int, int]:
    """How many words of the next unit fit in `gap` tokens, and their cost."""
    candidates = draft.tail(units) if gap >= 1 else []
    costs = tokenizer.count_batch(candidates) if candidates else []
    words = max((w for w, cost in enumerate(costs, start=1) if cost <= gap), default=0)
    return words, costs[words - 1] if words else 0


def _count(head: str, layout: Layout, tail: str, tokenizer: Tokenizer, constructed: bool,
           context: str | None = None) -> Counting:
    """The exact count of head + context + tail and the needles' token positions, by construction or whole
    (`context`: the layout's text, when it is at hand)."""
    return construct(head, layout, tail, tokenizer) if constructed else whole(head, layout, tail, tokenizer, context)


def _calibrate(draft: Draft, target: float, tokenizer: Tokenizer, constructed: bool) -> float:
    """Scale from estimated to real context tokens, measured on a small prefix of the haystack (about 2%).

    Units counted alone can merge differently where they meet (`.` and a newline, two newlines before a label);
    the error grows with the number of units, so long prompts measure it first instead of paying a second full
    tokenization. Short prompts skip this: a retry costs little there."""
    units = draft.guess(int(target)) // PROBE_SHARE
    if units < PROBE_MIN_UNITS or target < PROBE_MIN_TOKENS:
        return 1.0
    estimated = draft.cost(units)
    tokens = _count("", draft.layout(units), "", tokenizer, constructed).tokens
    return tokens / max(estimated, 1)


def fit(draft: Draft, frame: Frame, tokenizer: Tokenizer, budget: int, constructed: bool = False) -> Fitted:
    """Size `draft` so that frame.head + context + frame.tail has between 99.5% and 100% of `budget` tokens;
    `constructed`: count it by construction (the task passed its self-check), else tokenize it."""
    low, high = window(budget)
    aimed = aim(budget)
    scale = _calibrate(draft, aimed - frame.overhead, tokenizer, constructed)
    total = 0
    for _ in range(ATTEMPTS):
        target = (aimed - frame.overhead) / scale
        units = _largest(draft.cost, target, draft.guess(int(target)), draft.max_units)
        if units < 0:
            raise GenerationDefect(f"{budget} tokens cannot hold the prompt without its haystack "
                                   f"({frame.overhead + draft.cost(0)} tokens); use a longer length")
        words, tail_cost = _tail(draft, units, target - draft.cost(units), tokenizer)
        layout = draft.layout(units, words)
        context = layout.context()
        counting = _count(frame.head, layout, frame.tail, tokenizer, constructed, context.text)
        total = counting.tokens + frame.added_tokens
        if low <= total <= high:
            draft.check(context)
            return Fitted(units, words, frame.head + context.text + frame.tail, total,
                          tuple(p / total for p in counting.positions),
                          CONSTRUCTED if counting.constructed else TOKENIZED)
        if draft.max_units is not None and units >= draft.max_units and total < low:
            raise GenerationDefect(f"the task's data runs out at {total} tokens, short of {low}")
        scale = max(total - frame.overhead, 1) / max(draft.cost(units) + tail_cost, 1)
    raise GenerationDefect(f"could not fit {budget} tokens in {ATTEMPTS} tries (the last gave {total})")
