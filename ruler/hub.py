"""The Hugging Face hub, asked only when it can answer: a hub id that is not in the local cache, on a machine that
cannot reach the hub, fails in seconds with one line instead of after a minute of retries."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx

from ruler.errors import RulerError

T = TypeVar("T")
HUB = "https://huggingface.co"


def cached_or_hub(load: Callable[[bool], T], name: str, what: str) -> T:
    """`load(local_files_only)` from a local path or the local cache; from the hub only once it answers."""
    if Path(name).exists():
        return load(False)
    try:
        return load(True)
    except Exception:  # transformers raises OSError, ValueError ... for what the cache lacks
        _require_hub(name, what)
    return load(False)


def _require_hub(name: str, what: str) -> None:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise RulerError(f"cannot load {what} {name!r}: it is not in the local cache and HF_HUB_OFFLINE is set; "
                         "pass a local folder or .gguf file")
    endpoint = os.environ.get("HF_ENDPOINT") or HUB
    try:
        httpx.head(endpoint, timeout=5.0)
    except httpx.HTTPError as error:
        raise RulerError(f"cannot load {what} {name!r}: it is not in the local cache and {endpoint} cannot be "
                         f"reached ({type(error).__name__}); pass a local folder or .gguf file") from None
