"""Needle in a haystack, RULER's eight variants: single, multi-key, multi-value and multi-query needles
in a noise, essay or all-distractor haystack. The variant is data (configs/tasks.yaml), not code."""

from __future__ import annotations

import random
import uuid
from typing import Any

from generators.base import Draft, GenerationDefect
from generators.haystack import (
    NOISE_LINES,
    Drawn,
    HaystackDraft,
    Insert,
    Periodic,
    fractions_in_order,
    insert_cost,
    pick_depths,
)
from generators.resources import Resources

NEEDLE = "One of the special magic {value_type} for {key} is: {value}."


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
            distractors = random.Random(rng.getrandbits(64))

            def distractor() -> str:
                """A needle for another key, whose value is no answer's (else an answer would appear twice)."""
                key = _draw(key_type, distractors, data)
                while key in keys:
                    key = _draw(key_type, distractors, data)
                value = _draw(value_type, distractors, data)
                while value in taken:
                    value = _draw(value_type, distractors, data)
                return NEEDLE.format(value_type=value_type, key=key, value=value)

            stream = Drawn(distractor, sep, data.counter)
    else:
        raise GenerationDefect(f"unknown haystack {haystack!r}: use noise, essay or needle")
    return HaystackDraft(
        fields=fields, references=references, needles=needles, stream=stream,
        inserts=[Insert(needle, fraction) for needle, fraction in zip(needles, fractions)],
        sentence_starts=starts, insert_cost=insert_cost(data.counter, needles, sep),
    )
