"""Plain records that cross module boundaries; each round-trips through JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Sample:
    """A stored sample: its recipe (task, length, index, seed and the fitted haystack size) and what it produced.

    The prompt text itself is not stored: it is rebuilt from the recipe and checked against `prompt_sha256`.
    """

    id: str
    task: str
    length: int
    index: int
    seed: int
    units: int
    words: int
    max_new_tokens: int
    metric: str
    answer_prefix: str
    references: list[str]
    #: where each needle (or gold document, or chain line) starts, as a fraction of the prompt's tokens
    depths: list[float]
    prompt_tokens: int
    prompt_sha256: str
    #: which draw made the sample: 0, or more when earlier draws broke an invariant (see InvalidSample)
    draw: int = 0
    #: how its length was counted: "constructed" from its pieces (ruler.construct) or "tokenized" whole
    counted: str = "tokenized"

    @staticmethod
    def make_id(task: str, length: int, index: int) -> str:
        return f"{task}/{length}/{index}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Sample:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass(frozen=True)
class Prediction:
    """One finished request, as journaled in a run's predictions.jsonl."""

    id: str
    task: str
    length: int
    index: int
    prediction: str
    validity: str
    finish_reason: str | None
    #: the prompt's token count by the local tokenizer; `usage` holds the server's own counts when it gave them
    prompt_tokens: int
    usage: dict[str, Any] | None
    latency_s: float
    error: str | None = None
    #: backend-specific timings, e.g. prefill_s and decode_s in process
    timings: dict[str, float] | None = None
    #: thinking returned apart from the text (inline thinking stays in `prediction` and is split off to score)
    reasoning: str | None = None
    #: tokens spent thinking: the server's count when it gives one, else the local tokenizer's
    reasoning_tokens: int | None = None
    #: requests made for this answer; `latency_s` times the last one only (no failed attempts, no backoff)
    attempts: int | None = None
    #: sent with no other request in flight, so its latency is the model's service time, not a queue's
    alone: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Prediction:
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})


@dataclass(frozen=True)
class Prices:
    """US dollars per million tokens."""

    input: float
    output: float

    def cost(self, input_tokens: float, output_tokens: float) -> float:
        return (input_tokens * self.input + output_tokens * self.output) / 1e6
