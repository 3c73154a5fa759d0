"""Adaptive validation against fixed designs, on simulated models whose accuracy at every task and length is known.

    python bench/adaptive.py [--models 2000] [--max-samples 32] [--seed 0]

For each accuracy profile (sharp cliffs, gradual decay, plateaus near the bar, tasks of very different accuracy),
thousands of simulated validations: each answer is a draw of its task's accuracy at that length. Prints, per
profile: the true verdict (a claim holds when the mean over tasks is at least the bar at every rung up to it), the
share of wrong verdicts ("holds" for a claim that does not, or the reverse) and of undecided ones, the mean number
of requests, and the same for the fixed designs of 10 and 25 samples per task and rung, each rung judged by the
Wilson interval of its pooled answers (the report's interval for 0/1 scores), with no allowance for judging
several rungs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ruler.scoring import RULER_THRESHOLD  # noqa: E402
from ruler.scoring.sequential import ABOVE, BELOW, OPEN, Validation  # noqa: E402
from ruler.scoring.stats import wilson  # noqa: E402

BAR = RULER_THRESHOLD / 100
TASKS = 8  # the NIAH suite
LADDER = [4096 * 2**i for i in range(6)]  # 4k ... 128k


def spread(mean: float, width: float = 0.04) -> list[float]:
    """Per-task accuracies spread over `width` either side of `mean` (kept in [0, 1], then re-centred once)."""
    values = np.clip(mean + np.linspace(-width, width, TASKS), 0, 1)
    return list(np.clip(values + mean - values.mean(), 0, 1))


#: name -> (rung means up to the claim, per-task spread)
PROFILES = {
    "sharp cliff past 16k, claimed 64k": ([0.99, 0.98, 0.97, 0.04, 0.02], 0.02),
    "holds a 16k claim": ([0.99, 0.98, 0.97], 0.02),
    "gradual decay, claimed 128k": ([0.98, 0.95, 0.91, 0.87, 0.82, 0.75], 0.04),
    "plateau just above the bar, claimed 32k": ([0.92, 0.90, 0.89, 0.89], 0.04),
    "plateau just below the bar, claimed 32k": ([0.92, 0.90, 0.86, 0.83], 0.04),
    "at the bar at the claim, 32k": ([0.95, 0.93, 0.90, BAR], 0.04),
    "noisy tasks (0.7 to 1.0) holding 16k": ([0.93, 0.92, 0.91], 0.2),
}


def adaptive(profile: list[list[float]], max_samples: int, rng: np.random.Generator) -> tuple[str, int]:
    validation = Validation(LADDER[:len(profile)], TASKS, max_samples, BAR)
    while (step := validation.next_round()) is not None:
        length, per_task = step
        rung, accuracies = validation.rungs[length], profile[validation.lengths.index(length)]
        more = per_task - rung.per_task
        validation.record(length, [float(s) for p in accuracies for s in rng.random(more) < p], per_task)
    return validation.verdict(), validation.requests()


def fixed(profile: list[list[float]], samples: int, rng: np.random.Generator) -> tuple[str, int]:
    states = []
    for accuracies in profile:
        correct = sum(int((rng.random(samples) < p).sum()) for p in accuracies)
        low, high = wilson(correct, samples * TASKS)
        states.append(ABOVE if low >= BAR else BELOW if high < BAR else OPEN)
    verdict = BELOW if BELOW in states else ABOVE if all(s == ABOVE for s in states) else OPEN
    return verdict, samples * TASKS * len(profile)


def summary(results: list[tuple[str, int]], truth: str) -> tuple[float, float, float]:
    verdicts = [verdict for verdict, _ in results]
    wrong = sum(verdict not in (OPEN, truth) for verdict in verdicts) / len(verdicts)
    return wrong, verdicts.count(OPEN) / len(verdicts), float(np.mean([requests for _, requests in results]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=2000)
    parser.add_argument("--max-samples", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"{args.models} simulated models per profile, {TASKS} tasks, bar {BAR:.3f}, adaptive cap "
          f"{args.max_samples} per task and rung, alpha 0.05\n")
    print(f"{'profile':42} {'truth':6} | {'adaptive: wrong undecided requests':35} | "
          f"{'fixed 10: wrong undecided requests':35} | {'fixed 25: wrong undecided requests':35} | ratio to 10")
    for name, (means, width) in PROFILES.items():
        profile = [spread(mean, width) for mean in means]
        truth = ABOVE if min(np.mean(p) for p in profile) >= BAR - 1e-9 else BELOW
        rows = [summary([run(profile, setting, rng) for _ in range(args.models)], truth)
                for run, setting in ((adaptive, args.max_samples), (fixed, 10), (fixed, 25))]
        cells = " | ".join(f"{wrong:>10.3f} {undecided:>9.2f} {requests:>14.1f}" for wrong, undecided, requests
                           in rows)
        print(f"{name:42} {truth:6} | {cells} | {rows[0][2] / rows[1][2]:>10.0%}")


if __name__ == "__main__":
    main()
