"""Before anything is sent, `ruler estimate` (or `ruler run --dry-run`) says what a run will send and cost; while
it runs, `--max-cost` stops it cleanly before the spent cost would pass the cap, and the same command resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_server import FakeServer

from ruler.cli import main
from ruler.sizing import aim

TASKS = ["--lengths", "4k", "--tasks", "niah_single_1,niah_multikey_2", "--samples", "3"]


def args(command: str, server: FakeServer, tokenizer: Path, out: Path, *extra: str) -> list[str]:
    return [command, "--model", "fake", "--base-url", server.url, "--tokenizer", str(tokenizer), *TASKS,
            "--concurrency", "1", "--out", str(out), *extra]


def total_line(printed: str) -> list[str]:
    return next(line for line in printed.splitlines() if line.strip().startswith("total")).split()


def samples(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


def test_estimate_answers_without_generating_or_sending_within_half_a_percent(trained_tokenizer_dir, tmp_path,
                                                                               capsys) -> None:
    """Every prompt is sized to its length, so the estimate needs no prompt: the run's real input tokens then lie
    within 0.5% of it, and requests, answer budgets and cost follow."""
    out = tmp_path / "run"
    with FakeServer() as server:
        assert main(args("estimate", server, trained_tokenizer_dir, out, "--price-in", "2", "--price-out",
                         "10")) == 0
        assert server.received == [] and not (out / "samples.jsonl").exists()
        printed = capsys.readouterr().out
        assert main(args("run", server, trained_tokenizer_dir, out)) == 0
    made = samples(out)
    total = total_line(printed)
    estimated, inputs, outputs = int(total[2].replace(",", "")), sum(s["prompt_tokens"] for s in made), \
        sum(s["max_new_tokens"] for s in made)
    assert int(total[1]) == len(made) == 6 and int(total[3].replace(",", "")) == outputs
    assert abs(estimated - inputs) <= 0.005 * inputs
    assert float(total[4]) == pytest.approx((2 * estimated + 10 * outputs) / 1e6, abs=1e-4)
    assert "6 of the 6 prompts are not generated yet" in printed


def test_an_estimate_counts_the_prompts_already_generated_exactly(trained_tokenizer_dir, tmp_path, capsys) -> None:
    """A run stopped by its spending cap after one answer has generated a few prompts beyond it: those count
    exactly, the ones never generated at the size they will be built to."""
    out = tmp_path / "run"
    prices = ["--price-in", "1000", "--price-out", "0"]
    with FakeServer() as server:
        assert main(args("run", server, trained_tokenizer_dir, out, *prices, "--max-cost", "5")) == 3
        capsys.readouterr()
        assert main(args("estimate", server, trained_tokenizer_dir, out)) == 0
    printed = capsys.readouterr().out
    answered = {json.loads(line)["id"] for line in (out / "predictions.jsonl").read_text().splitlines()}
    unsent = [s["prompt_tokens"] for s in samples(out) if s["id"] not in answered]
    unbuilt = 6 - len(answered) - len(unsent)
    assert len(answered) == 1 and unsent and unbuilt
    assert int(total_line(printed)[2].replace(",", "")) == sum(unsent) + unbuilt * aim(4096 - 128)
    assert f"{unbuilt} of the 5 prompts are not generated yet" in printed


def test_prices_come_from_an_openrouter_style_listing(trained_tokenizer_dir, tmp_path, capsys) -> None:
    with FakeServer(pricing={"prompt": "0.000001", "completion": "0.000004"}) as server:
        assert main(args("run", server, trained_tokenizer_dir, tmp_path / "run", "--dry-run")) == 0
    total = total_line(capsys.readouterr().out)
    inputs, outputs = (int(total[column].replace(",", "")) for column in (2, 3))
    assert float(total[4]) == pytest.approx((inputs + 4 * outputs) / 1e6, abs=1e-4)


def test_a_second_estimate_knows_the_pace_of_the_first_answers(trained_tokenizer_dir, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    with FakeServer(delay=0.05) as server:
        assert main(args("run", server, trained_tokenizer_dir, out, "--tasks", "niah_single_1")) == 0
        capsys.readouterr()
        assert main(args("estimate", server, trained_tokenizer_dir, out)) == 0
    printed = capsys.readouterr().out
    assert "at the pace of the 3 requests already answered" in printed and "cost: unknown" in printed


def test_max_cost_stops_cleanly_and_the_same_command_resumes(trained_tokenizer_dir, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    with FakeServer() as server:
        assert main(args("estimate", server, trained_tokenizer_dir, out, "--price-in", "1000", "--price-out",
                         "0")) == 0
        full = float(total_line(capsys.readouterr().out)[4])
        assert main(args("run", server, trained_tokenizer_dir, out, "--price-in", "1000", "--price-out", "0",
                         "--max-cost", str(full / 2))) == 3
        assert "--max-cost" in capsys.readouterr().err
        first = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
        prompts = {s["id"]: s["prompt_tokens"] for s in samples(out)}
        spent = 1000 * sum(prompts[p["id"]] for p in first) / 1e6
        unsent = [tokens for id_, tokens in prompts.items() if id_ not in {p["id"] for p in first}]
        assert 1 <= len(first) < 6
        assert spent <= full / 2 < spent + 1000 * max(unsent) / 1e6
        assert main(args("run", server, trained_tokenizer_dir, out, "--price-in", "1000", "--price-out", "0",
                         "--max-cost", str(full * 1.01))) == 0
    ids = [json.loads(line)["id"] for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 6


def test_max_cost_without_prices_is_a_one_line_error(trained_tokenizer_dir, tmp_path, capsys) -> None:
    with FakeServer() as server:
        assert main(args("run", server, trained_tokenizer_dir, tmp_path / "run", "--max-cost", "5")) == 2
    assert "--max-cost needs prices" in capsys.readouterr().err
