"""The 1M-token path, once per task family and haystack kind (noise, essay, key lines, variable chains, word
lists, QA documents) with SmolLM2, and two of them with the tiktoken encoding: exact by a count ruler does not
make (llama.cpp's tokenizer for SmolLM2, Hugging Face's BPE over the tiktoken ranks), and compact on disk."""

from __future__ import annotations

import json
import math

import pytest

from ruler.construct import CONSTRUCTED

ONE_MILLION = 1024 * 1024
FAMILIES = ["niah_single_1", "niah_single_2", "niah_multikey_3", "vt", "cwe", "fwe", "qa_2"]


@pytest.mark.parametrize("case", [*(("smollm2", task) for task in FAMILIES),
                                  ("tiktoken_tokenizer", "niah_multikey_2"), ("tiktoken_tokenizer", "fwe")],
                         ids=lambda case: "-".join(case))
def test_one_million_token_sample_is_exact_and_small_on_disk(request, workspaces, independent, case) -> None:
    tokenizer = request.getfixturevalue(case[0])
    workspace = workspaces(tokenizer)
    spec = workspace.registry.tasks[case[1]]
    sample, text = workspace.builder.build(spec, ONE_MILLION, 0)
    counted = independent[tokenizer.fingerprint](text, not workspace.builder.renderer.chat.text)
    assert sample.counted == CONSTRUCTED  # the essay past its end, CWE's second word list, the pool's later blocks
    assert counted == sample.prompt_tokens
    assert math.ceil(0.995 * (ONE_MILLION - spec.max_new_tokens)) <= counted
    assert counted + spec.max_new_tokens <= ONE_MILLION
    assert len(json.dumps(sample.to_json()).encode()) <= 16 * 1024
