"""Addresses, credentials and answers of HTTP endpoints, shared by the OpenAI-compatible backend, the probe, the server
tokenizer and server introspection: how a user's URL becomes an API root, what of it may be written down, and
where the key comes from."""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx

from ruler.errors import RulerError

DEFAULT_KEY_ENV = "OPENAI_API_KEY"


def api_key_from_env(name: str | None) -> str | None:
    """The key in `name` (which must then be set), else in OPENAI_API_KEY if set; never written anywhere."""
    key = os.environ.get(name or DEFAULT_KEY_ENV)
    if name and not key:
        raise RulerError(f"the API key variable {name} is not set")
    return key


def api_base(url: str) -> str:
    """`http://host:8000`, `http://host:8000/` and `http://host:8000/v1` all mean the `/v1` API root. A query
    string (Azure's `?api-version=`) is kept apart, for every request: see `query_params`."""
    if not re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", url):
        raise RulerError(f"--base-url {public_url(url)} has no scheme: write http://{public_url(url)} (or https://)")
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, path if path.endswith("/v1") else path + "/v1", "", ""))


def query_params(url: str) -> list[tuple[str, str]]:
    """The query of a base URL, sent with every request to it, as written (blank and repeated keys kept)."""
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


def server_root(url: str) -> str:
    """The server's root, where non-OpenAI routes live (llama-server's `/props`, Ollama's `/api/show` ...)."""
    return api_base(url).removesuffix("/v1")


def public_url(url: str) -> str:
    """The URL without credentials or query string, fit for a manifest."""
    parts = urlsplit(url if "://" in url else "//" + url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")).removeprefix("//")


#: what may carry a secret in text the toolkit writes or prints: a URL's user info, query values, and key-like words
SECRETS = ((re.compile(r"(\w+://)[^/\s@]+@"), r"\1"), (re.compile(r"([?&][^=&\s'\"]+=)[^&\s'\"]+"), r"\1***"),
           (re.compile(r"\b(?:sk-|hf_|gh[pousr]_)[A-Za-z0-9_\-]{12,}"), "***"),
           (re.compile(r"(Bearer\s+)\S+", re.IGNORECASE), r"\1***"))


def scrub(text: str) -> str:
    """`text` without credentials: user info and query values of URLs, bearer tokens, key-like words."""
    for pattern, replacement in SECRETS:
        text = pattern.sub(replacement, text)
    return text


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def positive_int(value: Any) -> int | None:
    """A count or size from a server's JSON: a positive integer (not a boolean), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The JSON object of a successful response, or None (an error status, not JSON, not an object)."""
    if response.status_code != 200:
        return None
    try:
        payload = response.json()
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None
