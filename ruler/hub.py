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


def cached_or_hub(load: Callable[[bool], T], name: str, what: str, kind: str = "model",
                  fix: str = "pass a local folder or .gguf file") -> T:
    """`load(local_files_only)`: from a local path or the hub's local cache without asking the hub; anything else
    from the hub, once it answers. `kind`: model (tokenizers too) or dataset, the two caches of the hub."""
    if Path(name).exists():
        return load(False)
    if _cached(name, kind):
        return load(True)
    _require_hub(name, what, fix)
    return load(False)


def _cached(name: str, kind: str) -> bool:
    """Whether the hub's cache holds a snapshot of the repository `name` (its layout: models--org--name,
    datasets--org--name), or, for a dataset, the datasets library's own cache does (org___name)."""
    from huggingface_hub import constants

    if (Path(constants.HF_HUB_CACHE) / f"{kind}s--{name.replace('/', '--')}" / "snapshots").is_dir():
        return True
    if kind == "dataset":
        from datasets import config

        return (Path(config.HF_DATASETS_CACHE) / name.replace("/", "___")).is_dir()
    return False


def _require_hub(name: str, what: str, fix: str) -> None:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise RulerError(f"cannot load {what} {name!r}: it is not in the local cache and HF_HUB_OFFLINE is set; {fix}")
    endpoint = os.environ.get("HF_ENDPOINT") or HUB
    try:
        httpx.head(endpoint, timeout=5.0)
    except httpx.HTTPError as error:
        raise RulerError(f"cannot load {what} {name!r}: it is not in the local cache and {endpoint} cannot be "
                         f"reached ({type(error).__name__}); {fix}") from None
