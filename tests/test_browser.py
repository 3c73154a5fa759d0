"""report.html in a real browser (headless Chromium driven by selenium): the verdict, each length's state with its
answers by validity, and the plots show; filtering and paging the samples work.

A machine without Chromium and its driver skips these, saying so; CI installs both and sets
RULER_REQUIRE_BROWSER=1, which turns a missing browser into a failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fake_server import FakeServer
from helpers import chromium, headless_chromium

from ruler.cli import main


@pytest.fixture(scope="module")
def browser():
    binary, driver = chromium()
    if not (binary and driver):
        why = "needs chromium and chromedriver (Debian: apt-get install chromium chromium-driver)"
        if os.environ.get("RULER_REQUIRE_BROWSER"):
            pytest.fail(why)
        pytest.skip(why)
    session = headless_chromium(binary, driver)
    yield session
    session.quit()


@pytest.fixture(scope="module")
def page(browser, trained_tokenizer_dir, tmp_path_factory) -> Path:
    """A run of 120 samples (two lengths), one left in error: more than one page of the sample table."""
    out = tmp_path_factory.mktemp("browser") / "run"
    with FakeServer() as server:
        server.script.append("500")
        assert main(["run", "--model", "fake", "--base-url", server.url, "--tokenizer", str(trained_tokenizer_dir),
                     "--lengths", "1k,2k", "--tasks", "niah_single_1", "--samples", "60", "--max-retries", "0",
                     "--concurrency", "1", "--out", str(out)]) == 4
    browser.get((out / "report" / "report.html").as_uri())
    return out


def rows(browser) -> int:
    return browser.execute_script("return document.querySelectorAll('#samples tbody tr').length")


def count(browser) -> str:
    return browser.execute_script("return document.getElementById('count').textContent")


def test_the_verdict_shows_first(browser, page) -> None:
    from selenium.webdriver.common.by import By

    verdict = browser.find_element(By.ID, "verdict")
    assert verdict.is_displayed() and verdict.text.startswith("claimed 128k | largest accepted 2k")
    assert browser.find_element(By.TAG_NAME, "h1").location["y"] < verdict.location["y"]


def test_each_length_shows_its_state_and_answers_by_validity(browser, page) -> None:
    from selenium.webdriver.common.by import By

    table = browser.find_element(By.CSS_SELECTOR, "#lengths table")
    cells = [[cell.text for cell in row.find_elements(By.CSS_SELECTOR, "th, td")]
             for row in table.find_elements(By.TAG_NAME, "tr")]
    assert table.is_displayed() and cells[0] == ["length", "state", "ok", "error"]
    assert sorted(cells[1:]) == [["1k", "incomplete: 1 error", "59", "1"], ["2k", "complete", "60", "0"]]


def test_every_plot_is_drawn(browser, page) -> None:
    sizes = browser.execute_script("return [...document.images].map(i => i.complete ? i.naturalWidth : 0)")
    assert len(sizes) == 3 and min(sizes) > 300


def test_samples_page_by_hundred(browser, page) -> None:
    from selenium.webdriver.common.by import By

    assert rows(browser) == 100 and count(browser) == "120 samples, page 1 of 2"
    browser.find_element(By.ID, "next").click()
    assert rows(browser) == 20 and count(browser) == "120 samples, page 2 of 2"
    browser.find_element(By.ID, "next").click()
    assert count(browser) == "120 samples, page 2 of 2"
    browser.find_element(By.ID, "prev").click()
    assert rows(browser) == 100 and count(browser) == "120 samples, page 1 of 2"


def test_the_filter_narrows_the_samples(browser, page) -> None:
    from selenium.webdriver.common.by import By

    box = browser.find_element(By.ID, "filter")
    box.clear()
    box.send_keys("error")
    assert count(browser) == "1 sample, page 1 of 1" and rows(browser) == 1
    cells = browser.find_elements(By.CSS_SELECTOR, "#samples tbody td")
    assert [cells[1].text, cells[3].text] == ["1k", "error"]
    box.clear()
    box.send_keys("2k")
    assert count(browser) == "60 samples, page 1 of 1"
