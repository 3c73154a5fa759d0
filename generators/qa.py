"""Question answering (RULER's `qa_1` SQuAD, `qa_2` HotpotQA): the gold paragraphs among distractor documents.

Question i of a dataset is sample i's question (in order, as RULER; never repeated). Distractors are same-article
paragraphs first, then random others; when a length needs more than the dataset holds they are used again. The
knob is the number of distractors; the last document may be a distractor cut short to hit the length exactly."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from generators.base import Context, Counted, Draft, GenerationDefect, InvalidSample, Layout, Piece
from generators.haystack import partial_texts
from generators.resources import Resources

SEP = "\n\n"


def label(i: int) -> str:
    return f"Document {i}:\n"


@dataclass
class QADraft(Draft):
    docs: list[str] = field(default_factory=list)
    gold: list[int] = field(default_factory=list)
    pool: list[int] = field(default_factory=list)
    fractions: list[float] = field(default_factory=list)
    label_cum: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    gold_cost: int = 0
    pool_cum: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    #: each document's tokens with the separator after it, where it stands between two labels
    doc_costs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def cost(self, n: int) -> int:
        laps, rest = divmod(n, len(self.pool))
        return (int(self.label_cum[min(n + len(self.gold), len(self.label_cum) - 1)]) + self.gold_cost
                + laps * int(self.pool_cum[-1]) + int(self.pool_cum[rest]))

    def _sequence(self, n: int) -> tuple[list[int], list[int]]:
        """Document ids in order, and where each gold document landed."""
        order = [self.pool[i % len(self.pool)] for i in range(n)]
        slots = []
        for offset, (doc, fraction) in enumerate(zip(self.gold, self.fractions)):
            slot = min(int(fraction * n), n) + offset
            order.insert(slot, doc)
            slots.append(slot)
        return order, slots

    def tail(self, n: int) -> list[str]:
        return partial_texts(SEP + label(n + len(self.gold) + 1), self.docs[self.pool[n % len(self.pool)]])

    def layout(self, n: int, words: int = 0) -> Layout:
        """The documents, each after its label; the distractors between gold documents go as counted: each label
        alone, each document with its separator between two labels."""
        order, slots = self._sequence(n)
        texts = [label(i + 1) + self.docs[doc] + SEP for i, doc in enumerate(order)]
        if texts:
            texts[-1] = texts[-1][:-len(SEP)]
        starts = np.concatenate([[0], np.cumsum([len(text) for text in texts])])
        cuts = sorted({0, len(texts) - 1, len(texts), *slots, *(slot + 1 for slot in slots)} - {-1})
        pieces: list[Piece] = []
        for start, stop in zip(cuts, cuts[1:]):
            text = "".join(texts[start:stop])
            counted = stop - start > 1 or (start not in slots and stop < len(texts))
            tokens = int(self.label_cum[stop] - self.label_cum[start] + self.doc_costs[order[start:stop]].sum())
            pieces.append(Counted(text, tokens, after=label(1)) if counted else text)
        if words:
            pieces.append(self.tail(n)[words - 1])
        return Layout(pieces, tuple(int(starts[slot]) for slot in slots))

    def check(self, context: Context) -> None:
        for doc in self.gold:
            found = context.text.count(self.docs[doc])
            if found != 1:
                raise InvalidSample(f"gold document {self.docs[doc][:50]!r} appears {found} times, not once")


def generate(args: dict[str, Any], length: int, index: int, rng: random.Random, data: Resources) -> Draft:
    dataset = data.qa(args["dataset"])
    if index >= len(dataset.items):  # a repeated question would make the samples, and their interval, a lie
        raise GenerationDefect(f"{dataset.name} holds {len(dataset.items)} questions, so sample {index} would repeat "
                               f"one: use --samples {len(dataset.items)} or fewer, or a larger dataset "
                               "(--squad / --hotpotqa)")
    item = dataset.items[index]
    taken = set(item.gold) | set(item.related)
    related = rng.sample(item.related, len(item.related))
    others = [doc for doc in rng.sample(range(len(dataset.docs)), len(dataset.docs)) if doc not in taken]
    pool = related + others
    if not pool:
        raise GenerationDefect(f"{dataset.name} holds no distractor documents for question {index}")
    counter = data.counter
    # each document as it stands in a prompt: after a label, its separator, and the next label
    body = counter.costs_between(f"qa:{dataset.sha256}", lambda: [doc + SEP for doc in dataset.docs], label(1))
    labels = counter.costs(f"qa-labels:{length}", lambda: [label(i) for i in range(1, length // 8 + 64)],
                           persist=True)
    return QADraft(
        fields={"query": item.query}, references=item.answers, docs=dataset.docs, gold=item.gold, pool=pool,
        fractions=sorted(rng.random() for _ in item.gold), label_cum=np.concatenate([[0], np.cumsum(labels)]),
        gold_cost=int(body[item.gold].sum()), pool_cum=np.concatenate([[0], np.cumsum(body[pool])]), doc_costs=body,
    )
