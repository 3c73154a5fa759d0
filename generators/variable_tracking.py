"""Variable tracking (RULER's `vt`): chains `VAR B = VAR A` hidden in noise; name every variable holding a value.

One worked example precedes the task, with its own names and value drawn per sample (a fixed example inflated
scores in RULER's history, NVIDIA/Star-Attention#2)."""

from __future__ import annotations

import random
import string
from typing import Any

from generators.base import Draft
from generators.haystack import NOISE, HaystackDraft, Insert, Periodic, fractions_in_order, insert_cost
from generators.resources import Resources

SEP = " "
#: RULER's VT noise: the noise paragraph ending in a newline, joined by spaces
NOISE_LINES = [NOISE + "\n"]


def _chains(rng: random.Random, num_chains: int, num_hops: int,
            name_length: int) -> tuple[list[list[str]], list[list[str]]]:
    """Distinct variable names per chain and the chain lines: `VAR A = 12345`, then `VAR B = VAR A ` per hop."""
    names: list[str] = []
    while len(names) < num_chains * (num_hops + 1):
        name = "".join(rng.choices(string.ascii_uppercase, k=name_length))
        if name not in names:
            names.append(name)
    groups = [names[i:i + num_hops + 1] for i in range(0, len(names), num_hops + 1)]
    lines = [[f"VAR {group[0]} = {rng.randint(10000, 99999)}"]
             + [f"VAR {group[j + 1]} = VAR {group[j]} " for j in range(num_hops)] for group in groups]
    return groups, lines


def _inserts(rng: random.Random, chains: list[list[str]]) -> list[Insert]:
    """Each chain's lines at sorted random positions, kept in chain order where positions tie."""
    return [Insert(line, fraction, order=c * 1000 + j)
            for c, chain in enumerate(chains)
            for j, (line, fraction) in enumerate(zip(chain, fractions_in_order(rng, len(chain))))]


def generate(args: dict[str, Any], length: int, index: int, rng: random.Random, data: Resources) -> Draft:
    noise = Periodic(NOISE_LINES, SEP, data.counter)
    groups, chains = _chains(rng, args["num_chains"], args["num_hops"], 5)
    query = chains[0][0].split("=")[-1].strip()
    lines = [line for chain in chains for line in chain]

    example_groups, example_chains = _chains(rng, 1, args["num_hops"], 3)
    example = HaystackDraft(fields={}, references=[], stream=noise, inserts=_inserts(rng, example_chains),
                            insert_cost=insert_cost(data.counter, example_chains[0], SEP))
    budget = args["example_context_tokens"]
    units = max((k for k in range(1, budget) if example.cost(k) <= budget), default=1)
    fields = {
        "query": query,
        "num_vars": args["num_hops"] + 1,
        "example": {"context": example.render(units).text, "query": example_chains[0][0].split("=")[-1].strip(),
                    "answer": " ".join(example_groups[0])},
    }
    return HaystackDraft(fields=fields, references=groups[0], needles=lines, stream=noise,
                         inserts=_inserts(rng, chains), insert_cost=insert_cost(data.counter, lines, SEP))
