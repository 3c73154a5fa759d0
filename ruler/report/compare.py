"""Several runs side by side: overlaid accuracy curves, and per-length differences with a paired test.

Two runs are paired on samples with the same id and the same prompt hash (the same prompt was sent to both);
that is the check that catches a backend with a wrong RoPE scaling, a short max_model_len or another template.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ruler.lengths import format_length
from ruler.report.results import RunResults
from ruler.scoring.aggregate import ScoredSample
from ruler.scoring.metrics import postprocess
from ruler.scoring.stats import BOOTSTRAP

#: the p-value below which a per-length difference is reported as beyond noise
SIGNIFICANCE = 0.05


#: settings told apart by what they are, not by how they were named (`smollm2` and its GGUF path are one tokenizer)
IDENTITY = {"tokenizer": "tokenizer_fingerprint", "chat template": "chat_template_sha256"}


def settings(results: RunResults) -> dict[str, str]:
    """What of a run's set-up can make its answers differ from another's, as people name it."""
    manifest, run = results.manifest, results.manifest.get("run") or {}
    return {"model": str(run.get("model")), "backend": str(run.get("backend")), "mode": str(manifest.get("mode")),
            "stream": "on" if run.get("stream") else "off", "tokenizer": str(manifest.get("tokenizer")),
            "chat template": str(manifest.get("chat_template")),
            "extra body": json.dumps(run.get("extra_body") or {}, sort_keys=True), "seed": str(manifest.get("seed"))}


def labels(runs: list[RunResults]) -> list[str]:
    """Each run by its folder (with its parent where two share a name), then the settings that differ."""
    folders = [(results.folder or Path("?")).resolve() for results in runs]
    names = [folder.name for folder in folders]
    if len(set(names)) < len(names):
        names = [f"{folder.parent.name}/{folder.name}" for folder in folders]
    table = [settings(results) for results in runs]
    identities = [{**row, **{key: str(results.manifest.get(field)) for key, field in IDENTITY.items()}}
                  for row, results in zip(table, runs)]
    differing = [key for key in table[0] if len({row[key] for row in identities}) > 1]
    return [name + (" (" + ", ".join(f"{key} {row[key]}" for key in differing) + ")" if differing else "")
            for name, row in zip(names, table)]


def unpaired_reason(first: RunResults, second: RunResults) -> str:
    """Why two runs share no prompt: what builds their prompts differently."""
    if not set(first.lengths) & set(second.lengths):
        return "they share no length"
    if not set(first.tasks) & set(second.tasks):
        return "they share no task"
    a, b = first.manifest, second.manifest
    reasons = {"mode": "prefill and chat mode build different prompts",
               "tokenizer_fingerprint": "their tokenizers count (and so cut) prompts differently",
               "chat_template_sha256": "their chat templates differ", "seed": "their seeds draw different samples"}
    found = [reason for key, reason in reasons.items() if a.get(key) != b.get(key)]
    shared = set(first.tasks) & set(second.tasks)
    if any((a.get("tasks") or {}).get(task) != (b.get("tasks") or {}).get(task) for task in shared):
        found.append("their task definitions differ")
    return "; ".join(found) or "their samples differ"


def overlay_plot(runs: list[RunResults], path: Path) -> Path:
    from ruler.report.plots import PALETTE, length_axis, pyplot, save

    plt = pyplot()
    figure, axes = plt.subplots(figsize=(9, 5.5), dpi=110, layout="constrained")
    lengths = sorted({m.length for results in runs for m in results.means})
    for results, name, colour in zip(runs, labels(runs), itertools.cycle(PALETTE[1:])):
        means = results.means
        line, = axes.plot([m.length for m in means], [m.mean for m in means], marker="o", linewidth=2,
                          color=colour, label=name)
        axes.fill_between([m.length for m in means], [m.low for m in means], [m.high for m in means],
                          color=line.get_color(), alpha=0.15)
    axes.axhline(runs[0].effective[0].bar, color=PALETTE[5], linestyle="--", linewidth=1, label="threshold")
    length_axis(axes, lengths)
    axes.set_ylim(-2, 102)
    axes.set_ylabel("mean score over tasks (%)")
    axes.set_title("Mean score over tasks against context length, by run")
    return save(plt, figure, axes, path)


@dataclass(frozen=True)
class Pair:
    """One prompt answered by both runs."""

    first: ScoredSample
    second: ScoredSample

    @property
    def scored(self) -> bool:
        return self.first.score is not None and self.second.score is not None

    @property
    def agree(self) -> bool:
        return postprocess(self.first.prediction) == postprocess(self.second.prediction)


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
    #: prompts only the other run could score (this one's answer was an overflow or an error)
    unscored_first: int = 0
    unscored_second: int = 0


def sign_test(positive: int, negative: int) -> float:
    """Two-sided exact sign test on the pairs that differ (McNemar's exact test for 0/1 scores)."""
    n = positive + negative
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(positive, negative) + 1)) / 2**n
    return min(1.0, 2 * tail)


def pair_up(first: RunResults, second: RunResults) -> tuple[list[Pair], int]:
    """Samples with the same id and prompt hash in both runs, and how many share an id but not the prompt."""
    theirs = {s.id: s for s in second.scored}
    pairs, mismatched = [], 0
    for mine in first.scored:
        other = theirs.get(mine.id)
        if other is None:
            continue
        if other.prompt_sha256 == mine.prompt_sha256:
            pairs.append(Pair(mine, other))
        else:
            mismatched += 1
    return pairs, mismatched


def paired_differences(pairs: list[Pair], seed: int = 0) -> list[Difference]:
    by_length: dict[int, list[Pair]] = defaultdict(list)
    for pair in pairs:
        by_length[pair.first.length].append(pair)
    rng = np.random.default_rng(seed)
    out = []
    for length in sorted(by_length):
        group = by_length[length]
        scored = [pair for pair in group if pair.scored]
        unscored_first = sum(p.first.score is None and p.second.score is not None for p in group)
        unscored_second = sum(p.second.score is None and p.first.score is not None for p in group)
        if not scored:
            out.append(Difference(length, 0, math.nan, math.nan, math.nan, math.nan, math.nan, 1.0, math.nan,
                                  unscored_first, unscored_second))
            continue
        a = np.array([pair.first.score for pair in scored], dtype=float)
        b = np.array([pair.second.score for pair in scored], dtype=float)
        diffs = b - a
        draws = rng.choice(diffs, size=(BOOTSTRAP, len(diffs))).mean(axis=1)
        out.append(Difference(length, len(diffs), 100 * a.mean(), 100 * b.mean(), 100 * diffs.mean(),
                              100 * float(np.quantile(draws, 0.025)), 100 * float(np.quantile(draws, 0.975)),
                              sign_test(int((diffs > 0).sum()), int((diffs < 0).sum())),
                              float(np.mean([pair.agree for pair in scored])), unscored_first, unscored_second))
    return out


def _conclusion(differences: list[Difference], pairs: list[Pair]) -> list[str]:
    scored = [pair for pair in pairs if pair.scored]
    agreement = np.mean([pair.agree for pair in scored]) if scored else math.nan
    beyond = [d for d in differences if d.p_value < SIGNIFICANCE]
    lines = [f"agreement {agreement:.0%} of {len(scored)} answers to the same prompts; " + (
        "scores differ beyond noise at " + ", ".join(f"{format_length(d.length)} (p={d.p_value:.3f})"
                                                     for d in beyond)
        if beyond else f"no length differs beyond noise (sign test p >= {SIGNIFICANCE})")]
    for side, count in (("A", sum(d.unscored_first for d in differences)),
                        ("B", sum(d.unscored_second for d in differences))):
        if count:
            lines.append(f"{side} left {count} prompts unscored (overflow or error) that the other run answered: "
                         "a shorter window, max_model_len or memory?")
    return lines


def _shown(pairs: list[Pair], show: int, width: int = 60) -> list[str]:
    """The first `show` prompts the two runs answered differently, side by side."""
    lines = []
    for pair in [pair for pair in pairs if pair.scored and not pair.agree][:show]:
        lines.append(f"{pair.first.id}  refs {pair.first.references}")
        for side, sample in (("A", pair.first), ("B", pair.second)):
            lines.append(f"  {side} {100 * sample.score:5.1f}  {postprocess(sample.prediction)[:width]!r}")
    return lines


def comparison_text(first: RunResults, second: RunResults, show: int = 0) -> tuple[str, bool]:
    """The comparison for people, and whether the runs shared any prompt to compare on."""
    pairs, mismatched = pair_up(first, second)
    differences = paired_differences(pairs)
    names = labels([first, second])
    lines = [f"A = {names[0]}", f"B = {names[1]}"]
    if not pairs:
        lines.append(f"nothing to compare: the runs share no prompt ({unpaired_reason(first, second)})")
        if mismatched:
            lines.append(f"{mismatched} samples share an id but not a prompt")
        return "\n".join(lines), False
    lines.append(f"{'length':>8} {'pairs':>6} {'A':>6} {'B':>6} {'B-A':>7} {'95% interval':>16} {'p':>7} "
                 f"{'agree':>6} {'unscored A/B':>13}")
    for d in differences:
        lines.append(f"{format_length(d.length):>8} {d.pairs:>6} {d.first:>6.1f} {d.second:>6.1f} {d.diff:>+7.1f} "
                     f"{f'[{d.low:+.1f}, {d.high:+.1f}]':>16} {d.p_value:>7.3f} {d.agreement:>6.0%} "
                     f"{f'{d.unscored_first}/{d.unscored_second}':>13}")
    if mismatched:
        lines.append(f"{mismatched} samples share an id but not a prompt (another tokenizer, template or seed): "
                     "not compared")
    return "\n".join(lines + _conclusion(differences, pairs) + _shown(pairs, show)), True
