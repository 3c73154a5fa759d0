"""Needle in a haystack, RULER's eight variants: single, multi-key, multi-value and multi-query needles
in a noise, essay or all-distractor haystack. The variant is data (configs/tasks.yaml), not code."""

from __future__ import annotations

import hashlib
import math
import random
import uuid
from typing import Any

import numpy as np

from generators.base import Draft, GenerationDefect, derive_rng
from generators.haystack import (
    NOISE_LINES,
    HaystackDraft,
    Insert,
    Periodic,
    Shuffled,
    fractions_in_order,
    insert_cost,
    pick_depths,
)
from generators.resources import Resources

NEEDLE = "One of the special magic {value_type} for {key} is: {value}."
#: distractor lines are drawn and counted in blocks of this many, once per process and tokenizer
BLOCK = 4096
#: a sample's pool holds this many times the lines its length needs (some give way to its own keys and values),
#: counting a line at LINE_TOKENS, fewer tokens than any tokenizer makes of one: the pool, and so the sample's
#: lines, are the same whatever the tokenizer
POOL_MARGIN = 2
LINE_TOKENS = 8
#: a distractor line: its key, its value and the line
Entry = tuple[str, str, str]


def _draw(kind: str, rng: random.Random, data: Resources) -> str:
    """A random key or value as RULER draws them: 7-digit numbers, adjective-noun words, or uuid4 strings."""
    if kind == "numbers":
        return str(rng.randint(10**6, 10**7 - 1))
    if kind == "words":
        return f"{rng.choice(data.words('adjectives'))}-{rng.choice(data.words('nouns'))}"
    if kind == "uuids":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    raise GenerationDefect(f"unknown needle type {kind!r}: use numbers, words or uuids")


def _distinct(kind: str, count: int, rng: random.Random, data: Resources, taken: set[str]) -> list[str]:
    drawn: list[str] = []
    while len(drawn) < count:
        value = _draw(kind, rng, data)
        if value not in taken:
            taken.add(value)
            drawn.append(value)
    return drawn


def _block(key_type: str, value_type: str, block: int, data: Resources) -> tuple[list[Entry], np.ndarray]:
    """Block `block` of the run's distractor lines for a key and value type: (key, value, line) each, and each
    line's tokens with the newline after it, counted among its neighbours (and kept on disk)."""
    rng = derive_rng(data.seed, "distractors", key_type, value_type, block)
    entries = []
    for _ in range(BLOCK):
        key, value = _draw(key_type, rng, data), _draw(value_type, rng, data)
        entries.append((key, value, NEEDLE.format(value_type=value_type, key=key, value=value)))
    lines = [line + "\n" for _, _, line in entries]
    digest = hashlib.sha256("".join(lines).encode()).hexdigest()[:16]
    return entries, data.counter.costs_between(f"distractors:{digest}", lambda: lines, "")


def _distractors(key_type: str, value_type: str, length: int, taken: set[str], rng: random.Random,
                 data: Resources) -> Shuffled:
    """The sample's distractor lines: a pool large enough for `length`, less any line with one of the sample's
    keys or values, in the sample's own random order. RULER draws every line afresh; a pool drawn once lets every
    line be counted before any prompt holds it."""
    def block(b: int) -> tuple[list[Entry], np.ndarray]:
        return data.derived(("distractors", key_type, value_type, b), lambda: _block(key_type, value_type, b, data))

    def pool(blocks: int) -> tuple[list[Entry], np.ndarray]:
        parts = [block(b) for b in range(blocks)]
        return [entry for part, _ in parts for entry in part], np.concatenate([costs for _, costs in parts])

    blocks = math.ceil(POOL_MARGIN * length / LINE_TOKENS / BLOCK)
    entries, costs = data.derived(("distractor pool", key_type, value_type, blocks), lambda: pool(blocks))
    shuffled = np.random.default_rng(rng.getrandbits(64)).permutation(len(entries))
    order = [i for i in shuffled.tolist() if entries[i][0] not in taken and entries[i][1] not in taken]
    return Shuffled([entries[i][2] for i in order], costs[order], "\n")


def generate(args: dict[str, Any], length: int, index: int, rng: random.Random, data: Resources) -> Draft:
    num_queries = args["num_queries"]
    num_keys, num_values = max(args["num_keys"], num_queries), args["num_values"]
    key_type, value_type = args["key_type"], args["value_type"]
    taken: set[str] = set()
    keys = _distinct(key_type, num_keys, rng, data, taken)
    values = [_distinct(value_type, num_values, rng, data, taken) for _ in keys]
    needles = [NEEDLE.format(value_type=value_type, key=key, value=value)
               for key, key_values in zip(keys, values) for value in key_values]
    rng.shuffle(needles)
    queried = sorted(rng.sample(range(num_keys), num_queries))
    query_keys = [keys[i] for i in queried]
    single = num_queries * num_values == 1
    fields = {
        "single": single,
        "value_type": value_type[:-1] if single else value_type,
        "query": query_keys[0] if len(query_keys) == 1 else ", ".join(query_keys[:-1]) + ", and " + query_keys[-1],
    }
    references = [value for i in queried for value in values[i]]

    haystack = args["haystack"]
    if haystack == "essay":
        corpus = data.essay
        stream = Periodic(corpus.words, " ", data.counter)
        fractions, starts, sep = pick_depths(rng, len(needles)), corpus.sentence_starts, " "
    elif haystack in ("noise", "needle"):
        sep, starts = "\n", None
        fractions = fractions_in_order(rng, len(needles))
        if haystack == "noise":
            stream = Periodic(NOISE_LINES, sep, data.counter)
        else:
            stream = _distractors(key_type, value_type, length, taken, random.Random(rng.getrandbits(64)), data)
    else:
        raise GenerationDefect(f"unknown haystack {haystack!r}: use noise, essay or needle")
    return HaystackDraft(
        fields=fields, references=references, needles=needles, stream=stream,
        inserts=[Insert(needle, fraction) for needle, fraction in zip(needles, fractions)],
        sentence_starts=starts, insert_cost=insert_cost(data.counter, needles, sep),
        max_units=stream.size if isinstance(stream, Shuffled) else None,
    )
