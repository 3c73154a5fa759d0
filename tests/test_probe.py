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


def test_probe_takes_the_window_the_servers_refusal_states(small_server, capsys) -> None:
    assert main(["probe", "--model", "smollm2", "--base-url", small_server, "--tokenizer", "smollm2", "--start",
                 "1k", "--max", "8k"]) == 0
    printed = capsys.readouterr().out
    assert "its refusal states a window of 2,048 tokens; window 2,048" in printed and "(stated)" in printed
    accepted = int(printed.split("serves prompts of ")[1].split()[0].replace(",", ""))
    assert 2048 - 64 <= accepted < 2048  # confirmed by a prompt just under the stated window


def test_a_run_uses_the_probed_window(small_server, tmp_path, capsys) -> None:
    main(["probe", "--model", "smollm2", "--base-url", small_server, "--tokenizer", "smollm2", "--start", "1k",
          "--max", "8k"])
    capsys.readouterr()
    out = tmp_path / "run"
    assert main(["run", "--model", "smollm2", "--base-url", small_server, "--tokenizer", "smollm2", "--lengths",
                 "1k,2k,4k", "--tasks", "niah_single_1", "--samples", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "skipping 4k: beyond the probed window (2,048 tokens, stated)" in printed.err
    assert "largest accepted 2k (probed window 2,048)" in printed.out  # the stated window itself is sent
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run"]["window"] is None and manifest["run"]["probed_window"] == 2048
