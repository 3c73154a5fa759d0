"""Several `--base-url` values are replicas of one model: requests go to the least busy one (ties to the one sent
the fewest), and a replica that goes down mid-run costs retries, not the run."""

from __future__ import annotations

import json
from pathlib import Path

from fake_server import FakeServer

from ruler.cli import main


def run(urls: list[str], tokenizer: Path, out: Path, *extra: str) -> int:
    return main(["run", "--model", "fake", *[part for url in urls for part in ("--base-url", url)], "--tokenizer",
                 str(tokenizer), "--lengths", "4k", "--tasks", "niah_single_1,niah_multikey_2", "--samples", "4",
                 "--out", str(out), *extra])


def journal(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


def test_requests_sent_one_at_a_time_take_turns(trained_tokenizer_dir, tmp_path) -> None:
    with FakeServer() as first, FakeServer() as second:
        assert run([first.url, second.url], trained_tokenizer_dir, tmp_path / "run", "--concurrency", "1") == 0
        assert (len(first.received), len(second.received)) == (4, 4)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["run"]["replicas"] == [first.url, second.url]


def test_a_busy_replica_is_passed_over_while_another_is_free(trained_tokenizer_dir, tmp_path) -> None:
    """The three requests sent alone take turns (busy, free, busy); the busy replica then holds its next request
    for 5 s, and the free one answers the remaining four meanwhile."""
    with FakeServer() as busy, FakeServer() as free:
        busy.script.extend(["ok", "ok", "slow"])
        assert run([busy.url, free.url], trained_tokenizer_dir, tmp_path / "run", "--concurrency", "2") == 0
        assert (len(busy.received), len(free.received)) == (3, 5)


def test_a_replica_going_down_mid_run_does_not_stop_it(trained_tokenizer_dir, tmp_path) -> None:
    with FakeServer(delay=0.05) as dying, FakeServer(delay=0.05) as healthy:
        dying.script.extend(["ok", "die"])
        assert run([dying.url, healthy.url], trained_tokenizer_dir, tmp_path / "run", "--concurrency", "2") == 0
    records = journal(tmp_path / "run")
    assert len(records) == 8 and {r["validity"] for r in records} == {"ok"}
    assert len(dying.received) == 2 and len(healthy.received) >= 6


def test_a_replica_down_from_the_start_is_passed_over(trained_tokenizer_dir, tmp_path) -> None:
    with FakeServer() as healthy:
        assert run(["http://127.0.0.1:9/v1", healthy.url], trained_tokenizer_dir, tmp_path / "run",
                   "--concurrency", "2") == 0
    assert {r["validity"] for r in journal(tmp_path / "run")} == {"ok"}
