"""Intervals that say how much a score can be trusted: Wilson for 0/1 scores, a bootstrap for fractional ones."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Z95 = 1.959963984540054
BOOTSTRAP = 2000
#: the smallest group a stratified bootstrap can resample honestly
MIN_STRATUM = 5


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for a proportion (well behaved at 0, 1 and small n)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def interval(values: Sequence[float], seed: int = 0) -> tuple[float, float]:
    """95% interval for the mean of per-sample scores in [0, 1]."""
    if len(values) == 0:
        return 0.0, 1.0
    array = np.asarray(values, dtype=float)
    if np.all((array == 0) | (array == 1)):
        return wilson(float(array.sum()), len(array))
    means = np.random.default_rng(seed).choice(array, size=(BOOTSTRAP, len(array))).mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def mean_of_means_interval(groups: Sequence[Sequence[float]], seed: int = 0) -> tuple[float, float]:
    """95% interval for the mean over groups (tasks) of each group's mean.

    When every score is 0 or 1: Wilson's interval at the pooled size (a bootstrap of all-correct answers is a point).
    Otherwise a bootstrap within every group, when each has MIN_STRATUM scores or more; smaller groups cannot show
    their own spread (a group of one resamples to itself, a point), so all scores are resampled together, each
    weighted so that every group still counts equally."""
    groups = [np.asarray(group, dtype=float) for group in groups if len(group)]
    if not groups:
        return 0.0, 1.0
    if all(np.all((group == 0) | (group == 1)) for group in groups):
        total = sum(len(group) for group in groups)
        return wilson(float(np.mean([group.mean() for group in groups])) * total, total)
    rng = np.random.default_rng(seed)
    if min(len(group) for group in groups) >= MIN_STRATUM:
        draws = np.mean([rng.choice(group, size=(BOOTSTRAP, len(group))).mean(axis=1) for group in groups], axis=0)
    else:
        pooled = np.concatenate(groups)
        weights = np.concatenate([np.full(len(group), 1 / (len(group) * len(groups))) for group in groups])
        draws = rng.choice(pooled, size=(BOOTSTRAP, len(pooled)), p=weights).mean(axis=1)
    return float(np.quantile(draws, 0.025)), float(np.quantile(draws, 0.975))


def samples_to_decide(mean: float, n: int, tasks: int, bar: float, limit: int = 1 << 20) -> int | None:
    """About how many samples per task would put a length's interval wholly on one side of `bar` (both in
    percent), if its mean stayed where it is: its answers pooled as 0/1 trials under Wilson's interval. None for
    a mean on the bar, which no count decides (nor one beyond `limit` samples)."""
    p = mean / 100

    def decided(trials: int) -> bool:
        low, high = wilson(p * trials, trials)
        return 100 * low >= bar if mean >= bar else 100 * high < bar

    if mean == bar or not decided(limit * tasks):
        return None
    lo, hi = n * tasks, n * tasks
    while not decided(hi):
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        middle = (lo + hi) // 2
        lo, hi = (lo, middle) if decided(middle) else (middle, hi)
    return max(n + 1, math.ceil(hi / tasks))
