"""Refresh the pictures in docs/: for each run folder given, its report figures and a screenshot of the top of its
report.html in headless Chromium (selenium, the test extra; Debian: apt-get install chromium chromium-driver),
started as the browser tests start it (tests/helpers.py).

    python docs/screenshots.py NAME=RUN_FOLDER [NAME=RUN_FOLDER ...]

writes docs/NAME-report.png, docs/NAME-accuracy.png, docs/NAME-depth.png and docs/NAME-latency.png.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent / "tests"))

from helpers import chromium, headless_chromium  # noqa: E402

FIGURES = {"accuracy.png": "accuracy", "depth_heatmap.png": "depth", "latency.png": "latency"}


def screenshot(page: Path, out: Path, height: int = 1400) -> None:
    browser = headless_chromium(*chromium(), height, "--hide-scrollbars")
    try:
        browser.get(page.as_uri())
        browser.save_screenshot(str(out))
    finally:
        browser.quit()


def main(pairs: list[str]) -> None:
    for pair in pairs:
        name, _, folder = pair.partition("=")
        report = Path(folder) / "report"
        screenshot(report / "report.html", DOCS / f"{name}-report.png")
        for figure, short in FIGURES.items():
            if (report / figure).is_file():
                shutil.copyfile(report / figure, DOCS / f"{name}-{short}.png")
        print(f"{name}: {', '.join(sorted(p.name for p in DOCS.glob(f'{name}-*.png')))}")


if __name__ == "__main__":
    main(sys.argv[1:])
