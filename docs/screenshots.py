"""Refresh the pictures in docs/: for each run folder given, its report figures and a screenshot of the top of its
report.html in headless Chromium (selenium, the test extra; Debian: apt-get install chromium chromium-driver).

    python docs/screenshots.py NAME=RUN_FOLDER [NAME=RUN_FOLDER ...]

writes docs/NAME-report.png, docs/NAME-accuracy.png, docs/NAME-depth.png and docs/NAME-latency.png.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
FIGURES = {"accuracy.png": "accuracy", "depth_heatmap.png": "depth", "latency.png": "latency"}


def screenshot(page: Path, out: Path, height: int = 1400) -> None:
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser") or ""
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size=1200,{height}",
                     "--hide-scrollbars"):
        options.add_argument(argument)
    browser = webdriver.Chrome(options=options,
                               service=webdriver.ChromeService(executable_path=shutil.which("chromedriver")))
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
