"""The backend contract: one request in, one completion out. Backends know prompts and tokens, never tasks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ruler.types import Prices


@dataclass(frozen=True)
class Request:
    """One prompt to complete greedily. `prompt` is the exact text to continue (prefill or base mode) or, with
    `chat`, the user message of a chat request (the server applies its own template)."""

    id: str
    prompt: str
    max_new_tokens: int
    chat: bool = False


@dataclass(frozen=True)
class Completion:
    """What came back, or why nothing usable did. `failure` is None, `overflow` (the context was refused),
    `refused` (the model or a filter declined) or `error` (retries exhausted; `error` says why)."""

    text: str = ""
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    latency_s: float = 0.0
    failure: str | None = None
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    #: thinking the server returned apart from the text (`reasoning_content`, `reasoning`)
    reasoning: str = ""
    #: requests made for this answer (retries included); `latency_s` times the last one only
    attempts: int = 1
    #: with an overflow: the window the server stated in its refusal (tokens), when it stated one
    stated_window: int | None = None


@dataclass(frozen=True)
class ServedContext:
    """What a backend can tell about its context before anything is sent: the window one request may use as the
    server is configured now (`served`), against the model's own (`trained`), with where each figure came from
    and how to serve the whole window when the two differ."""

    served: int | None = None
    trained: int | None = None
    #: which endpoint or file said so, e.g. "llama-server /props"
    source: str | None = None
    #: how to make the server serve the trained window, when it serves less
    fix: str | None = None

    @property
    def window(self) -> int | None:
        """The window to size runs by: what is served, else what the model was trained for."""
        return self.served or self.trained

    def describe(self) -> str | None:
        """One line for people: the served window beside the trained one, with the fix when it serves less (or
        does not say)."""
        if self.window is None:
            return None
        parts = [f"the server serves {self.served:,} tokens a request"] if self.served else []
        if self.trained and self.trained != self.served:
            parts.append(f"the model was trained for {self.trained:,}" if parts else
                         f"the model's window is {self.trained:,} tokens")
        line = ", ".join(parts) + (f" ({self.source})" if self.source else "")
        if self.fix and self.trained and (self.served or 0) < self.trained:
            line += f"; to serve the whole window, {self.fix}"
        return line


@dataclass(frozen=True)
class BackendOptions:
    """Settings a backend may use; each takes what applies to it."""

    #: one server, or several replicas of the same model
    base_url: list[str] | None = None
    api_key: str | None = None
    timeout: float = 600.0
    max_retries: int = 6
    concurrency: int = 8
    device: str | None = None
    dtype: str | None = None
    chat_template: str | None = None
    #: `low`, `medium` or `high` for APIs that take a reasoning effort
    reasoning_effort: str | None = None
    #: stream the answer (server-sent events), which times the first token
    stream: bool = False
    #: merged into every request body (server-specific settings such as a repetition penalty)
    extra_body: dict[str, Any] = field(default_factory=dict)
    #: where a backend says what it changed on its own (e.g. fewer streams at once to a server that cuts them)
    notify: Callable[[str], None] = lambda message: None


class Backend(ABC):
    """A model behind one async `generate`; the optional hooks have safe defaults."""

    name: str = "backend"

    @classmethod
    @abstractmethod
    def create(cls, model: str, options: BackendOptions) -> Backend:
        """Build the backend from the model name and the run's options (raise RulerError for bad ones)."""

    @abstractmethod
    async def generate(self, request: Request) -> Completion:
        """Complete one request; never raise for a model or server failure, report it in the Completion."""

    async def context(self) -> ServedContext:
        """The window the backend serves and the model's own, when it can tell (server metadata, model config)."""
        return ServedContext()

    async def prices(self) -> Prices | None:
        """What a million input and output tokens cost, when the backend's listing says (OpenRouter does)."""
        return None

    def describe(self) -> dict[str, Any]:
        """What identifies this backend in a run's manifest (never secrets)."""
        return {"backend": self.name}

    async def aclose(self) -> None:
        """Release connections, threads or GPU memory."""
