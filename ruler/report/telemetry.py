"""Per-length serving figures beside the scores: time to first token, end-to-end latency, decode speed, thinking
tokens, and how far the server's prompt-token counts drift from the local ones (a wrong tokenizer or chat
template shows up here before it shows up as a strange score).

Latency and time to first token are the model's service time, not a queue's: taken from the server's own timings
where it returns them (llama-server's `timings`), else from the requests sent alone, else (a run that sent none
alone) from every request, said to include queueing. Each row says which.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ruler.lengths import format_length
from ruler.scoring.validity import SCORED
from ruler.types import Prediction

#: relative prompt-token drift above which the summary warns
DRIFT_WARNING = 0.01


@dataclass(frozen=True)
class LengthTelemetry:
    """Figures over the answered requests at one length; None where no request reported them."""

    length: int
    requests: int
    ttft_p50: float | None
    ttft_p95: float | None
    latency_p50: float | None
    latency_p95: float | None
    #: median output tokens per second of decoding (after the first token)
    decode_tokens_per_s: float | None
    reasoning_tokens_mean: float | None
    #: mean of (server prompt tokens - local prompt tokens) / local, and the largest such difference in size
    drift_mean: float | None
    drift_max: float | None
    #: where the latency figures come from: "server timings", "N sent alone", or "under load (queueing included)"
    measured: str = ""


def _quantile(values: list[float], q: float) -> float | None:
    return float(np.quantile(values, q)) if values else None


def _ttft(prediction: Prediction) -> float | None:
    timings = prediction.timings or {}
    return timings.get("server_prefill_s", timings.get("ttft_s", timings.get("prefill_s")))


def _latency(prediction: Prediction) -> float | None:
    timings = prediction.timings or {}
    if "server_prefill_s" in timings:
        return timings["server_prefill_s"] + timings.get("server_decode_s", 0.0)
    return prediction.latency_s or None


def _timed(group: list[Prediction]) -> tuple[list[Prediction], str]:
    """The requests whose latency is service time, and how they were measured."""
    served = [p for p in group if "server_prefill_s" in (p.timings or {})]
    if served:
        return served, "server timings"
    alone = [p for p in group if p.alone]
    if alone:
        return alone, f"{len(alone)} sent alone"
    return group, "under load (queueing included)"


def _decode_speed(prediction: Prediction) -> float | None:
    timings = prediction.timings or {}
    decode = timings.get("server_decode_s", timings.get("decode_s"))
    tokens = (prediction.usage or {}).get("completion_tokens")
    return tokens / decode if decode and isinstance(tokens, int) and tokens > 1 else None


def _drift(prediction: Prediction) -> float | None:
    served = (prediction.usage or {}).get("prompt_tokens")
    return (served - prediction.prompt_tokens) / prediction.prompt_tokens if isinstance(served, int) else None


def telemetry(predictions: Iterable[Prediction]) -> list[LengthTelemetry]:
    by_length: dict[int, list[Prediction]] = defaultdict(list)
    for prediction in predictions:
        if prediction.validity in SCORED:
            by_length[prediction.length].append(prediction)
    rows = []
    for length in sorted(by_length):
        group = by_length[length]
        timed, measured = _timed(group)
        ttfts = [t for p in timed if (t := _ttft(p)) is not None]
        latencies = [t for p in timed if (t := _latency(p)) is not None]
        speeds = [s for p in group if (s := _decode_speed(p)) is not None]
        thinking = [p.reasoning_tokens for p in group if p.reasoning_tokens is not None]
        drifts = [d for p in group if (d := _drift(p)) is not None]
        rows.append(LengthTelemetry(
            length, len(group), _quantile(ttfts, 0.5), _quantile(ttfts, 0.95), _quantile(latencies, 0.5),
            _quantile(latencies, 0.95), _quantile(speeds, 0.5), float(np.mean(thinking)) if thinking else None,
            float(np.mean(drifts)) if drifts else None, max(drifts, key=abs) if drifts else None, measured))
    return rows


def drift_warnings(rows: list[LengthTelemetry]) -> list[str]:
    """One line per length whose server counts disagree with the local ones by more than DRIFT_WARNING."""
    return [f"warning: at {format_length(row.length)} the server counted {row.drift_mean:+.1%} prompt tokens "
            f"against the local tokenizer (largest {row.drift_max:+.1%}): wrong --tokenizer or chat template"
            + (", or a server that cuts long prompts (ruler probe tells)?" if row.drift_mean < 0 else "?")
            for row in rows if row.drift_mean is not None and abs(row.drift_mean) > DRIFT_WARNING]


#: what the serving table's columns mean, and why a cell may be "-"
NOTES = ("TTFT: time to first token, measured on streamed runs (--stream) or from the server's own timings. "
         "Latency: the whole request; \"timed on\" says which requests the latency columns use. decode tok/s: "
         "generated tokens a second, measured on streamed runs or from server timings. prompt-token drift: the "
         "server's prompt-token count against the local tokenizer's (0 when they agree), where the server reports "
         "usage. \"-\": not measured in this run.")


def table(rows: list[LengthTelemetry]) -> list[list[str]]:
    """Header and one row per length, for people."""
    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}s"

    def number(value: float | None, form: str) -> str:
        return "-" if value is None else format(value, form)

    out = [["length", "answered", "TTFT p50", "TTFT p95", "latency p50", "latency p95", "timed on",
            "decode tok/s", "thinking tokens", "prompt-token drift"]]
    for row in rows:
        out.append([format_length(row.length), str(row.requests), seconds(row.ttft_p50), seconds(row.ttft_p95),
                    seconds(row.latency_p50), seconds(row.latency_p95), row.measured,
                    number(row.decode_tokens_per_s, ".1f"), number(row.reasoning_tokens_mean, ".0f"),
                    number(row.drift_mean, "+.2%")])
    return out
