"""Frequent words extraction (RULER's `fwe`): coded words with Zipf counts; name the 2nd to 4th most frequent.

Word k of a vocabulary of `length / 50` random words appears floor(n * k^-alpha / zeta(alpha)) times; the most
frequent one is replaced by `...`, as in RULER. The knob is n."""

from __future__ import annotations

import collections
import random
import string
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from generators.base import Context, Counted, Draft, InvalidSample, Layout
from generators.resources import Resources


def zeta(alpha: float, terms: int = 100_000) -> float:
    """Riemann zeta for alpha > 1: a partial sum with the Euler-Maclaurin tail."""
    k = np.arange(1, terms + 1, dtype=np.float64)
    return float(np.sum(k**-alpha) + terms ** (1 - alpha) / (alpha - 1) - 0.5 * terms**-alpha)


@dataclass
class FreqWordsDraft(Draft):
    vocab: list[str] = field(default_factory=list)
    shares: np.ndarray = field(default_factory=lambda: np.zeros(0))
    word_costs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    shuffle_seed: int = 0
    num_answers: int = 3

    def counts(self, n: int) -> np.ndarray:
        return np.floor(n * self.shares).astype(np.int64)

    def cost(self, n: int) -> int:
        return int(self.counts(n) @ self.word_costs)

    def guess(self, tokens: int) -> int:
        return max(int(tokens / float(self.shares @ self.word_costs)), 1)

    def layout(self, n: int, words: int = 0) -> Layout:
        """The first word, then the others each after its space, counted as each was alone."""
        sampled = [word for word, count in enumerate(self.counts(n)) for _ in range(count)]
        random.Random(self.shuffle_seed).shuffle(sampled)
        if not sampled:
            return Layout([])
        first, rest = sampled[0], sampled[1:]
        return Layout([self.vocab[first], Counted("".join(" " + self.vocab[word] for word in rest),
                                                  self.cost(n) - int(self.word_costs[first]))])

    def check(self, context: Context) -> None:
        super().check(context)
        tally = collections.Counter(context.text.split(" "))
        answers = [tally[word] for word in self.references]
        runner_up = max((tally[word] for word in self.vocab[1 + self.num_answers:]), default=0)
        if min(answers) <= runner_up:
            raise InvalidSample(f"answer counts {answers} do not stand above the next word's {runner_up}")


def generate(args: dict[str, Any], length: int, index: int, rng: random.Random, data: Resources) -> Draft:
    size, word_length = max(length // args["tokens_per_vocab_word"], args["num_answers"] + 2), args["word_length"]
    vocab: set[str] = set()
    while len(vocab) < size:
        vocab.add("".join(rng.choices(string.ascii_lowercase, k=word_length)))
    words = sorted(vocab)
    rng.shuffle(words)
    words[0] = "..."
    ranks = np.arange(1, size + 1, dtype=np.float64)
    return FreqWordsDraft(
        fields={}, references=words[1:1 + args["num_answers"]], vocab=words,
        shares=ranks ** -args["alpha"] / zeta(args["alpha"]),
        word_costs=np.asarray(data.counter.count_batch([" " + word for word in words]), dtype=np.int64),
        shuffle_seed=rng.getrandbits(64), num_answers=args["num_answers"],
    )
