"""Task x length tables: CSV for machines, Markdown and plain text for people."""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict

from ruler.lengths import format_length
from ruler.report.results import RunResults
from ruler.scoring.validity import VALIDITIES


def _value(cell) -> str:
    return "-" if cell is None or cell.score is None else f"{cell.score:.1f} (n={cell.n})"


def summary_csv(results: RunResults) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["task", "length", "score", "n", "low", "high", "precision", *VALIDITIES])
    for cell in sorted(results.cells, key=lambda c: (results.tasks.index(c.task), c.length)):
        writer.writerow([cell.task, cell.length, *(("" if v is None else round(v, 3)) for v in
                                                   (cell.score, cell.n, cell.low, cell.high, cell.precision)),
                         *(cell.validity.get(name, 0) for name in VALIDITIES)])
    for mean in results.means:
        writer.writerow(["mean", mean.length, round(mean.mean, 3), mean.tasks, round(mean.low, 3),
                         round(mean.high, 3), "", *([""] * len(VALIDITIES))])
    return out.getvalue()


def rows(results: RunResults) -> list[list[str]]:
    """Header, one row per task (score and n), then the mean over tasks with its 95% interval."""
    table = [["task", *map(format_length, results.lengths)]]
    for task in results.tasks:
        table.append([task, *(_value(results.cell(task, length)) for length in results.lengths)])
    means = {m.length: m for m in results.means}
    table.append(["mean", *(f"{means[length].mean:.1f} [{means[length].low:.1f}, {means[length].high:.1f}]"
                            if length in means else "-" for length in results.lengths)])
    return table


def length_rows(results: RunResults) -> list[list[str]]:
    """Header, then one row per length, skipped ones included: whether its answers speak for it (and why not),
    and the answers by validity."""
    counts: dict[int, Counter] = defaultdict(Counter)
    for sample in results.scored:
        counts[sample.length][sample.validity] += 1
    shown = [name for name in VALIDITIES if any(count[name] for count in counts.values())]
    table = [["length", "state", *shown]]
    for length in sorted(set(results.lengths) | set(results.verdict.states)):
        state = results.verdict.states.get(length)
        said = f"{state.state}: {state.why}" if state and state.why else state.state if state else "complete"
        table.append([format_length(length), said, *(str(counts[length][name]) for name in shown)])
    return table


def markdown(results: RunResults) -> str:
    table = rows(results)
    lines = ["| " + " | ".join(table[0]) + " |", "|" + "---|" * len(table[0])]
    lines += ["| " + " | ".join(row) + " |" for row in table[1:]]
    return "\n".join(lines) + "\n"


def text(results: RunResults) -> str:
    table = rows(results)
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(cell.rjust(width) if i else cell.ljust(width)
                               for i, (cell, width) in enumerate(zip(row, widths))) for row in table)
