"""Before anything is sent, `ruler estimate` (or `ruler run --dry-run`) says what a run will send and cost; while
it runs, `--max-cost` stops it cleanly before the spent cost would pass the cap, and the same command resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_server import FakeServer

from ruler.cli import main

TASKS = ["--lengths", "4k", "--tasks", "niah_single_1,niah_multikey_2", "--samples", "3"]


def args(command: str, server: FakeServer, tokenizer: Path, out: Path, *extra: str) -> list[str]:
    return [command, "--model", "fake", "--base-url", server.url, "--tokenizer", str(tokenizer), *TASKS,
            "--concurrency", "1", "--out", str(out), *extra]


def total_line(printed: str) -> list[str]:
    return next(line for line in printed.splitlines() if line.strip().startswith("total")).split()


def samples(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


def test_estimate_counts_every_token_and_the_cost_without_sending(trained_tokenizer_dir, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    with FakeServer() as server:
        assert main(args("estimate", server, trained_tokenizer_dir, out, "--price-in", "2", "--price-out",
                         "10")) == 0
        assert server.received == []
    made = samples(out)
    total = total_line(capsys.readouterr().out)
    inputs, outputs = sum(s["prompt_tokens"] for s in made), sum(s["max_new_tokens"] for s in made)
    assert int(total[1]) == 6 and int(total[2].replace(",", "")) == inputs
    assert int(total[3].replace(",", "")) == outputs
    assert float(total[4]) == pytest.approx((2 * inputs + 10 * outputs) / 1e6, abs=1e-4)


def test_prices_come_from_an_openrouter_style_listing(trained_tokenizer_dir, tmp_path, capsys) -> None:
    with FakeServer(pricing={"prompt": "0.000001", "completion": "0.000004"}) as server:
        assert main(args("run", server, trained_tokenizer_dir, tmp_path / "run", "--dry-run")) == 0
    made = samples(tmp_path / "run")
    expected = (sum(s["prompt_tokens"] for s in made) + 4 * sum(s["max_new_tokens"] for s in made)) / 1e6
    assert float(total_line(capsys.readouterr().out)[4]) == pytest.approx(expected, abs=1e-4)


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
