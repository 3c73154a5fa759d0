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


#: Okabe and Ito's colour-blind-safe palette: black, orange, sky blue, green, blue, vermillion, purple, yellow
PALETTE = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#F0E442")
#: a sequential colour map that colour-blind readers and greyscale printers see in order
SCORES_MAP = "cividis"


def length_axis(axes, lengths: list[int]) -> None:
    """Context length on a log-2 x axis, ticked at the lengths that were run."""
    axes.set_xscale("log", base=2)
    axes.set_xlim(min(lengths) / 2**0.35, max(lengths) * 2**0.35)  # set, since a run may have nothing to plot
    axes.set_xticks(lengths, [format_length(length) for length in lengths])
    axes.minorticks_off()
    axes.set_xlabel("context length (tokens)")


def write_png(plt, figure, path: Path) -> Path:
    """Render the figure, write it whole and close it (pyplot keeps every open one alive)."""
    image = io.BytesIO()
    figure.savefig(image, format="png")
    plt.close(figure)
    write_atomic(path, image.getvalue())
    return path


def legend_below(axes, size: float = 8, columns: int = 4, gap: float = 0.16) -> None:
    """Grid, and the legend below the axes, where it never covers data."""
    axes.grid(alpha=0.3)
    axes.legend(fontsize=size, loc="upper center", bbox_to_anchor=(0.5, -gap), frameon=False, ncol=columns)


def save(plt, figure, axes, path: Path) -> Path:
    """Grid and legend below; write the PNG and close the figure."""
    legend_below(axes)
    return write_png(plt, figure, path)


def accuracy_plot(results: RunResults, path: Path) -> Path:
    """Left, the answer to "does the claim hold": the mean over tasks with its 95% band against the threshold, the
    claimed, effective and largest accepted lengths, and the lengths not served whole shaded. Right, where it
    degrades: every task at every length as a heatmap, so no task's line hides another's."""
    plt = pyplot()
    figure, (curve, grid) = plt.subplots(1, 2, figsize=(13, 5.6), dpi=110, layout="constrained",
                                         gridspec_kw={"width_ratios": [1.15, 1]})
    verdict, effective = results.verdict, results.effective[0]
    unserved = sorted(length for length, state in verdict.states.items() if state.state == "unserved")
    lengths = sorted(set(results.lengths) | set(unserved) | ({verdict.claimed} if verdict.claimed else set()))
    length_axis(curve, lengths)
    for length in unserved:
        curve.axvspan(length / 2**0.3, length * 2**0.3, color="#999999", alpha=0.25, hatch="//", linewidth=0,
                      label="not served whole" if length == unserved[0] else None)
    means = results.means
    curve.fill_between([m.length for m in means], [m.low for m in means], [m.high for m in means],
                       color=PALETTE[0], alpha=0.15, linewidth=0, label="95% interval")
    curve.plot([m.length for m in means], [m.mean for m in means], color=PALETTE[0], linewidth=2.5, marker="o",
               label="mean over tasks")
    curve.axhline(effective.bar, color=PALETTE[5], linestyle="--", linewidth=1.2,
                  label=f"threshold {effective.bar:g}")
    for length, colour, style, name in ((verdict.claimed, PALETTE[6], "-.", "claimed"),
                                        (effective.length, PALETTE[3], "-", "effective"),
                                        (verdict.accepted, PALETTE[4], ":", "largest accepted")):
        if length:
            curve.axvline(length, color=colour, linestyle=style, linewidth=1.8,
                          label=f"{name} {format_length(length)}")
    curve.set_ylim(-2, 102)
    curve.set_ylabel("score (%)")
    curve.set_title("Does the claim hold?", loc="left", fontsize=12)
    legend_below(curve, 8.5, 3, 0.13)
    _task_grid(results, grid, lengths, unserved)
    model = results.manifest.get("run", {}).get("model", "model")
    figure.suptitle(f"{model}: {verdict.line()}", fontsize=10, wrap=True)
    return write_png(plt, figure, path)


def _task_grid(results: RunResults, axes, lengths: list[int], unserved: list[int]) -> None:
    """Task x length scores, the mean as the last row; cells without a score say why."""
    import numpy as np

    rows = [*results.tasks, "mean"]
    means = {m.length: m.mean for m in results.means}
    values = np.full((len(rows), len(lengths)), np.nan)
    for column, length in enumerate(lengths):
        for row, task in enumerate(results.tasks):
            cell = results.cell(task, length)
            if cell is not None and cell.score is not None:
                values[row, column] = cell.score
        values[-1, column] = means.get(length, np.nan)
    axes.set_facecolor("#eeeeee")
    image = axes.imshow(values, cmap=SCORES_MAP, vmin=0, vmax=100, aspect="auto")
    for (row, column), value in np.ndenumerate(values):
        said = f"{value:.0f}" if not np.isnan(value) else "not served" if lengths[column] in unserved else "-"
        axes.text(column, row, said, ha="center", va="center", fontsize=9 if len(said) < 4 else 7,
                  fontweight="bold" if row == len(rows) - 1 else "normal",
                  color="#555555" if np.isnan(value) else "white" if value < 55 else "black")
    axes.set_xticks(range(len(lengths)), [format_length(length) for length in lengths])
    axes.set_yticks(range(len(rows)), rows, fontsize=9)
    axes.axhline(len(rows) - 1.5, color="white", linewidth=2)
    axes.set_xlabel("context length (tokens)")
    axes.set_title("Where does it degrade? Score (%) by task", loc="left", fontsize=12)
    axes.figure.colorbar(image, ax=axes, shrink=0.8, label="score (%)")


def depth_heatmap(results: RunResults, path: Path) -> Path | None:
    """Mean NIAH score by needle depth (first needle, in tenths of the prompt) and length, the NIAH tasks pooled,
    each cell with its number of answers; None without NIAH answers."""
    grid: dict[tuple[int, int], list[float]] = defaultdict(list)
    for sample in results.scored:
        if sample.task.startswith("niah") and sample.depths and sample.score is not None:
            grid[(min(int(sample.depths[0] * DEPTH_BINS), DEPTH_BINS - 1), sample.length)].append(sample.score)
    if not grid:
        return None
    plt = pyplot()
    import numpy as np

    lengths = sorted({length for _, length in grid})
    values = np.full((DEPTH_BINS, len(lengths)), np.nan)
    for (depth, length), scores in grid.items():
        values[depth, lengths.index(length)] = 100 * sum(scores) / len(scores)
    figure, axes = plt.subplots(figsize=(max(7.0, 2.5 + 1.3 * len(lengths)), 6.2), dpi=110, layout="constrained")
    axes.set_facecolor("#dddddd")
    image = axes.imshow(values, cmap=SCORES_MAP, vmin=0, vmax=100, aspect="auto", origin="upper")
    for (row, column), value in np.ndenumerate(values):
        if np.isnan(value):
            axes.text(column, row, "no needle", ha="center", va="center", fontsize=7.5, color="#555555")
        else:
            axes.text(column, row, f"{value:.0f}\nn={len(grid[(row, lengths[column])])}", ha="center",
                      va="center", fontsize=8.5, color="white" if value < 55 else "black")
    axes.set_xticks(range(len(lengths)), [format_length(length) for length in lengths])
    axes.set_yticks(range(DEPTH_BINS), [f"{10 * i}-{10 * (i + 1)}%" for i in range(DEPTH_BINS)])
    axes.set_xlabel("context length (tokens)")
    axes.set_ylabel("needle depth (first needle, share of the prompt before it)")
    axes.set_title("NIAH score (%) by needle depth, all NIAH tasks pooled", loc="left", fontsize=11)
    figure.colorbar(image, ax=axes, label="score (%)")
    return write_png(plt, figure, path)


def latency_plot(results: RunResults, path: Path) -> Path | None:
    """End-to-end latency and time to first token, p50 and p95, by length, from zero; None when nothing was
    timed."""
    rows = [row for row in results.telemetry if row.latency_p50 is not None]
    if not rows:
        return None
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(9, 5), dpi=110, layout="constrained")
    lengths = [row.length for row in rows]
    series = [("latency", PALETTE[4], [(r.length, r.latency_p50, r.latency_p95) for r in rows]),
              ("time to first token", PALETTE[1], [(r.length, r.ttft_p50, r.ttft_p95) for r in rows
                                                   if r.ttft_p50 is not None])]
    for name, colour, points in series:
        if points:
            xs, p50, p95 = zip(*points)
            axes.plot(xs, p50, color=colour, marker="o", linewidth=2, label=f"{name} p50")
            axes.plot(xs, p95, color=colour, marker=".", linewidth=1.2, linestyle="--", label=f"{name} p95")
    length_axis(axes, lengths)
    axes.set_ylim(bottom=0)
    axes.set_ylabel("seconds")
    measured = sorted({row.measured for row in rows})
    axes.set_title(f"{results.manifest.get('run', {}).get('model', 'model')}: latency by length (timed on "
                   f"{', '.join(measured)})", loc="left", fontsize=11)
    return save(plt, figure, axes, path)
