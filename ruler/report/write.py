"""Writes a run's report folder and returns what it wrote."""

from __future__ import annotations

import json
from pathlib import Path

from ruler.report import html, plots, tables
from ruler.report.results import RunResults


def write_report(results: RunResults, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = {"results": folder / "results.json", "csv": folder / "summary.csv", "markdown": folder / "summary.md"}
    written["results"].write_text(json.dumps(results.to_json(), indent=2) + "\n")
    written["csv"].write_text(tables.summary_csv(results))
    written["markdown"].write_text(tables.markdown(results))
    images = [plots.accuracy_plot(results, folder / "accuracy.png")]
    heatmap = plots.depth_heatmap(results, folder / "depth_heatmap.png")
    if heatmap:
        images.append(heatmap)
    written.update({path.stem: path for path in images})
    written["html"] = folder / "report.html"
    written["html"].write_text(html.render(results, images), encoding="utf-8")
    return written
