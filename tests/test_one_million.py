"""The 1M-token path, once per task family and haystack: exact, checked, and compact on disk."""

from __future__ import annotations

import json
import math

import pytest

ONE_MILLION = 1024 * 1024


@pytest.mark.parametrize("task", ["niah_single_1", "niah_single_2", "niah_multikey_3", "vt", "cwe", "fwe", "qa_2"])
def test_one_million_token_sample_is_exact_and_small_on_disk(smollm2, workspaces, task: str) -> None:
    workspace = workspaces(smollm2)
    spec = workspace.registry.tasks[task]
    sample, text = workspace.builder.build(spec, ONE_MILLION, 0)
    assert sample.prompt_tokens == workspace.tokenizer.measure(text)[0]
    assert math.ceil(0.995 * (ONE_MILLION - spec.max_new_tokens)) <= sample.prompt_tokens
    assert sample.prompt_tokens + spec.max_new_tokens <= ONE_MILLION
    assert len(json.dumps(sample.to_json()).encode()) <= 16 * 1024
