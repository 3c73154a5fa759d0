"""The README's quickstart at a small scale, through both backends: SmolLM2-135M-Instruct answers for real (in
process through transformers, and served by llama.cpp), the report is derived from those answers, a length past
the 8K window is never scored, and `ruler compare` pairs the two backends' answers to the same prompts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ruler.cli import main
from ruler.scoring.validity import SCORED

QUICKSTART = ["--tasks", "niah_single_1,niah_multikey_1", "--lengths", "1k,16k", "--samples", "2"]


def string_match_all(prediction: str, references: list[str]) -> float:
    """RULER's NIAH metric as its paper defines it, written out here rather than taken from ruler."""
    return sum(reference.lower() in prediction.lower() for reference in references) / len(references)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(llama_server, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("quickstart")
    assert main(["run", "--backend", "hf", "--model", "smollm2", *QUICKSTART, "--out", str(root / "hf")]) == 0
    assert main(["run", "--model", "smollm2", "--base-url", llama_server, "--tokenizer", "smollm2", "--claimed", "8k",
                 *QUICKSTART, "--concurrency", "1", "--out", str(root / "llamacpp")]) == 0
    return {"hf": root / "hf", "llamacpp": root / "llamacpp"}


@pytest.mark.parametrize("backend", ["hf", "llamacpp"])
def test_every_prompt_within_the_window_gets_a_real_answer(runs, backend: str) -> None:
    answered = [p for p in lines(runs[backend] / "predictions.jsonl") if p["length"] == 1024]
    assert len(answered) == 4 and all(p["validity"] in SCORED for p in answered)
    assert all(p["usage"]["prompt_tokens"] == p["prompt_tokens"] for p in answered)
    assert any(p["prediction"].strip() for p in answered)


def test_a_length_past_a_known_window_is_skipped(runs) -> None:
    assert {p["length"] for p in lines(runs["hf"] / "predictions.jsonl")} == {1024}


def test_a_length_past_a_servers_window_is_overflow_not_a_wrong_answer(runs) -> None:
    beyond = [p for p in lines(runs["llamacpp"] / "predictions.jsonl") if p["length"] == 16384]
    assert len(beyond) == 4 and {p["validity"] for p in beyond} == {"overflow"}


@pytest.mark.parametrize("backend", ["hf", "llamacpp"])
def test_the_report_scores_are_the_answers_scores(runs, backend: str, capsys) -> None:
    assert main(["report", str(runs[backend])]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("claimed 8k | largest accepted ") and "report.html" in printed
    samples = {s["id"]: s for s in lines(runs[backend] / "samples.jsonl")}
    results = json.loads((runs[backend] / "report" / "results.json").read_text())
    for cell in (c for c in results["cells"] if c["length"] == 1024):
        scores = [string_match_all(p["prediction"], samples[p["id"]]["references"])
                  for p in lines(runs[backend] / "predictions.jsonl") if p["task"] == cell["task"]
                  and p["length"] == 1024]
        assert cell["n"] == 2 and cell["score"] == pytest.approx(100 * sum(scores) / len(scores), abs=0.01)
    assert (runs[backend] / "report" / "accuracy.png").stat().st_size > 10_000


def test_compare_pairs_the_two_backends_on_the_same_prompts(runs, capsys) -> None:
    assert main(["compare", str(runs["hf"]), str(runs["llamacpp"]), "--show", "4"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[:2] == ["A = hf (backend hf)", "B = llamacpp (backend openai)"]
    row = next(line.split() for line in printed if line.strip().startswith("1k"))
    assert row[1] == "4"
    assert any(line.startswith("agreement ") and " of 4 answers" in line for line in printed)
