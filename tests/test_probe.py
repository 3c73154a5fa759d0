"""`ruler probe` finds the largest prompt a real server accepts when it does not report its window, and `ruler run`
then uses that window: lengths beyond it are skipped, not sent."""

from __future__ import annotations

import json

import pytest
from conftest import serving_smollm2

from ruler.cli import main


@pytest.fixture(scope="module")
def small_server():
    """SmolLM2 served with a 2,048-token context (llama.cpp does not report it in /v1/models)."""
    with serving_smollm2(2048) as url:
        yield url


def test_probe_finds_the_window_a_server_does_not_report(small_server, capsys) -> None:
    assert main(["probe", "--model", "smollm2", "--base-url", small_server, "--tokenizer", "smollm2", "--start",
                 "1k", "--max", "8k"]) == 0
    printed = capsys.readouterr().out
    accepted = int(printed.split("accepts prompts of ")[1].split()[0].replace(",", ""))
    refused = int(printed.split("refused ")[1].split()[0].replace(",", ""))
    assert 2048 - 64 <= accepted + 1 <= 2048 < refused + 1  # bisected to 64 tokens (1% of larger windows)
    assert refused - accepted <= 64


def test_a_run_uses_the_probed_window(small_server, tmp_path, capsys) -> None:
    main(["probe", "--model", "smollm2", "--base-url", small_server, "--tokenizer", "smollm2", "--start", "1k",
          "--max", "8k"])
    capsys.readouterr()
    out = tmp_path / "run"
    assert main(["run", "--model", "smollm2", "--base-url", small_server, "--tokenizer", "smollm2", "--lengths",
                 "1k,4k", "--tasks", "niah_single_1", "--samples", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "skipping 4k: beyond the model's" in printed.err and "(probed)" in printed.err
    assert "largest accepted 1k (probed window" in printed.out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run"]["window"] is None and 2048 - 64 <= manifest["run"]["probed_window"] <= 2048
