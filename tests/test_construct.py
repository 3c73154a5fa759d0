"""Counting prompts by construction (ruler/construct.py): the count is a full tokenization's, needle positions
included, every task takes that path with the test tokenizers, and a tokenizer where the pieces do not add up keeps
the full tokenization."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ruler.construct import CONSTRUCTED, TOKENIZED
from ruler.samples import SampleBuilder
from ruler.tasks import load_tasks

TASKS = load_tasks().suites["ruler13"]


@pytest.fixture(params=["smollm2", "trained", "tiktoken"])
def tokenizer(request):
    return request.getfixturevalue({"tiktoken": "tiktoken_tokenizer"}.get(request.param, request.param))


def builder_like(workspace, tokenizer) -> SampleBuilder:
    """A fresh builder over the workspace's data and templates (its own self-check verdicts) for `tokenizer`."""
    builder = workspace.builder
    return SampleBuilder(tokenizer, builder.renderer, builder.resources, builder.seed)


@pytest.mark.parametrize("task", TASKS)
def test_every_task_is_counted_by_construction_as_a_full_tokenization_counts_it(tokenizer, workspaces, task) -> None:
    """Count and needle depths alike, at a length none of the self-check's prompts has."""
    workspace = workspaces(tokenizer)
    spec = workspace.registry.tasks[task]
    sample, text = workspace.builder.build(spec, 20_000, 1)
    draft, frame = workspace.builder._draft(spec, sample.length, sample.index, sample.draw)
    marks = [len(frame.head) + mark for mark in draft.layout(sample.units, sample.words).marks]
    tokens, positions = tokenizer.measure(text, marks)
    total = tokens + frame.added_tokens
    assert sample.counted == CONSTRUCTED
    assert sample.prompt_tokens == total
    assert sample.depths == [round(position / total, 6) for position in positions]


@pytest.mark.parametrize("task", ["niah_multivalue", "vt", "cwe", "qa_1"])
def test_a_constructed_sample_is_the_sample_a_full_tokenization_makes(smollm2, workspaces, task) -> None:
    workspace = workspaces(smollm2)
    spec = workspace.registry.tasks[task]
    constructed, text = workspace.builder.build(spec, 12_000, 2)
    whole = builder_like(workspace, smollm2)
    whole.construction._trusted[task] = False
    tokenized, whole_text = whole.build(spec, 12_000, 2)
    assert (constructed.counted, tokenized.counted) == (CONSTRUCTED, TOKENIZED)
    assert whole_text == text
    assert dataclasses.replace(tokenized, counted=CONSTRUCTED) == constructed


class ShiftedStarts:
    """A fault: token offsets one character late, as a tokenizer whose offsets disagree with its own count would
    give; everything else is the real tokenizer's."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.__dict__.update({name: getattr(inner, name) for name in (
            "name", "fingerprint", "chat_template", "bos_token", "eos_token", "added_tokens", "exact_starts")})

    def count_batch(self, texts):
        return self._inner.count_batch(texts)

    def count(self, text):
        return self._inner.count(text)

    def measure(self, text, marks=()):
        return self._inner.measure(text, marks)

    def token_starts(self, text):
        starts = self._inner.token_starts(text)
        return np.minimum(starts + 1, max(len(text) - 1, 0))


def test_a_tokenizer_whose_pieces_do_not_add_up_keeps_the_full_tokenization(trained, workspaces) -> None:
    workspace = workspaces(trained)
    spec = workspace.registry.tasks["niah_single_2"]
    faulty = builder_like(workspace, ShiftedStarts(trained))
    sample, text = faulty.build(spec, 8192, 0)
    assert sample.counted == TOKENIZED
    assert sample.prompt_tokens == trained.measure(text)[0]


def test_a_tokenizer_without_exact_offsets_is_never_trusted(trained, workspaces) -> None:
    """A server's tokenizer only counts; its offsets are spread evenly, so construction is not even checked."""
    workspace = workspaces(trained)
    inexact = ShiftedStarts(trained)
    inexact.exact_starts = False
    inexact.token_starts = trained.token_starts
    builder = builder_like(workspace, inexact)
    sample, _ = builder.build(workspace.registry.tasks["vt"], 8192, 0)
    assert sample.counted == TOKENIZED
