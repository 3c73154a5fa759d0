"""What an OpenAI-compatible server says about the context it serves, read before anything is sent.

Servers often serve less than the model was trained for, and most then cut long prompts silently: llama-server
divides `-c` among its `--parallel` slots, Ollama keeps the last `num_ctx` tokens (2,048 or 4,096 unless set),
LM Studio loads models with a shorter context than they support. Each says so on a route of its own, read here:
llama-server `/props` (the slot's `n_ctx`, `total_slots`) beside `/v1/models` (`meta.n_ctx_train`), Ollama
`/api/show` (the model's `context_length`, the `num_ctx` parameter) and `/api/ps`, LM Studio `/api/v0/models/{id}`
(`loaded_context_length`, `max_context_length`), and the `/v1/models` entry of vLLM (`max_model_len`) and of hosted
APIs (OpenRouter's `context_length`). Each reader answers None for a server that is not its kind.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import httpx

from ruler.backends.base import ServedContext
from ruler.endpoints import json_object, positive_int

#: a model's entry in `/v1/models`
Entry = dict[str, Any]
#: fields of a `/v1/models` entry that give the window the server serves
LISTED_WINDOW = ("max_model_len", "context_length", "context_window", "max_context_length")


async def _json(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> dict[str, Any] | None:
    """The JSON object a route answers with, or None (no such route, an error, not JSON)."""
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.HTTPError:
        return None
    return json_object(response)


async def _llama_server(client: httpx.AsyncClient, root: str, model: str, entry: Entry) -> ServedContext | None:
    props = await _json(client, "GET", f"{root}/props")
    settings = (props or {}).get("default_generation_settings")
    served = positive_int(settings.get("n_ctx")) if isinstance(settings, dict) else None
    if served is None:
        return None
    slots = positive_int(props.get("total_slots")) or 1
    trained = positive_int((entry.get("meta") or {}).get("n_ctx_train"))
    split = f", {slots} slots" if slots > 1 else ""
    fix = None
    if trained:
        fix = (f"start llama-server with -c {trained * slots} ({slots} --parallel slots share -c), or "
               f"--parallel 1 -c {trained}") if slots > 1 else f"start llama-server with -c {trained}"
    return ServedContext(served, trained, f"llama-server /props: n_ctx {served:,} a slot{split}", fix)


def _ollama_num_ctx(show: dict[str, Any]) -> int | None:
    match = re.search(r"^\s*num_ctx\s+(\d+)", str(show.get("parameters") or ""), re.MULTILINE)
    return int(match.group(1)) if match else None


async def _ollama(client: httpx.AsyncClient, root: str, model: str, entry: Entry) -> ServedContext | None:
    if not (await _json(client, "GET", f"{root}/api/version") or {}).get("version"):
        return None
    show = await _json(client, "POST", f"{root}/api/show", json={"model": model}) or {}
    info = show.get("model_info") or {}
    trained = next((positive_int(value) for key, value in info.items() if key.endswith(".context_length")), None)
    served, source = _ollama_num_ctx(show), "Ollama /api/show: num_ctx"
    if served is None:
        running = (await _json(client, "GET", f"{root}/api/ps") or {}).get("models") or []
        loaded = [m for m in running if isinstance(m, dict) and model in (m.get("name"), m.get("model"))]
        served = positive_int(loaded[0].get("context_length")) if loaded else None
        source = "Ollama /api/ps: context_length" if served else (
            "Ollama: num_ctx is not set, so the server's default applies (2,048 or 4,096 tokens, or "
            "OLLAMA_CONTEXT_LENGTH), and longer prompts lose their beginning")
    fix = (f"set num_ctx to {trained}: OLLAMA_CONTEXT_LENGTH={trained} where the server starts, or PARAMETER num_ctx "
           f"{trained} in a Modelfile (the OpenAI-compatible API ignores num_ctx in requests)") if trained else None
    return ServedContext(served, trained, source, fix)


async def _lm_studio(client: httpx.AsyncClient, root: str, model: str, entry: Entry) -> ServedContext | None:
    found = await _json(client, "GET", f"{root}/api/v0/models/{quote(model, safe='')}")
    if not found or "max_context_length" not in found:
        return None
    served, trained = positive_int(found.get("loaded_context_length")), positive_int(found.get("max_context_length"))
    fix = (f"load the model with a context length of {trained} (LM Studio's load settings, or lms load {model} "
           f"--context-length {trained})") if trained else None
    return ServedContext(served, trained, f"LM Studio /api/v0/models ({found.get('state', 'unknown state')})", fix)


def _from_listing(entry: Entry) -> ServedContext:
    """vLLM's `max_model_len`, OpenRouter's `context_length` ...: the window the endpoint serves."""
    for place in (entry, entry.get("top_provider") or {}):
        for name in LISTED_WINDOW:
            if window := positive_int(place.get(name)):
                return ServedContext(window, None, f"/v1/models: {name}")
    trained = positive_int((entry.get("meta") or {}).get("n_ctx_train"))
    return ServedContext(None, trained, "/v1/models: meta.n_ctx_train" if trained else None)


READERS: tuple[Callable[[httpx.AsyncClient, str, str, Entry], Awaitable[ServedContext | None]], ...] = (
    _llama_server, _lm_studio, _ollama)


async def served_context(client: httpx.AsyncClient, root: str, model: str, entry: Entry) -> ServedContext:
    """The first server kind that recognises itself, else what the `/v1/models` entry says."""
    for reader in READERS:
        if (found := await reader(client, root, model, entry)) is not None:
            return found
    return _from_listing(entry)
