"""Deciding a claimed window at the fewest requests: answers come in rounds, and a rung (a length of the ladder up
to the claim) gets no more once its mean over tasks is known to lie above or below the bar.

The test: testing by betting (Shafer; Waudby-Smith and Ramdas). To show a rung's mean over tasks m is above the
bar b, a bettor stakes a fraction of its capital on each answer x in [0, 1]: the capital is multiplied by
1 + l (x - b), the stake l in [0, 1/b] fixed before each round from the answers before it. A round holds the same
number of answers of every task, so if m <= b its expected factor is at most 1 (by the AM-GM inequality, whatever
each task's own accuracy): the capital is a nonnegative supermartingale at round ends, and by Ville's inequality
it ever reaches 1/a with probability at most a. The rung is judged above the bar when it does; a second bettor,
staking on 1 + l (b - x), judges it below. Looking after every round is therefore free: no schedule of looks, no
allowance for them.

The verdict's errors. A wrong "holds" needs every rung up to the claim judged above, the truly failing one
included: above is judged at level alpha. A wrong "does not hold" needs one truly passing rung judged below, any of
the R rungs: below is judged at alpha / R. Either error is at most alpha, for every accuracy profile, near the bar
included (there the rungs stay open to the cap, and the verdict is "undecided").

The order. The claim first: if it fails clearly the claim fails, whatever the shorter rungs do. Then the rungs from
the shortest up, as RULER's effective length is read: the first that fails ends the walk, and one left open at the
cap leaves the verdict undecided.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ruler.lengths import format_length

#: what a rung is judged to be
ABOVE, BELOW, OPEN = "holds", "fails", "open"
#: the share of the largest stake a bettor makes at most (a full stake is ruined by one answer against it); 0.8
#: loses less to a rare miss than 0.9 and decides clear rungs sooner (bench/adaptive.py)
CAUTION = 0.8
#: how many answers the guess at a rung's mean weighs, before its own answers outweigh it
GUESS_WEIGHT = 3
#: on a rung's first round each bettor stakes at least as if the mean lay this share of the way from the bar to its
#: side's end: the one whose side is false loses, which is harmless (only the true side's bettor can decide
#: rightly, and the bound holds whatever is staked), while the one whose side is true does not sit the round out
LEAN = 0.25


def stakes(total: float, n: int, bar: float, prior: float | None = None) -> tuple[float, float]:
    """The two bettors' stakes for the next round, from the answers so far: Kelly's stake for 0/1 answers at the
    mean seen, (m - b) / (b (1 - b)), the capital growing fastest if the mean holds, never more than CAUTION of
    the largest. The mean seen starts from GUESS_WEIGHT answers at `prior`, a guess (see Validation.prior), else at
    the bar, and before any answer each bettor leans to its own side (LEAN). Guesses only speed a decision or slow
    it: any stake set before a round keeps the bound."""
    seen = (total + GUESS_WEIGHT * (bar if prior is None else prior)) / (n + GUESS_WEIGHT)
    kelly = bar * (1 - bar)
    above, below = (max(seen, bar + LEAN * (1 - bar)), min(seen, bar - LEAN * bar)) if n == 0 else (seen, seen)
    return (min(CAUTION / bar, max(0.0, above - bar) / kelly),
            min(CAUTION / (1 - bar), max(0.0, bar - below) / kelly))


@dataclass
class Rung:
    length: int
    #: scores received and their sum
    n: int = 0
    total: float = 0.0
    #: answers per task asked for so far
    per_task: int = 0
    #: the log of each bettor's capital
    above: float = 0.0
    below: float = 0.0
    state: str = OPEN
    #: what the server did not serve whole there, e.g. "2 cut"
    unserved: str = ""
    #: why the rung is where it is, for people: "fails after 8 answers (mean 0.0)"
    said: str = ""

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None


@dataclass
class Validation:
    """The claim's ladder, what it needs next and the verdict. Plain data in (scores per rung), plain data out
    (which rung, how many answers per task): it knows nothing of backends or tasks."""

    lengths: list[int]
    tasks: int
    max_samples: int
    bar: float
    alpha: float = 0.05
    rungs: dict[int, Rung] = field(init=False)
    path: list[str] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.lengths = sorted(self.lengths)
        self.rungs = {length: Rung(length) for length in self.lengths}
        self.above_level, self.below_level = self.alpha, self.alpha / len(self.lengths)

    @property
    def claimed(self) -> int:
        return self.lengths[-1]

    def next_round(self) -> tuple[int, int] | None:
        """The rung to ask next and the answers per task it should reach (a round is one more of each task); None
        once nothing is left to decide, or the walk reached a rung left open at the cap."""
        for length in self._to_decide():
            rung = self.rungs[length]
            if rung.state != OPEN:
                continue
            if rung.per_task >= self.max_samples:
                return None  # left open at the cap: the walk stops there
            return length, rung.per_task + 1
        return None

    def record(self, length: int, scores: list[float], per_task: int) -> None:
        """A round of `length`: the same number of answers of every task, now `per_task` of each. The stakes are
        set from the answers before it, then each answer moves both bettors' capital. An unbalanced round would
        break the bound, so it is refused."""
        rung = self.rungs[length]
        if len(scores) != self.tasks * (per_task - rung.per_task):
            raise ValueError(f"a round of {length} needs {per_task - rung.per_task} answers of each of {self.tasks} "
                             f"tasks, not {len(scores)}")
        up, down = stakes(rung.total, rung.n, self.bar, self.prior(length))
        rung.above += sum(math.log1p(up * (score - self.bar)) for score in scores)
        rung.below += sum(math.log1p(down * (self.bar - score)) for score in scores)
        rung.n += len(scores)
        rung.total += sum(scores)
        rung.per_task = per_task
        if rung.above >= math.log(1 / self.above_level):
            rung.state = ABOVE
        elif rung.below >= math.log(1 / self.below_level):
            rung.state = BELOW
        if rung.state != OPEN or per_task >= self.max_samples:
            state = rung.state if rung.state != OPEN else f"open at the cap of {self.max_samples} per task"
            rung.said = f"{state} after {rung.n} answers (mean {100 * rung.total / rung.n:.1f})"
            self.path.append(f"{format_length(length)}: {rung.said}")

    def fail(self, length: int, why: str) -> None:
        """A rung the server did not serve whole (it refused or cut prompts) fails whatever its answers said: the
        window does not hold there. Said once, however often it is seen again."""
        rung = self.rungs[length]
        if rung.unserved:
            return
        failed, rung.state, rung.unserved = rung.state == BELOW, BELOW, why
        said = f"not served whole ({why})" if failed else f"fails, not served whole ({why}), after {rung.n} answers"
        rung.said = f"{rung.said}; {said}" if failed else said
        self.path.append(f"{format_length(length)}: {said}")

    def verdict(self) -> str:
        """`holds`: every rung above the bar; `fails`: the claim, or a shorter rung, below it; else `open`."""
        states = [self.rungs[length].state for length in self.lengths]
        if BELOW in states:
            return BELOW
        return ABOVE if all(state == ABOVE for state in states) else OPEN

    def effective(self) -> int | None:
        """The longest rung before the first judged below, once every shorter rung is judged above; None when
        the shortest fails or the walk stopped at an open rung."""
        passing = None
        for length in self.lengths:
            state = self.rungs[length].state
            if state != ABOVE:
                return passing if state == BELOW else None
            passing = length
        return passing

    def effective_said(self) -> str:
        """The effective length for people: `<4k` when the shortest rung fails, `unknown` when the walk stopped at
        an open rung."""
        effective, shortest = self.effective(), self.lengths[0]
        if effective:
            return format_length(effective)
        return f"<{format_length(shortest)}" if self.rungs[shortest].state == BELOW else "unknown"

    def prior(self, length: int) -> float | None:
        """A guess at a rung's mean before its answers: the nearest shorter rung's mean; for the shortest, that
        short prompts are served well (1.0); none for the claim asked first, the rung most in doubt."""
        shorter = [rung for rung in self.rungs.values() if rung.length < length and rung.n]
        if shorter:
            return max(shorter, key=lambda rung: rung.length).mean
        return None if length == self.claimed else 1.0

    def requests(self) -> int:
        return sum(rung.n for rung in self.rungs.values())

    def tokens(self) -> int:
        """Context tokens asked for: each request fills its length (prompt and answer budget, exact by
        construction)."""
        return sum(rung.n * rung.length for rung in self.rungs.values())

    def _to_decide(self) -> list[int]:
        """The claim until it is judged; then the walk from the shortest rung up to the first that fails."""
        claim = self.rungs[self.claimed]
        if claim.state == OPEN and claim.per_task < self.max_samples:
            return [self.claimed]
        walk = []
        for length in self.lengths:
            walk.append(length)
            if self.rungs[length].state == BELOW:
                break
        return walk
