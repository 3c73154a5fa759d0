"""`ruler report` re-derives everything from a stored run: results.json, tables, plots and one self-contained
HTML page that holds what it claims; bad run folders are one-line errors."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fake_server import FakeServer

from ruler.cli import main


@pytest.fixture(scope="module")
def stored_run(trained_tokenizer_dir, tmp_path_factory) -> Path:
    """A finished run: two NIAH tasks at two lengths, one answer lost to an error, one to an overflow."""
    out = tmp_path_factory.mktemp("report") / "run"
    with FakeServer() as server:
        server.script.extend(["500", "overflow"])
        assert main(["run", "--model", "fake", "--base-url", server.url, "--tokenizer", str(trained_tokenizer_dir),
                     "--lengths", "4k,8k", "--tasks", "niah_single_1,niah_multikey_2", "--samples", "3",
                     "--max-retries", "0", "--concurrency", "1", "--out", str(out)]) == 4  # an error is left
    return out


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images, self.verdict, self.data, self.tables, self._in = [], "", "", 0, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        if tag == "table":
            self.tables += 1
        self._in = attrs.get("id") if tag in ("p", "script") else self._in

    def handle_data(self, data):
        if self._in == "verdict":
            self.verdict += data
        elif self._in == "data":
            self.data += data

    def handle_endtag(self, tag):
        if tag in ("p", "script"):
            self._in = None


def test_report_writes_results_tables_plots_and_html(stored_run, capsys) -> None:
    assert main(["report", str(stored_run), "--claimed", "1m"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("claimed 1m | largest accepted 8k | effective")
    folder = stored_run / "report"
    results = json.loads((folder / "results.json").read_text())
    assert results["lengths"] == [4096, 8192] and results["validity"] == {"ok": 10, "error": 1, "overflow": 1}
    assert {"line", "claimed", "accepted", "holds"} <= set(results["verdict"]) and not results["verdict"]["holds"]
    assert len(results["cells"]) == 4 and sum(c["n"] for c in results["cells"]) == 10
    assert results["wavg"]["inc"] is not None and len(results["effective_lengths"]) == 2
    csv_lines = (folder / "summary.csv").read_text().splitlines()
    assert csv_lines[0].startswith("task,length,score,n,low,high,precision,ok") and len(csv_lines) == 1 + 4 + 2
    assert all(c["precision"] == 100.0 for c in results["cells"])
    assert (folder / "summary.md").read_text().startswith("| task | 4k | 8k |")


def test_results_carry_latency_by_length_over_the_answered_requests(stored_run) -> None:
    main(["report", str(stored_run)])
    rows = json.loads((stored_run / "report" / "results.json").read_text())["telemetry"]
    assert [(row["length"], row["requests"]) for row in rows] == [(4096, 4), (8192, 6)]
    assert all(0 < row["latency_p50"] <= row["latency_p95"] for row in rows)
    assert all(row["ttft_p50"] is None and row["drift_mean"] is None for row in rows)  # not streamed, no counts


def test_the_html_is_self_contained_and_holds_every_sample(stored_run) -> None:
    main(["report", str(stored_run)])
    page = Page()
    page.feed((stored_run / "report" / "report.html").read_text())
    assert page.verdict.startswith("claimed 128k")
    assert len(page.images) == 3 and all(src.startswith("data:image/png;base64,") for src in page.images)
    assert page.tables == 4
    rows = json.loads(page.data)
    assert len(rows) == 12 and {"task", "length", "depth", "validity", "finish", "score", "references",
                                "prediction", "sha"} <= set(rows[0])
    assert {row["finish"] for row in rows if row["validity"] == "ok"} == {"stop"}


def test_the_html_says_each_lengths_state_and_its_answers_by_validity(stored_run) -> None:
    main(["report", str(stored_run)])
    page = (stored_run / "report" / "report.html").read_text()
    lengths = page.split('<div id="lengths">', 1)[1].split("</div>", 1)[0]
    cells = [re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row) for row in re.findall(r"<tr>(.*?)</tr>", lengths)]
    assert cells[0] == ["length", "state", "ok", "overflow", "error"]
    assert cells[1:] == [["4k", "unserved: 1 overflow", "4", "1", "1"], ["8k", "complete", "6", "0", "0"]]
    assert "wAvg inc" in page and "RULER&#x27;s averages over lengths" in page and "not measured in this run" in page
    assert "http://" not in (stored_run / "report" / "report.html").read_text().split("<script type")[0]


def test_plots_are_real_images(stored_run) -> None:
    import matplotlib.image

    main(["report", str(stored_run)])
    for name in ("accuracy.png", "depth_heatmap.png", "latency.png"):
        data = (stored_run / "report" / name).read_bytes()
        assert len(data) > 10_000
        height, width, _ = matplotlib.image.imread(io.BytesIO(data), format="png").shape
        assert height > 300 and width > 300
    page = Page()
    page.feed((stored_run / "report" / "report.html").read_text())
    assert base64.b64decode(page.images[0].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("make,message", [
    (lambda root: root / "missing", "no such run folder"),
    (lambda root: root, "not a ruler run folder"),
])
def test_bad_run_folders_are_one_line_errors(tmp_path, capsys, make, message) -> None:
    assert main(["report", str(make(tmp_path))]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_a_dataset_without_predictions_is_explained(trained_tokenizer_dir, tmp_path, capsys) -> None:
    assert main(["generate", "--tokenizer", str(trained_tokenizer_dir), "--lengths", "4k", "--tasks",
                 "niah_single_1", "--samples", "1", "--out", str(tmp_path / "data")]) == 0
    assert main(["report", str(tmp_path / "data")]) == 2
    assert "no predictions yet" in capsys.readouterr().err


@pytest.fixture(scope="module")
def worse_run(trained_tokenizer_dir, stored_run) -> Path:
    """The same prompts as `stored_run`, answered wrongly four times."""
    out = stored_run.parent / "worse"
    with FakeServer() as server:
        server.script.extend(["empty"] * 4)
        assert main(["run", "--model", "fake-2", "--base-url", server.url, "--tokenizer", str(trained_tokenizer_dir),
                     "--lengths", "4k,8k", "--tasks", "niah_single_1,niah_multikey_2", "--samples", "3",
                     "--concurrency", "1", "--out", str(out)]) == 0
    return out


def test_compare_pairs_the_same_prompts_and_tests_the_difference(stored_run, worse_run, capsys) -> None:
    assert main(["compare", str(stored_run), str(worse_run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["A = run (model fake)", "B = worse (model fake-2)"]
    four_k = next(line for line in lines if line.strip().startswith("4k")).split()
    pairs, first, second, diff = int(four_k[1]), float(four_k[2]), float(four_k[3]), float(four_k[4])
    assert pairs == 4 and first == 100.0 and second < 100.0 and diff == pytest.approx(second - first, abs=0.11)
    assert four_k[-2].endswith("%") and int(four_k[-2][:-1]) < 100


def test_compare_names_prompts_only_one_run_could_answer(stored_run, worse_run, capsys) -> None:
    assert main(["compare", str(stored_run), str(worse_run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    unscored = [line.split()[-1] for line in lines if line.strip()[:2] in ("4k", "8k")]
    assert sum(int(cell.split("/")[0]) for cell in unscored) == 2 and all(cell.endswith("/0") for cell in unscored)
    assert any(line.startswith("A left 2 prompts unscored") for line in lines)
    assert any(line.startswith("agreement ") for line in lines)


def test_compare_shows_the_answers_that_differ(stored_run, worse_run, capsys) -> None:
    assert main(["compare", str(stored_run), str(worse_run), "--show", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    shown = [i for i, line in enumerate(lines) if "refs [" in line]
    assert len(shown) == 2
    first = shown[0]
    assert lines[first + 1].split()[:2] == ["A", "100.0"] and lines[first + 2].split()[:2] == ["B", "0.0"]


def test_compare_of_runs_sharing_no_prompt_says_why_and_fails(trained_tokenizer_dir, stored_run, capsys) -> None:
    chat = stored_run.parent / "chat"
    with FakeServer() as server:
        assert main(["run", "--model", "fake", "--base-url", server.url, "--tokenizer", str(trained_tokenizer_dir),
                     "--lengths", "4k", "--tasks", "niah_single_1", "--samples", "2", "--mode", "chat",
                     "--out", str(chat)]) == 0
    capsys.readouterr()
    assert main(["compare", str(stored_run), str(chat)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "A = run (mode prefill)", "B = chat (mode chat)",
        "nothing to compare: the runs share no prompt (prefill and chat mode build different prompts)",
        "2 samples share an id but not a prompt"]


def test_plot_overlays_runs(stored_run, worse_run, tmp_path, capsys) -> None:
    out = tmp_path / "curves.png"
    assert main(["plot", str(stored_run), str(worse_run), "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG" and out.stat().st_size > 10_000


def test_sign_test_matches_the_binomial() -> None:
    from ruler.report.compare import sign_test

    assert sign_test(0, 0) == 1.0
    assert sign_test(0, 5) == pytest.approx(2 / 32)
    assert sign_test(3, 3) == 1.0
