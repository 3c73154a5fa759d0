"""Several runs side by side: overlaid accuracy curves, and per-length differences with a paired test.

Two runs are paired on samples with the same id and the same prompt hash (the same prompt was sent to both);
that is the check that catches a backend with a wrong RoPE scaling, a short max_model_len or another template.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ruler.lengths import format_length
from ruler.report.results import RunResults
from ruler.scoring.metrics import postprocess
from ruler.scoring.stats import BOOTSTRAP


def label(results: RunResults) -> str:
    run = results.manifest.get("run", {})
    return f"{run.get('model', '?')} ({run.get('backend', '?')})"


def overlay_plot(runs: list[RunResults], path: Path) -> Path:
    from ruler.report.plots import pyplot

    plt = pyplot()
    figure, axes = plt.subplots(figsize=(9, 5.5), dpi=110)
    lengths = sorted({m.length for results in runs for m in results.means})
    for results in runs:
        means = results.means
        line, = axes.plot([m.length for m in means], [m.mean for m in means], marker="o", linewidth=2,
                          label=label(results))
        axes.fill_between([m.length for m in means], [m.low for m in means], [m.high for m in means],
                          color=line.get_color(), alpha=0.15)
    axes.axhline(runs[0].effective[0].bar, color="tab:red", linestyle="--", linewidth=1, label="threshold")
    axes.set_xscale("log", base=2)
    axes.set_xticks(lengths, [format_length(length) for length in lengths])
    axes.set_ylim(-2, 102)
    axes.set_xlabel("context length (tokens)")
    axes.set_ylabel("mean score over tasks (%)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


@dataclass(frozen=True)
class Difference:
    length: int
    pairs: int
    first: float
    second: float
    diff: float
    low: float
    high: float
    p_value: float
    agreement: float


def sign_test(positive: int, negative: int) -> float:
    """Two-sided exact sign test on the pairs that differ (McNemar's exact test for 0/1 scores)."""
    n = positive + negative
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(positive, negative) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_differences(first: RunResults, second: RunResults, seed: int = 0) -> list[Difference]:
    theirs = {s.id: s for s in second.scored}
    by_length: dict[int, list[tuple]] = defaultdict(list)
    for mine in first.scored:
        other = theirs.get(mine.id)
        if other and other.prompt_sha256 == mine.prompt_sha256 and None not in (mine.score, other.score):
            by_length[mine.length].append((mine.score, other.score,
                                           postprocess(mine.prediction) == postprocess(other.prediction)))
    rng = np.random.default_rng(seed)
    out = []
    for length in sorted(by_length):
        a, b, same = (np.asarray(column, dtype=float) for column in zip(*by_length[length]))
        diffs = b - a
        draws = rng.choice(diffs, size=(BOOTSTRAP, len(diffs))).mean(axis=1)
        out.append(Difference(length, len(diffs), 100 * a.mean(), 100 * b.mean(), 100 * diffs.mean(),
                              100 * float(np.quantile(draws, 0.025)), 100 * float(np.quantile(draws, 0.975)),
                              sign_test(int((diffs > 0).sum()), int((diffs < 0).sum())), float(same.mean())))
    return out


def comparison_text(first: RunResults, second: RunResults) -> str:
    differences = paired_differences(first, second)
    lines = [f"A = {label(first)}", f"B = {label(second)}",
             f"{'length':>8} {'pairs':>6} {'A':>6} {'B':>6} {'B-A':>7} {'95% interval':>16} {'p':>7} {'agree':>6}"]
    for d in differences:
        lines.append(f"{format_length(d.length):>8} {d.pairs:>6} {d.first:>6.1f} {d.second:>6.1f} {d.diff:>+7.1f} "
                     f"{f'[{d.low:+.1f}, {d.high:+.1f}]':>16} {d.p_value:>7.3f} {d.agreement:>6.0%}")
    if not differences:
        lines.append("no paired samples: the runs share no prompt (same tokenizer, template, tasks and seed?)")
    return "\n".join(lines)
