"""The backend contract: one request in, one completion out. Backends know prompts and tokens, never tasks."""

from __future__ import annotations

from abc import ABC, abstractmethod
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

    async def context_window(self) -> int | None:
        """The model's window in tokens when the backend can tell (server metadata, model config)."""
        return None

    async def prices(self) -> Prices | None:
        """What a million input and output tokens cost, when the backend's listing says (OpenRouter does)."""
        return None

    def describe(self) -> dict[str, Any]:
        """What identifies this backend in a run's manifest (never secrets)."""
        return {"backend": self.name}

    async def aclose(self) -> None:
        """Release connections, threads or GPU memory."""
