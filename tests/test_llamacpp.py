"""`ruler run` against a real OpenAI-compatible server: llama.cpp (llama-cpp-python) serving SmolLM2-135M-Instruct
on loopback, through both endpoints. Whatever the model answers is scored; nothing here is faked."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ruler.cli import main
from ruler.tokenizers import embedded_gguf


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server():
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_gguf("smollm2")), "--model_alias",
         "smollm2", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "8192", "--n_threads", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(url + "/models", timeout=2):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("llama.cpp server did not start") from None
            time.sleep(0.5)
    yield url
    process.terminate()
    process.wait(timeout=30)


def predictions(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("mode,endpoint_usage", [("prefill", True), ("chat", True)])
def test_a_real_server_answers_every_request(llama_server, tmp_path, capsys, mode: str, endpoint_usage: bool):
    out = tmp_path / mode
    code = main(["run", "--model", "smollm2", "--base-url", llama_server, "--tokenizer", "smollm2", "--lengths",
                 "1k", "--tasks", "niah_single_1", "--samples", "2", "--mode", mode, "--concurrency", "1",
                 "--out", str(out)])
    assert code == 0
    records = predictions(out)
    assert len(records) == 2
    assert all(r["validity"] in {"ok", "truncated", "empty"} for r in records), records
    assert all(r["usage"]["prompt_tokens"] > 800 and r["latency_s"] > 0 for r in records)
    assert "niah_single_1" in capsys.readouterr().out
