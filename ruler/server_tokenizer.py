"""`--tokenizer server`: size prompts with the server's own tokenize endpoint, when no local tokenizer is at hand.

Three endpoint shapes are tried in turn: llama.cpp's `llama-server` (`/tokenize`, `content`), vLLM and SGLang
(`/tokenize`, `prompt`) and llama-cpp-python (`/extras/tokenize`, `input`). Counts are exact and cached per text.
These endpoints give token ids without character offsets, so where the toolkit needs offsets (the per-word costs of
a corpus, a needle's depth) they are estimated by spreading each chunk's tokens over its characters; the final
count of every prompt is still the server's, so prompts are as exact as with a local tokenizer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import numpy as np

from ruler.endpoints import auth_headers, json_object, public_url, query_params, server_root
from ruler.errors import RulerError
from ruler.tokenizers import Tokenizer

#: characters per request when a long text is tokenized in pieces (cut at whitespace); shorter texts are cached
CHUNK = 4000
#: a text whose tokens identify a vocabulary
PROBE = "Hello, world! Größe 1234567 ünïcödé \u4e2d\u6587 <b>tags</b>\n\ttabs  spaces."
#: (path, request body) for each endpoint shape
SHAPES: tuple[tuple[str, Callable[[str, str], dict[str, Any]]], ...] = (
    ("/tokenize", lambda text, model: {"content": text, "add_special": True}),
    ("/tokenize", lambda text, model: {"model": model, "prompt": text}),
    ("/extras/tokenize", lambda text, model: {"input": text}),
)


def _ids(response: httpx.Response) -> list[int] | None:
    """Token ids from any endpoint shape (a list of ids, or of {"id", "piece"} with llama-server's pieces)."""
    tokens = (json_object(response) or {}).get("tokens")
    if not isinstance(tokens, list):
        return None
    return [token["id"] if isinstance(token, dict) else token for token in tokens]


class ServerTokenizer(Tokenizer):
    #: a server counts tokens but does not say where they start
    exact_starts = False

    def __init__(self, client: httpx.Client, path: str, shape: Callable[[str, str], dict[str, Any]], model: str,
                 name: str) -> None:
        self._client, self._path, self._shape, self._model = client, path, shape, model
        self._counts: dict[str, int] = {}
        self.name = name
        self.added_tokens = len(self._tokenize(""))
        self.fingerprint = hashlib.sha256(json.dumps([model, self._tokenize(PROBE)]).encode()).hexdigest()
        self.chat_template = self._template()

    @classmethod
    def connect(cls, base_url: str, model: str, api_key: str | None = None, timeout: float = 60.0) -> ServerTokenizer:
        """The first endpoint shape the server answers; a one-line error when it has none."""
        root = server_root(base_url)
        headers = auth_headers(api_key)
        client = httpx.Client(base_url=root, params=query_params(base_url), headers=headers, timeout=timeout)
        for path, shape in SHAPES:
            try:
                response = client.post(path, json=shape("hello world", model))
            except httpx.HTTPError as failure:
                raise RulerError(f"cannot reach {public_url(root)}: {type(failure).__name__} {failure}") from None
            if _ids(response) is not None:
                return cls(client, path, shape, model, f"server:{public_url(root)}")
        client.close()
        raise RulerError(f"{public_url(root)} has no tokenize endpoint (/tokenize, /extras/tokenize); "
                         "pass --tokenizer with the model's tokenizer")

    def _tokenize(self, text: str) -> list[int]:
        response = self._client.post(self._path, json=self._shape(text, self._model))
        ids = _ids(response)
        if ids is None:
            raise RulerError(f"{self.name} could not tokenize (HTTP {response.status_code}: {response.text[:200]})")
        return ids

    def _template(self) -> str | None:
        """llama-server's `/props` carries the model's chat template; other servers keep theirs to themselves."""
        try:
            response = self._client.get("/props")
        except httpx.HTTPError:
            return None
        template = (json_object(response) or {}).get("chat_template")
        return template if isinstance(template, str) and template else None

    def count(self, text: str) -> int:
        if len(text) > CHUNK:
            return len(self._tokenize(text)) - self.added_tokens
        if text not in self._counts:
            self._counts[text] = len(self._tokenize(text)) - self.added_tokens
        return self._counts[text]

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        return [self.count(text) for text in texts]

    def measure(self, text: str, marks: Sequence[int] = ()) -> tuple[int, list[int]]:
        """The server's count; each mark's token index estimated in proportion to the characters before it."""
        total = self.count(text)
        return total, [min(total, round(total * mark / max(len(text), 1))) for mark in marks]

    def token_starts(self, text: str) -> np.ndarray:
        """Estimated: each chunk's tokens (counted by the server) spread evenly over the chunk's characters."""
        starts, begin = [], 0
        while begin < len(text):
            end = len(text) if len(text) - begin <= CHUNK else text.rfind(" ", begin + 1, begin + CHUNK) + 1
            end = end if end > begin else min(len(text), begin + CHUNK)
            tokens = self.count(text[begin:end])
            starts.append(begin + (np.arange(tokens) * (end - begin)) // max(tokens, 1))
            begin = end
        return np.concatenate(starts).astype(np.int64) if starts else np.zeros(0, dtype=np.int64)

