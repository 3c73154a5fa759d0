"""The in-process transformers backend on real models loaded offline: a tiny Llama built here from a config, and
SmolLM2-135M-Instruct's GGUF de-quantised by transformers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ruler.cli import main


@pytest.fixture(scope="module")
def tiny_llama(trained_tokenizer_dir, tmp_path_factory) -> Path:
    """A randomly initialised 2-layer Llama with the trained tokenizer and a 6,000-token window."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(trained_tokenizer_dir)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=6000,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    path = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


def test_a_local_model_answers_with_its_own_token_counts(tiny_llama, tmp_path) -> None:
    out = tmp_path / "run"
    assert main(["run", "--backend", "hf", "--model", str(tiny_llama), "--lengths", "2k,4k", "--tasks",
                 "niah_single_1,vt", "--samples", "2", "--out", str(out)]) == 0
    got = records(out)
    assert len(got) == 8
    for record in got:
        assert record["validity"] in {"ok", "truncated", "empty"}
        assert record["usage"]["prompt_tokens"] == record["prompt_tokens"]
        assert record["timings"]["prefill_s"] > 0 and record["timings"]["decode_s"] >= 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run"]["backend"] == "hf" and manifest["run"]["window"] == 6000


def test_lengths_past_the_model_window_are_overflow_not_a_crash(tiny_llama, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["run", "--backend", "hf", "--model", str(tiny_llama), "--lengths", "8k", "--tasks",
                 "niah_single_1", "--samples", "2", "--out", str(out), "--force"]) == 0
    assert {r["validity"] for r in records(out)} == {"overflow"}
    assert "largest accepted none | effective <8k | first failing 8k | not served whole: 8k (2 overflow)" in \
        capsys.readouterr().out


def test_chat_mode_applies_the_template_in_process(tiny_llama, tmp_path) -> None:
    out = tmp_path / "run"
    assert main(["run", "--backend", "hf", "--model", str(tiny_llama), "--lengths", "2k", "--tasks",
                 "niah_single_1", "--samples", "1", "--mode", "chat", "--out", str(out)]) == 0
    (record,) = records(out)
    assert record["usage"]["prompt_tokens"] == record["prompt_tokens"]


def test_smollm2_gguf_through_transformers_finds_the_needle(tmp_path) -> None:
    out = tmp_path / "run"
    assert main(["run", "--backend", "hf", "--model", "smollm2", "--lengths", "1k", "--tasks", "niah_single_1",
                 "--samples", "2", "--out", str(out)]) == 0
    got = records(out)
    assert [r["validity"] for r in got] == ["ok", "ok"]
    samples = {json.loads(line)["id"]: json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()}
    assert sum(samples[r["id"]]["references"][0] in r["prediction"] for r in got) >= 1
