"""Prompts the server cut without saying so, told apart from a tokenizer that counts differently.

The exact local token count of every prompt is known. A server that keeps only the last `num_ctx` tokens (Ollama),
serves a slot's share of `-c` (llama-server) or a shorter loaded context (LM Studio) answers 200 and reports the
count it kept. A wrong tokenizer or chat template shifts the server's counts by a roughly constant ratio at every
length; a cut makes the ratio fall with length while the count stops growing. So: the ratio at the shortest length
is the baseline, a prompt counted clearly short of it was cut, and once a ceiling is seen, prompts counted at that
ceiling though longer than it were cut too (the shortest length may itself be cut). Where the server states the
window it serves, a longer prompt that came back answered was cut whatever its counts say. A run of one length
gives no baseline: there a cut shows only as the prompt-token drift warning.

Where the answers can tell, the side that was dropped is named: if the needles found are exactly those in the last
kept tokens, the server kept the end (Ollama); if they sit at both ends, it cut the middle (OpenRouter's
middle-out).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from statistics import median

from ruler.lengths import format_length
from ruler.reasoning import split_reasoning
from ruler.scoring.metrics import score
from ruler.types import Prediction, Sample

#: a server count this far below what the shortest length predicts is a cut, not a tokenizer's difference
MARGIN = 0.05
#: the answers that reached the model (an overflow or an error tells nothing about a cut)
ANSWERED = frozenset({"ok", "empty", "truncated", "refused"})
#: fixes for the servers known to cut, for when the server did not say which it is
FIXES = ("Ollama: OLLAMA_CONTEXT_LENGTH or PARAMETER num_ctx (its OpenAI API ignores num_ctx in requests); "
         "llama-server: -c is shared by the --parallel slots; LM Studio: the context length the model was loaded "
         "with; OpenRouter: \"transforms\": [] (ruler sends it)")
SIDES = {"start": "it kept the end and dropped the beginning", "middle": "it kept both ends and dropped the middle"}


def _served(prediction: Prediction) -> int | None:
    served = (prediction.usage or {}).get("prompt_tokens")
    return served if isinstance(served, int) and not isinstance(served, bool) else None


def find_cuts(predictions: Iterable[Prediction], served_window: int | None = None) -> dict[str, int | None]:
    """The ids of prompts the server cut, each with the tokens it said it kept (None when it gave no count).

    The shortest length sets what the server's count should be, either as a ratio of the local count (another
    tokenizer) or as a fixed number of tokens more or fewer (a server-side system prompt, other chat framing): a
    prompt counted clearly short of both was cut."""
    answered = [p for p in predictions if p.validity in ANSWERED and p.prompt_tokens > 0]
    cuts: dict[str, int | None] = {}
    if served_window:
        cuts.update({p.id: _served(p) for p in answered if p.prompt_tokens + 1 > served_window})
    counted = [p for p in answered if _served(p) is not None and p.id not in cuts]
    if not counted:
        return cuts
    shortest = [p for p in counted if p.length == min(q.length for q in counted)]
    ratio = median(_served(p) / p.prompt_tokens for p in shortest)
    offset = median(_served(p) - p.prompt_tokens for p in shortest)

    def short(p: Prediction) -> bool:
        expected = min(ratio * p.prompt_tokens, p.prompt_tokens + offset)
        return _served(p) < expected * (1 - MARGIN)

    cuts.update({p.id: _served(p) for p in counted if short(p)})
    kept = [k for k in cuts.values() if k is not None]
    if kept:  # the count stopped growing: prompts counted at the ceiling though longer than it were cut too
        ceiling = max(kept)
        cuts.update({p.id: _served(p) for p in counted
                     if _served(p) >= ceiling * (1 - MARGIN) and p.prompt_tokens > ceiling * (1 + MARGIN)})
    return cuts


def mark_cuts(predictions: dict[str, Prediction], cuts: dict[str, int | None]) -> dict[str, Prediction]:
    """The predictions with those the server cut marked `cut`, saying what it kept."""
    marked = dict(predictions)
    for id_, kept in cuts.items():
        prediction = predictions[id_]
        said = f"kept {kept:,} of its {prediction.prompt_tokens:,} tokens" if kept is not None else \
            f"serves fewer than its {prediction.prompt_tokens:,} tokens"
        marked[id_] = replace(prediction, validity="cut", error=f"the server cut the prompt: it {said}")
    return marked


@dataclass(frozen=True)
class Truncation:
    """What the server did to the prompts it cut."""

    #: lengths with at least one cut prompt, and how many were cut at each
    lengths: dict[int, int]
    #: the most prompt tokens the server said it kept of a cut prompt (None: it gave no counts)
    kept: int | None
    #: `start` or `middle` where the answers tell which part was dropped
    side: str | None
    #: how to make this server serve the whole prompt, when it said what it is
    fix: str | None = None

    def describe(self) -> str:
        where = ", ".join(f"{format_length(length)} ({count})" for length, count in sorted(self.lengths.items()))
        to = f" to at most {self.kept:,} tokens" if self.kept else ""
        side = f"; {SIDES[self.side]}" if self.side else ""
        return (f"the server silently cut prompts{to} at {where}{side}: those answers are `cut`, not the model's; "
                f"fix the server's context ({self.fix or FIXES})")


#: for each side a server may drop, whether a needle at `depth` survives when `share` of the prompt is kept
KEPT = {"start": lambda depth, share: depth >= 1 - share,
        "middle": lambda depth, share: depth <= share / 2 or depth >= 1 - share / 2}


def _side(cut: list[tuple[Sample, Prediction, int]]) -> str | None:
    """Which part the server dropped, from the single needles the model still found: the side under which no
    needle was found that the server had dropped, and most of those it kept were found; None when the answers
    cannot tell."""
    evidence = [(sample.depths[0], kept / sample.prompt_tokens,
                 score(sample.metric, split_reasoning(prediction.prediction or "").answer, sample.references) > 0)
                for sample, prediction, kept in cut if sample.task.startswith("niah") and len(sample.depths) == 1]
    rates = {}
    for side, survives in KEPT.items():
        reach = [hit for depth, share, hit in evidence if survives(depth, share)]
        missed = any(hit for depth, share, hit in evidence if not survives(depth, share))
        if reach and not missed and sum(reach) / len(reach) >= 0.5:
            rates[side] = sum(reach) / len(reach)
    best = sorted(rates.items(), key=lambda item: -item[1])
    return best[0][0] if len(best) == 1 or (best and best[0][1] > best[1][1]) else None


def summarise(cuts: dict[str, int | None], samples: dict[str, Sample], predictions: dict[str, Prediction],
              fix: str | None = None) -> Truncation | None:
    if not cuts:
        return None
    lengths: dict[int, int] = defaultdict(int)
    for id_ in cuts:
        lengths[predictions[id_].length] += 1
    kept = [k for k in cuts.values() if k is not None]
    evidence = [(samples[id_], predictions[id_], k) for id_, k in cuts.items() if k is not None and id_ in samples]
    return Truncation(dict(lengths), max(kept) if kept else None, _side(evidence), fix)
