"""Common words extraction (RULER's `cwe`): a numbered list where ten words recur more often than the rest.

The list holds ten common words `freq_common` times each; the knob is the number of entries beyond them: uncommon
words `freq_uncommon` times each (the last one possibly fewer). The whole list is shuffled. A worked example with
its answer precedes the task."""

from __future__ import annotations

import collections
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from generators.base import Context, Counted, Draft, InvalidSample, Layout
from generators.resources import Resources


def numbered(words: list[str]) -> str:
    """RULER's list format: `1. word 2. word ...`."""
    return " ".join(f"{i + 1}. {word}" for i, word in enumerate(words))


def _entries(common: list[str], uncommon: list[str], freq_common: int, freq_uncommon: int, total: int) -> list[str]:
    """`total` entries: every common word `freq_common` times, then uncommon words `freq_uncommon` times in order."""
    entries = common * freq_common
    for word in uncommon:
        if len(entries) >= total:
            break
        entries += [word] * min(freq_uncommon, total - len(entries))
    return entries


@dataclass
class CommonWordsDraft(Draft):
    common: list[str] = field(default_factory=list)
    uncommon: list[str] = field(default_factory=list)
    freq_common: int = 30
    freq_uncommon: int = 3
    shuffle_seed: int = 0
    #: cumulative token costs of the labels ` 1.` ` 2.` ... and of each word with its leading space
    label_cum: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    common_cost: int = 0
    uncommon_costs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        self._common_entries = len(self.common) * self.freq_common
        self.max_units = min(len(self.uncommon) * self.freq_uncommon, len(self.label_cum) - 1 - self._common_entries)
        self._uncommon_cum = np.concatenate([[0], np.cumsum(self.uncommon_costs)])

    def cost(self, n: int) -> int:
        full, rest = divmod(n, self.freq_uncommon)
        partial = rest * int(self.uncommon_costs[full]) if rest else 0
        return (int(self.label_cum[self._common_entries + n]) + self.freq_common * self.common_cost
                + self.freq_uncommon * int(self._uncommon_cum[full]) + partial)

    def layout(self, n: int, words: int = 0) -> Layout:
        """One piece: the list, counted as its labels and words each alone."""
        entries = _entries(self.common, self.uncommon, self.freq_common, self.freq_uncommon, self._common_entries + n)
        random.Random(self.shuffle_seed).shuffle(entries)
        return Layout([Counted(numbered(entries), self.cost(n))])

    def check(self, context: Context) -> None:
        super().check(context)
        counts = collections.Counter(context.text.split(" ")[1::2])
        floor = min(counts.get(word, 0) for word in self.common)
        rivals = [count for word, count in counts.items() if word not in self.common]
        if rivals and max(rivals) >= floor:
            raise InvalidSample(f"an uncommon word appears {max(rivals)} times, as often as a common one ({floor})")


def generate(args: dict[str, Any], length: int, index: int, rng: random.Random, data: Resources) -> Draft:
    short = "short_" if length < args["short_length"] else ""
    num_common = args["num_common"]
    freq_common, freq_uncommon = args[f"{short}freq_common"], args[f"{short}freq_uncommon"]
    counter = data.counter
    pool_name = "common"
    # An entry is at least ~3 tokens: when a length may need more distinct words than RULER's list, add SCOWL's.
    if (length // 3 - num_common * freq_common) // freq_uncommon > len(data.words("common")):
        pool_name = "common+extra"
    pool = data.words("common") + (data.words("extra") if pool_name != "common" else [])
    pool_costs = counter.costs(f"words:{pool_name}", lambda: [" " + word for word in pool])
    order = rng.sample(range(len(pool)), len(pool))
    words = [pool[i] for i in order]
    costs = pool_costs[order]

    example_words = rng.sample(words, args[f"{short}example_words"])
    example_common = example_words[:num_common]
    example = _entries(example_common, example_words[num_common:], args[f"{short}example_freq_common"],
                       args[f"{short}example_freq_uncommon"], len(example_words) * args[f"{short}example_freq_common"])
    rng.shuffle(example)

    # a million labels at 1M take seconds to count: kept on disk, for the next run and for worker processes
    labels = counter.costs(f"labels:{length}", lambda: [f"{i}." if i == 1 else f" {i}." for i in range(1, length + 1)],
                           persist=True)
    return CommonWordsDraft(
        fields={"num_common": num_common, "example": numbered(example), "example_answer": numbered(example_common)},
        references=words[:num_common], common=words[:num_common], uncommon=words[num_common:],
        freq_common=freq_common, freq_uncommon=freq_uncommon, shuffle_seed=rng.getrandbits(64),
        label_cum=np.concatenate([[0], np.cumsum(labels)]), common_cost=int(costs[:num_common].sum()),
        uncommon_costs=costs[num_common:],
    )
