"""From predictions to figures: per-sample scores, task x length cells with intervals, the per-length mean (RULER's
Avg), weighted averages, the effective length with its uncertainty, and the verdict on a claimed window."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from ruler.lengths import format_length
from ruler.reasoning import split_reasoning
from ruler.scoring import RULER_THRESHOLD
from ruler.scoring.metrics import exact_set_precision, score
from ruler.scoring.stats import interval, mean_of_means_interval
from ruler.scoring.validity import SCORED
from ruler.types import Prediction, Sample


@dataclass(frozen=True)
class ScoredSample:
    id: str
    task: str
    length: int
    index: int
    depths: list[float]
    validity: str
    #: in [0, 1]; None when the answer is not scored (overflow, error)
    score: float | None
    prediction: str
    references: list[str]
    prompt_sha256: str
    #: exact-set precision of the answer (a diagnostic beside the score); None where it does not apply
    precision: float | None = None
    #: why generation stopped, as the backend said (stop, length ...)
    finish_reason: str | None = None


@dataclass(frozen=True)
class Cell:
    """One task at one length, in percent."""

    task: str
    length: int
    score: float | None
    n: int
    low: float | None
    high: float | None
    validity: dict[str, int] = field(default_factory=dict)
    #: mean exact-set precision over the answers it applies to, in percent
    precision: float | None = None


@dataclass(frozen=True)
class LengthMean:
    """The mean over tasks at one length (RULER's Avg), in percent, with its interval."""

    length: int
    mean: float
    low: float
    high: float
    tasks: int


@dataclass(frozen=True)
class EffectiveLength:
    """The largest length before the mean first falls below the bar; `lowest`/`highest` bound it when intervals
    straddle the bar. `length` None: the shortest length already fails. A length the server did not serve whole
    fails; the search stops at the first incomplete length (`incomplete`), since nothing beyond it is known."""

    rule: str
    bar: float
    length: int | None
    lowest: int | None
    highest: int | None
    first_failing: int | None
    incomplete: int | None = None
    #: the first length that fails even at the top of its interval (a failure for certain)
    ruled_out: int | None = None
    #: why the rule gives no length at all (a relative bar over a base score too low to decline from)
    undefined: str | None = None

    @property
    def decided(self) -> bool:
        return self.undefined is None and self.lowest == self.length == self.highest

    def describe(self, lengths: list[int]) -> str:
        if self.undefined:
            return f"undefined ({self.undefined})"

        def name(length: int | None) -> str:
            if length is None:
                return f"<{format_length(lengths[0])}"
            return f">={format_length(length)}" if length == lengths[-1] else format_length(length)

        notes = []
        if not self.decided:
            floor = self.lowest or 0
            ceiling = self.highest or 0
            others = [name(length) for length in lengths if floor <= length <= ceiling and length != self.length]
            if self.lowest is None and self.length is not None:
                others.insert(0, name(None))
            notes.append(f"{', '.join(others)} not ruled out")
        text = name(self.length)
        if self.incomplete is not None and self.first_failing is None:
            text = "unknown" if self.length is None else text if text.startswith(">=") else f">={text}"
            notes.append(f"{format_length(self.incomplete)} incomplete")
        return f"{text} ({'; '.join(notes)})" if notes else text


def score_samples(samples: list[Sample], predictions: dict[str, Prediction]) -> list[ScoredSample]:
    scored = []
    for sample in samples:
        prediction = predictions.get(sample.id)
        if prediction is None:
            continue
        answered = prediction.validity in SCORED
        answer = split_reasoning(prediction.prediction or "").answer
        scored.append(ScoredSample(
            sample.id, sample.task, sample.length, sample.index, sample.depths, prediction.validity,
            score(sample.metric, answer, sample.references) if answered else None,
            answer, sample.references, sample.prompt_sha256,
            exact_set_precision(answer, sample.references) if answered else None, prediction.finish_reason))
    return scored


def cells(scored: list[ScoredSample]) -> list[Cell]:
    grouped: dict[tuple[str, int], list[ScoredSample]] = defaultdict(list)
    for sample in scored:
        grouped[(sample.task, sample.length)].append(sample)
    out = []
    for (task, length), members in grouped.items():
        values = [s.score for s in members if s.score is not None]
        precisions = [s.precision for s in members if s.precision is not None]
        low, high = interval(values) if values else (None, None)
        out.append(Cell(task, length, 100 * sum(values) / len(values) if values else None, len(values),
                        100 * low if values else None, 100 * high if values else None,
                        dict(Counter(s.validity for s in members)),
                        100 * sum(precisions) / len(precisions) if precisions else None))
    return out


def length_means(scored: list[ScoredSample]) -> list[LengthMean]:
    by_length: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for sample in scored:
        if sample.score is not None:
            by_length[sample.length][sample.task].append(sample.score)
    means = []
    for length in sorted(by_length):
        groups = list(by_length[length].values())
        low, high = mean_of_means_interval(groups)
        mean = sum(sum(g) / len(g) for g in groups) / len(groups)
        means.append(LengthMean(length, 100 * mean, 100 * low, 100 * high, len(groups)))
    return means


def weighted_averages(means: list[float]) -> tuple[float, float]:
    """RULER's wAvg over lengths in ascending order: weights 1..k (inc) and k..1 (dec)."""
    k = len(means)
    total = k * (k + 1) / 2
    increasing = sum((i + 1) * m for i, m in enumerate(means)) / total
    decreasing = sum((k - i) * m for i, m in enumerate(means)) / total
    return increasing, decreasing


def _largest_passing(values: list[tuple[int, float]], bar: float) -> tuple[int | None, int | None]:
    """The last length before the first value under `bar`, and that first failing length."""
    passing = None
    for length, value in values:
        if value < bar:
            return passing, length
        passing = length
    return passing, None


@dataclass(frozen=True)
class LengthState:
    """Whether a length's answers can speak for it. `complete`: every planned sample answered and every task
    scored. `unserved`: the server refused or cut prompts there, so the window does not hold there. `incomplete`:
    samples not sent or in error, or a task with no scored answer; the length is unknown, never a pass."""

    length: int
    state: str
    #: what makes it so, e.g. "3 error, 2 not sent"
    why: str = ""


def length_states(planned: list[Sample], scored: list[ScoredSample]) -> dict[int, LengthState]:
    by_id = {s.id: s for s in scored}
    states = {}
    for length in sorted({sample.length for sample in planned}):
        here = [sample for sample in planned if sample.length == length]
        counts = Counter(by_id[s.id].validity if s.id in by_id else "not sent" for s in here)
        tasks = {s.task for s in here}
        answered = {by_id[s.id].task for s in here if s.id in by_id and by_id[s.id].score is not None}
        unserved = {name: counts[name] for name in ("overflow", "cut") if counts[name]}
        missing = {name: counts[name] for name in ("error", "not sent") if counts[name]}
        if unserved:
            states[length] = LengthState(length, "unserved", _counted(unserved))
        elif missing or tasks - answered:
            unscored = sorted(tasks - answered)
            why = _counted(missing) or f"no scored answer for {', '.join(unscored)}"
            states[length] = LengthState(length, "incomplete", why)
        else:
            states[length] = LengthState(length, "complete")
    return states


def _counted(counts: dict[str, int]) -> str:
    return ", ".join(f"{count} {name}" for name, count in counts.items())


def effective_length(means: list[LengthMean], bar: float, rule: str,
                     states: dict[int, LengthState] | None = None) -> EffectiveLength:
    """Walk the lengths in order: a length not served whole fails, an incomplete one ends the walk."""
    states = states or {}
    by_length = {m.length: m for m in means}
    rows, incomplete = [], None
    for length in sorted(set(by_length) | set(states)):
        state = states.get(length)
        if state is not None and state.state == "incomplete" or length not in by_length and state is None:
            incomplete = length
            break
        mean = by_length.get(length)
        rows.append((length, float("-inf"), float("-inf"), float("-inf")) if state and state.state == "unserved"
                    else (length, mean.mean, mean.low, mean.high))
    length, first_failing = _largest_passing([(row[0], row[1]) for row in rows], bar)
    lowest, _ = _largest_passing([(row[0], row[2]) for row in rows], bar)
    highest, ruled_out = _largest_passing([(row[0], row[3]) for row in rows], bar)
    return EffectiveLength(rule, bar, length, lowest, highest, first_failing, incomplete, ruled_out)


#: under this mean at the shortest length, a fraction of it lies in the noise of a model that mostly fails:
#: the relative rule is then undefined rather than a length that contradicts RULER's
RELATIVE_FLOOR = 50.0


def effective_lengths(means: list[LengthMean], threshold: float = RULER_THRESHOLD, fraction: float = 0.85,
                      states: dict[int, LengthState] | None = None) -> list[EffectiveLength]:
    """RULER's rule (a fixed bar) and NoLiMa's (a fraction of the model's own score at its shortest complete
    length)."""
    unserved = any(state.state == "unserved" for state in (states or {}).values())
    if not means and not unserved:
        return []
    rules = [effective_length(means, threshold, f"mean >= {threshold:g}", states)]
    complete = [m for m in means if states is None or m.length not in states or states[m.length].state == "complete"]
    if complete:
        base = complete[0]
        rule = f"mean >= {fraction:.0%} of the {format_length(base.length)} score"
        undefined = None
        if base.mean < RELATIVE_FLOOR:
            undefined = (f"the {format_length(base.length)} score {base.mean:.1f} is under {RELATIVE_FLOOR:g}, too "
                         "low to measure a decline from")
        elif not any(length > base.length for length in {m.length for m in means} | set(states or {})):
            undefined = f"no length longer than {format_length(base.length)} to compare with"
        if undefined:
            rules.append(EffectiveLength(rule, fraction * base.mean, None, None, None, None, undefined=undefined))
        else:
            rules.append(effective_length(means, fraction * base.mean, rule, states))
    return rules


#: how each decision on a claim reads, whichever design reached it
SAID = {"holds": "the claim holds", "fails": "the claim does not hold", "undecided": "the claim is undecided"}


@dataclass(frozen=True)
class Verdict:
    claimed: int | None
    accepted: int | None
    effective: EffectiveLength
    lengths: list[int]
    #: the window a `ruler probe` found the endpoint to accept, when the server reports none
    probed: int | None = None
    #: lengths that are not complete, and why
    states: dict[int, LengthState] = field(default_factory=dict)

    def line(self) -> str:
        def name(length: int | None, missing: str) -> str:
            return format_length(length) if length else missing

        parts = [f"claimed {name(self.claimed, 'unknown')}",
                 f"largest accepted {name(self.accepted, 'none')}"
                 + (f" (probed window {self.probed:,})" if self.probed else ""),
                 f"effective {self.effective.describe(self.lengths)}",
                 f"first failing {name(self.effective.first_failing, 'none')}"]
        for kind in ("unserved", "incomplete"):
            named = [f"{format_length(s.length)} ({s.why})" for _, s in sorted(self.states.items())
                     if s.state == kind]
            if named:
                parts.append(f"{'not served whole' if kind == 'unserved' else 'incomplete'}: {', '.join(named)}")
        return " | ".join(parts)

    def holds(self) -> bool:
        """The claim holds when the effective length reaches it for certain."""
        return bool(self.claimed and self.effective.lowest and self.effective.lowest >= self.claimed)

    def decision(self) -> str:
        """`holds`, `fails`, or `undecided` (an incomplete length at or below the claim, and no failure before)."""
        if self.holds():
            return "holds"
        blocked = self.effective.incomplete
        if blocked is not None and self.claimed and blocked <= self.claimed and self.effective.ruled_out is None:
            return "undecided"
        return "fails"


def accepted_length(scored: list[ScoredSample]) -> int | None:
    """The largest length at which the server accepted a prompt whole and answered it."""
    taken = [s.length for s in scored if s.validity in SCORED]
    return max(taken) if taken else None
