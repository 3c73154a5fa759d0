"""PNG plots (matplotlib, headless): accuracy against length, needle depth x length for the NIAH tasks, and
latency against length."""

from __future__ import annotations

import io
from collections import defaultdict
from pathlib import Path

from ruler.files import write_atomic
from ruler.lengths import format_length
from ruler.report.results import RunResults

DEPTH_BINS = 10


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def length_axis(axes, lengths: list[int]) -> None:
    """Context length on a log-2 x axis, ticked at the lengths that were run."""
    axes.set_xscale("log", base=2)
    axes.set_xlim(min(lengths) / 2**0.25, max(lengths) * 2**0.25)  # set, since a run may have nothing to plot
    axes.set_xticks(lengths, [format_length(length) for length in lengths])
    axes.set_xlabel("context length (tokens)")


def write_png(plt, figure, path: Path) -> Path:
    """Render the figure, write it whole and close it (pyplot keeps every open one alive)."""
    image = io.BytesIO()
    figure.savefig(image, format="png")
    plt.close(figure)
    write_atomic(path, image.getvalue())
    return path


def save(plt, figure, axes, path: Path, legend_size: int = 8, **legend) -> Path:
    """Grid, legend and layout; write the PNG and close the figure (pyplot keeps every open one alive)."""
    axes.grid(alpha=0.3)
    axes.legend(fontsize=legend_size, **legend)
    figure.tight_layout()
    return write_png(plt, figure, path)


def accuracy_plot(results: RunResults, path: Path) -> Path:
    """Per-task curves, the mean with its 95% band, the threshold, and the claimed and effective lengths."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(9, 5.5), dpi=110)
    for task in results.tasks:
        points = [(c.length, c.score) for length in results.lengths
                  if (c := results.cell(task, length)) and c.score is not None]
        if points:
            axes.plot(*zip(*points), marker=".", linewidth=1, alpha=0.45, label=task)
    means = results.means
    axes.fill_between([m.length for m in means], [m.low for m in means], [m.high for m in means], color="black",
                      alpha=0.12, label="mean, 95% interval")
    axes.plot([m.length for m in means], [m.mean for m in means], color="black", linewidth=2.5, marker="o",
              label="mean")
    effective = results.effective[0]
    axes.axhline(effective.bar, color="tab:red", linestyle="--", linewidth=1, label=f"threshold {effective.bar:g}")
    if effective.length:
        axes.axvline(effective.length, color="tab:green", linestyle=":", linewidth=1.5,
                     label=f"effective {format_length(effective.length)}")
    if results.verdict.claimed:
        axes.axvline(results.verdict.claimed, color="tab:purple", linestyle="-.", linewidth=1.5,
                     label=f"claimed {format_length(results.verdict.claimed)}")
    length_axis(axes, results.lengths)
    axes.set_ylim(-2, 102)
    axes.set_ylabel("score (%)")
    axes.set_title(f"{results.manifest.get('run', {}).get('model', 'model')}: accuracy against length")
    return save(plt, figure, axes, path, 7, loc="lower left", ncol=2)


def depth_heatmap(results: RunResults, path: Path) -> Path | None:
    """Mean NIAH score by needle depth (first needle, in tenths of the prompt) and length; None without NIAH."""
    grid: dict[tuple[int, int], list[float]] = defaultdict(list)
    for sample in results.scored:
        if sample.task.startswith("niah") and sample.depths and sample.score is not None:
            grid[(min(int(sample.depths[0] * DEPTH_BINS), DEPTH_BINS - 1), sample.length)].append(sample.score)
    if not grid:
        return None
    plt = pyplot()
    import numpy as np

    values = np.full((DEPTH_BINS, len(results.lengths)), np.nan)
    for (depth, length), scores in grid.items():
        values[depth, results.lengths.index(length)] = 100 * sum(scores) / len(scores)
    figure, axes = plt.subplots(figsize=(1.4 + 0.9 * len(results.lengths), 5.5), dpi=110)
    image = axes.imshow(values, cmap="RdYlGn", vmin=0, vmax=100, aspect="auto", origin="upper")
    for (row, column), value in np.ndenumerate(values):
        if not np.isnan(value):
            axes.text(column, row, f"{value:.0f}", ha="center", va="center", fontsize=7)
    axes.set_xticks(range(len(results.lengths)), [format_length(length) for length in results.lengths])
    axes.set_yticks(range(DEPTH_BINS), [f"{10 * i}-{10 * (i + 1)}%" for i in range(DEPTH_BINS)])
    axes.set_xlabel("context length")
    axes.set_ylabel("needle depth")
    axes.set_title("NIAH score by needle depth")
    figure.colorbar(image, ax=axes, label="score (%)")
    figure.tight_layout()
    return write_png(plt, figure, path)


def latency_plot(results: RunResults, path: Path) -> Path | None:
    """Time to first token (p50, p95) and end-to-end latency (p50) by length; None when nothing was timed."""
    rows = [row for row in results.telemetry if row.latency_p50 is not None]
    if not rows:
        return None
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(9, 4.5), dpi=110)
    lengths = [row.length for row in rows]
    axes.plot(lengths, [row.latency_p50 for row in rows], marker="o", linewidth=2, label="latency p50")
    timed = [row for row in rows if row.ttft_p50 is not None]
    if timed:
        axes.plot([r.length for r in timed], [r.ttft_p50 for r in timed], marker="o", label="time to first token p50")
        axes.plot([r.length for r in timed], [r.ttft_p95 for r in timed], marker=".", linestyle="--",
                  label="time to first token p95")
    length_axis(axes, lengths)
    axes.set_ylabel("seconds")
    axes.set_title(f"{results.manifest.get('run', {}).get('model', 'model')}: latency against length")
    return save(plt, figure, axes, path)
