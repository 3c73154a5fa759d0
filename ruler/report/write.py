"""Writes a run's report folder and returns what it wrote."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from ruler import adaptive
from ruler.files import write_atomic
from ruler.report import html, plots, tables
from ruler.report.results import RunResults, load
from ruler.report.telemetry import drift_warnings
from ruler.scoring.validity import VALIDITIES


def write_report(results: RunResults, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = {"results": folder / "results.json", "csv": folder / "summary.csv", "markdown": folder / "summary.md"}
    write_atomic(written["results"], json.dumps(results.to_json(), indent=2) + "\n")
    write_atomic(written["csv"], tables.summary_csv(results))
    write_atomic(written["markdown"], tables.markdown(results))
    images = [plots.accuracy_plot(results, folder / "accuracy.png")]
    for extra in (plots.depth_heatmap(results, folder / "depth_heatmap.png"),
                  plots.latency_plot(results, folder / "latency.png")):
        if extra:
            images.append(extra)
    written.update({path.stem: path for path in images})
    written["html"] = folder / "report.html"
    write_atomic(written["html"], html.render(results, images))
    return written


def write_and_summarise(root: Path, threshold: float, claimed: int | None) -> str:
    """Score a run folder, write its report folder, and return what a terminal shows: the verdict (an adaptive
    validation's with its path), the table, the counts by validity and the paths written."""
    results = load(root, threshold, claimed)
    written = write_report(results, root / "report")
    counts = Counter(s.validity for s in results.scored)
    truncation = [f"warning: {results.truncation.describe()}"] if results.truncation else []
    run = results.manifest.get("run") or {}
    # an adaptive validation's verdict is its rounds'; the intervals of what they asked for follow it
    verdict = [*adaptive.summary(run), f"by the intervals: {results.verdict.line()}"] if run.get("adaptive") else \
        [results.verdict.line()]
    return "\n".join([*verdict, *truncation, "", tables.text(results), "",
                      "validity: " + ", ".join(f"{name} {counts[name]}" for name in VALIDITIES if counts[name]),
                      *drift_warnings(results.telemetry),
                      f"run: {root}", f"report: {written['html']}",
                      "plots: " + ", ".join(str(path) for path in written.values() if path.suffix == ".png")])
