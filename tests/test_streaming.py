"""Generation streamed into sending: the first request leaves as soon as its sample exists, the rest are built
while answers are awaited, a few ahead of the senders; a sample that cannot be built stops the run without losing
the answers before it, and the same command resumes."""

from __future__ import annotations

import json
from pathlib import Path

from fake_server import FakeServer

from ruler.ahead import AHEAD
from ruler.cli import main
from ruler.errors import RulerError
from ruler.samples import SampleBuilder


def run(server: FakeServer, tokenizer: Path, out: Path, samples: int, *extra: str) -> int:
    return main(["run", "--model", "fake", "--base-url", server.url, "--tokenizer", str(tokenizer), "--lengths",
                 "4k", "--tasks", "niah_single_1", "--samples", str(samples), "--concurrency", "1", "--out",
                 str(out), *extra])


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_the_first_request_leaves_before_the_last_sample_is_built(trained_tokenizer_dir, tmp_path) -> None:
    out = tmp_path / "run"
    built_when_asked: list[int] = []
    with FakeServer(on_request=lambda body: built_when_asked.append(len(lines(out / "samples.jsonl")))) as server:
        assert run(server, trained_tokenizer_dir, out, 12) == 0
    assert len(built_when_asked) == 12 and len(lines(out / "samples.jsonl")) == 12
    assert built_when_asked[0] <= 1 + AHEAD  # never more than a few ahead of what was sent


def test_a_streamed_run_builds_the_same_samples_as_generating_first(trained_tokenizer_dir, tmp_path) -> None:
    with FakeServer() as server:
        assert run(server, trained_tokenizer_dir, tmp_path / "run", 5) == 0
    assert main(["generate", "--tokenizer", str(trained_tokenizer_dir), "--lengths", "4k", "--tasks",
                 "niah_single_1", "--samples", "5", "--out", str(tmp_path / "data")]) == 0
    assert lines(tmp_path / "run" / "samples.jsonl") == lines(tmp_path / "data" / "samples.jsonl")


def failing_at(index: int):
    """SampleBuilder.build, except that sample `index` cannot be built."""
    build = SampleBuilder.build

    def failing(self, spec, length, at):
        if at == index:
            raise RulerError("the haystack data ran out")
        return build(self, spec, length, at)

    return failing


def test_a_sample_that_cannot_be_built_lets_the_requests_in_flight_finish_and_be_saved(
        trained_tokenizer_dir, tmp_path, monkeypatch) -> None:
    """Two at a time, each answer taking 0.3 s: when sample 3 cannot be built, sample 2 is in flight on the other
    sender; its answer (paid for) is journaled before the run stops."""
    monkeypatch.setattr(SampleBuilder, "build", failing_at(3))
    with FakeServer(delay=0.3) as server:
        assert run(server, trained_tokenizer_dir, tmp_path / "run", 6, "--concurrency", "2") == 2
        assert len(server.received) == 3
    assert sorted(record["index"] for record in lines(tmp_path / "run" / "predictions.jsonl")) == [0, 1, 2]


def test_a_sample_that_cannot_be_built_stops_the_run_and_keeps_the_answers_before_it(
        trained_tokenizer_dir, tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "run"
    build = SampleBuilder.build
    with FakeServer() as server:
        monkeypatch.setattr(SampleBuilder, "build", failing_at(3))
        assert run(server, trained_tokenizer_dir, out, 6) == 2
        assert capsys.readouterr().err.strip().splitlines()[-1] == "ruler: error: the haystack data ran out"
        assert [record["index"] for record in lines(out / "predictions.jsonl")] == [0, 1, 2]
        monkeypatch.setattr(SampleBuilder, "build", build)
        assert run(server, trained_tokenizer_dir, out, 6) == 0
        assert len(server.received) == 6  # the three answered are not sent again


def test_a_plan_that_cannot_be_built_whole_is_refused_before_anything_is_sent(trained_tokenizer_dir, tmp_path,
                                                                              capsys) -> None:
    """The bundled HotpotQA sample holds 80 questions: an 81st sample would repeat one. Streaming must not send
    the 80 first and fail then; estimates, which build nothing, say so too."""
    with FakeServer() as server:
        for command in ("run", "estimate"):
            assert main([command, "--model", "fake", "--base-url", server.url, "--tokenizer",
                         str(trained_tokenizer_dir), "--lengths", "4k", "--tasks", "qa_2", "--hotpotqa", "sample",
                         "--samples", "81", "--out", str(tmp_path / "run")]) == 2
            assert "holds 80 questions, so sample 80 would repeat one" in capsys.readouterr().err
        assert server.received == []
