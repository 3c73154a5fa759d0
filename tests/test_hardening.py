"""Nothing sent is lost, nothing secret is written, nothing in a state file turns into a traceback: a failure to
save stops sending, a failure of one request is that request's error, a run folder serves one run at a time, and
settings that change a request are pinned on resume."""

from __future__ import annotations

import asyncio
import base64
import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_server import FakeServer

from ruler.backends.base import Request
from ruler.backends.openai_compat import OpenAICompatible
from ruler.cli import main
from ruler.journal import Journal
from ruler.runner import predict
from ruler.types import Sample


def args(server: FakeServer, tokenizer: Path, out: Path, *extra: str, samples: str = "4") -> list[str]:
    return ["run", "--model", "fake", "--base-url", server.url, "--tokenizer", str(tokenizer), "--lengths", "4k",
            "--tasks", "niah_single_1,niah_single_2", "--samples", samples, "--max-retries", "0", "--out", str(out),
            *extra]


def journal(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


class FullDisk(Journal):
    """Fault injection: the disk fills up after `room` lines."""

    def __init__(self, path: Path, room: int) -> None:
        super().__init__(path)
        self.room = room

    def extend(self, records: list[dict]) -> None:
        if self.room < len(records):
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(records)
        super().extend(records)


def sample(index: int) -> Sample:
    return Sample(f"niah_single_1/4096/{index}", "niah_single_1", 4096, index, 42, 0, 0, 16, "string_match_all", "",
                  ["1"], [0.5], 10, "x")


def test_a_failure_to_save_stops_sending_at_once(tmp_path):
    with FakeServer(delay=0.05) as server:
        async def go():
            backend = OpenAICompatible("fake", server.url, max_retries=0)
            try:
                await predict(backend, [sample(i) for i in range(40)], lambda s: Request(s.id, "x", 4),
                              FullDisk(tmp_path / "p.jsonl", 3), 4, lambda p: None, len)
            finally:
                await backend.aclose()

        with pytest.raises(OSError):
            asyncio.run(go())
        sent = len(server.received)
    saved = len((tmp_path / "p.jsonl").read_text().splitlines())
    assert saved <= 3 and sent <= 3 + 2 * 4  # what was saved, what could not be, and what was in flight


def test_a_prompt_that_cannot_be_rebuilt_is_that_requests_error(tmp_path):
    def request_for(s: Sample) -> Request:
        if s.index == 1:
            raise ValueError("prompt hash mismatch")
        return Request(s.id, "x", 4)

    with FakeServer() as server:
        async def go():
            backend = OpenAICompatible("fake", server.url, max_retries=0)
            try:
                with Journal(tmp_path / "p.jsonl") as out:
                    await predict(backend, [sample(i) for i in range(4)], request_for, out, 2, lambda p: None, len)
            finally:
                await backend.aclose()

        asyncio.run(go())
        sent = len(server.received)
    records = {r["index"]: r for r in map(json.loads, (tmp_path / "p.jsonl").read_text().splitlines())}
    assert sent == 3 and records[1]["validity"] == "error" and "prompt hash mismatch" in records[1]["error"]
    assert {records[i]["validity"] for i in (0, 2, 3)} == {"ok"}


def test_a_full_disk_is_one_line_and_the_same_command_resumes(trained_tokenizer_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    with FakeServer() as server:
        monkeypatch.setattr("ruler.run.Journal", lambda path: FullDisk(path, 2))
        assert main(args(server, trained_tokenizer_dir, out, "--concurrency", "1")) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith(f"ruler: error: cannot save answers in {out}: No space left on device")
        monkeypatch.undo()
        assert main(args(server, trained_tokenizer_dir, out)) == 0
    ids = [r["id"] for r in journal(out)]
    assert len(ids) == len(set(ids)) == 8


def test_a_second_run_on_a_busy_folder_is_refused_and_a_killed_ones_lock_is_taken_over(trained_tokenizer_dir,
                                                                                        tmp_path, capsys):
    out = tmp_path / "run"
    with FakeServer(delay=0.3) as server:
        first = subprocess.Popen([sys.executable, "-m", "ruler.cli", *args(server, trained_tokenizer_dir, out,
                                                                             "--concurrency", "1")],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 env={**os.environ, "HF_HUB_OFFLINE": "1"})
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (out / "predictions.jsonl").exists():
            time.sleep(0.05)
        assert main(args(server, trained_tokenizer_dir, out)) == 2
        assert f"is in use by another ruler run (process {first.pid})" in capsys.readouterr().err
        first.kill()
        first.wait()
        assert main(args(server, trained_tokenizer_dir, out)) == 0
    ids = [r["id"] for r in journal(out)]
    assert len(ids) == len(set(ids)) == 8


@pytest.mark.parametrize("option,what", [(["--stream"], "streaming"),
                                         (["--max-thinking-tokens", "64"], "thinking budget"),
                                         (["--reasoning-effort", "low"], "reasoning effort")])
def test_settings_that_change_requests_are_pinned_on_resume(trained_tokenizer_dir, tmp_path, capsys, option, what):
    out = tmp_path / "run"
    with FakeServer() as server:
        assert main(args(server, trained_tokenizer_dir, out, samples="1")) == 0
        assert main(args(server, trained_tokenizer_dir, out, *option, samples="1")) == 2
    assert f"different {what}" in capsys.readouterr().err


def test_credentials_in_the_base_url_are_used_and_never_written(trained_tokenizer_dir, tmp_path, monkeypatch):
    """User info becomes Basic auth and query values go with every request (Azure's `?api-version=`), as the
    user meant; neither, nor the API key, reaches the run folder."""
    out = tmp_path / "run"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-key-0000")
    with FakeServer() as server:
        secret_url = server.url.replace("http://", "http://someone:hunter2pass@") + "?key=query-secret"
        command = args(server, trained_tokenizer_dir, out, samples="1")
        command[command.index(server.url)] = secret_url
        assert main(command) == 0
    basic = "Basic " + base64.b64encode(b"someone:hunter2pass").decode()
    assert {(sent["query"], sent["authorization"]) for sent in server.received} == {("key=query-secret", basic)}
    written = "".join(path.read_text(errors="replace") for path in out.rglob("*") if path.is_file())
    assert not [secret for secret in ("hunter2pass", "someone", "query-secret", "sk-test-secret") if secret in written]


def test_a_base_url_without_a_scheme_says_so(trained_tokenizer_dir, tmp_path, capsys):
    with FakeServer() as server:
        command = args(server, trained_tokenizer_dir, tmp_path / "run", samples="1")
        command[command.index(server.url)] = server.url.removeprefix("http://")
        assert main(command) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"ruler: error: --base-url {server.url.removeprefix('http://')} has no scheme: write {server.url} "
        "(or https://)")


def test_a_damaged_journal_line_is_one_line_naming_it(trained_tokenizer_dir, tmp_path, capsys):
    out = tmp_path / "run"
    with FakeServer() as server:
        assert main(args(server, trained_tokenizer_dir, out, samples="1")) == 0
        lines = (out / "predictions.jsonl").read_text().splitlines()
        (out / "predictions.jsonl").write_text("\n".join([lines[0], "{garbage", *lines[1:]]) + "\n")
        assert main(args(server, trained_tokenizer_dir, out, samples="1")) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ruler: error")]
    assert len(errors) == 1 and "predictions.jsonl line 2 is damaged" in errors[0]


def test_a_torn_last_line_is_cut_back_to_the_last_whole_one(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"a": 1}\n' * 20000 + b'{"a": 2')
    with Journal(path) as out:
        out.append({"a": 3})
    assert path.read_bytes().endswith(b'{"a": 1}\n{"a": 3}\n') and path.read_bytes().count(b"\n") == 20001


def test_timeout_bounds_the_whole_request_not_each_read():
    with FakeServer() as server:
        server.script.extend(["drip"])

        async def go():
            backend = OpenAICompatible("fake", server.url, timeout=1.0, max_retries=0)
            try:
                started = time.monotonic()
                return await backend.generate(Request("t/1/0", "calm-river", 4)), time.monotonic() - started
            finally:
                await backend.aclose()

        completion, took = asyncio.run(go())
    assert completion.failure == "error" and "no whole answer within --timeout 1 s" in completion.error
    assert took < 2.5


def test_a_finished_run_resumes_on_a_cold_cache(trained_tokenizer_dir, tmp_path, monkeypatch):
    """Prompts are rebuilt in several threads at once; each builds the token-count cache it lacks."""
    out = tmp_path / "run"
    with FakeServer() as server:
        server.script.extend(["500"] * 8)
        assert main(args(server, trained_tokenizer_dir, out, "--concurrency", "1")) == 4
        monkeypatch.setenv("RULER_CACHE_DIR", str(tmp_path / "cold-cache"))
        assert main(args(server, trained_tokenizer_dir, out, "--retry-errors", "--concurrency", "4")) == 0
    assert {r["validity"] for r in journal(out)[-8:]} == {"ok"}


@pytest.mark.parametrize("damaged,message", [("manifest.json", "manifest.json is not valid JSON"),
                                             ("probes.json", "probes.json is damaged; delete it")])
def test_damaged_state_is_one_line_naming_the_file(trained_tokenizer_dir, tmp_path, capsys, monkeypatch, damaged,
                                                   message):
    """A file cut in half (a copy interrupted, an editor): the run names it and what to do, exit 2. The server
    does not say its window, so the run reads the probes kept."""
    out = tmp_path / "run"
    monkeypatch.setenv("RULER_CACHE_DIR", str(tmp_path / "cache"))
    with FakeServer(window=None) as server:
        assert main(args(server, trained_tokenizer_dir, out, samples="1")) == 0
        path = out / "manifest.json" if damaged == "manifest.json" else tmp_path / "cache" / "probes.json"
        path.write_text('{"runs": {"a": [1, 2')
        capsys.readouterr()
        assert main(args(server, trained_tokenizer_dir, out, samples="1")) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ruler: error")]
    assert len(errors) == 1 and message in errors[0]
