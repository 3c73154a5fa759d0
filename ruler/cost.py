"""What a run will cost and take before anything is sent, and a spending cap while it runs.

Input tokens are exact (every prompt is sized before it is sent); output tokens are an upper bound (each task's
answer budget, thinking budget included). Spent cost comes from the server's usage counts, the local counts where
a server gives none. Time is estimated from the requests a run folder has already answered, when it has some.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from ruler.lengths import format_length
from ruler.scoring.validity import SCORED
from ruler.types import Prediction, Prices, Sample


@dataclass(frozen=True)
class LengthEstimate:
    length: int
    requests: int
    input_tokens: int
    #: an upper bound: every answer using its whole budget
    output_tokens: int
    #: requests whose prompts are not built yet, counted at the size they will be built to
    unbuilt: int = 0


@dataclass(frozen=True)
class Unbuilt:
    """A sample not generated yet. Its prompt is known to within 0.5% before it is built, since every prompt is
    sized to its length (sizing.aim), so an estimate needs no generation."""

    length: int
    prompt_tokens: int
    max_new_tokens: int


def estimate(built: Iterable[Sample], extra_output: int = 0, unbuilt: Iterable[Unbuilt] = ()) -> list[LengthEstimate]:
    totals: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for sample, pending in [(sample, 0) for sample in built] + [(sample, 1) for sample in unbuilt]:
        row = totals[sample.length]
        row[0] += 1
        row[1] += sample.prompt_tokens
        row[2] += sample.max_new_tokens + extra_output
        row[3] += pending
    return [LengthEstimate(length, *totals[length]) for length in sorted(totals)]


def used_tokens(prediction: Prediction) -> tuple[int, int]:
    """Input and output tokens a prediction was billed for: the server's usage, else the local prompt count for an
    answer and nothing for a request that failed without usage (an overflow or an error is not billed)."""
    usage = prediction.usage or {}
    if not usage and prediction.validity not in SCORED:
        return 0, 0
    served = usage.get("prompt_tokens")
    output = usage.get("completion_tokens")
    return (served if isinstance(served, int) else prediction.prompt_tokens,
            output if isinstance(output, int) else 0)


def seconds_per_input_token(done: Iterable[Prediction]) -> tuple[float, int] | None:
    """Latency per prompt token over the answered requests of a run, and how many there were."""
    answered = [p for p in done if p.latency_s and p.prompt_tokens]
    if not answered:
        return None
    return sum(p.latency_s for p in answered) / sum(p.prompt_tokens for p in answered), len(answered)


def estimate_text(rows: list[LengthEstimate], prices: Prices | None, concurrency: int,
                  pace: tuple[float, int] | None) -> str:
    lines = [f"{'length':>8} {'requests':>9} {'input tokens':>14} {'output tokens <=':>17}"
             + (f" {'cost <= $':>10}" if prices else "")]
    for row in rows:
        lines.append(f"{format_length(row.length):>8} {row.requests:>9} {row.input_tokens:>14,} "
                     f"{row.output_tokens:>17,}"
                     + (f" {prices.cost(row.input_tokens, row.output_tokens):>10.4f}" if prices else ""))
    requests = sum(r.requests for r in rows)
    inputs, outputs = sum(r.input_tokens for r in rows), sum(r.output_tokens for r in rows)
    lines.append(f"{'total':>8} {requests:>9} {inputs:>14,} {outputs:>17,}"
                 + (f" {prices.cost(inputs, outputs):>10.4f}" if prices else ""))
    unbuilt = sum(r.unbuilt for r in rows)
    if unbuilt:
        lines.append(f"input tokens: {unbuilt} of the {requests} prompts are not generated yet and count at the "
                     "size they will be built to (each within 0.5% of it)"
                     + ("; the others exactly" if unbuilt < requests else ""))
    if prices is None:
        lines.append("cost: unknown (give --price-in and --price-out, US$ per 1M tokens)")
    if pace:
        rate, answered = pace
        lines.append(f"time: about {_duration(rate * inputs / concurrency)} at the pace of the {answered} requests "
                     f"already answered, {concurrency} at a time")
    else:
        lines.append("time: unknown until some requests have been answered")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class Budget:
    """A spending cap: a request is sent only while what was spent, plus the worst case of what is in flight and of
    the request itself, stays under the cap. Stopping is clean: the run resumes with a higher cap."""

    def __init__(self, cap: float, prices: Prices, done: Iterable[Prediction], extra_output: int = 0) -> None:
        self.cap, self.prices, self.extra_output = cap, prices, extra_output
        self.spent = sum(prices.cost(*used_tokens(p)) for p in done)
        self._reserved: dict[str, float] = {}
        self.stopped = False

    def admit(self, sample: Sample) -> bool:
        worst = self.prices.cost(sample.prompt_tokens, sample.max_new_tokens + self.extra_output)
        if self.stopped or self.spent + sum(self._reserved.values()) + worst > self.cap:
            self.stopped = True
            return False
        self._reserved[sample.id] = worst
        return True

    def charge(self, prediction: Prediction) -> None:
        self._reserved.pop(prediction.id, None)
        self.spent += self.prices.cost(*used_tokens(prediction))
