"""`ruler run` end to end against a loopback server: journaling, resume, refusal of a changed configuration,
retrying errors, the window check, kill -9 at any moment, and bad input as one line with exit code 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from fake_server import FakeServer

from ruler.cli import main


def run_args(server: FakeServer, tokenizer: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--model", "fake", "--base-url", server.url, "--tokenizer", str(tokenizer), "--lengths", "4k",
            "--tasks", "niah_single_1,niah_multikey_2", "--samples", "3", "--out", str(out), "--max-retries", "0",
            *extra]


def with_option(args: list[str], flag: str, value: str) -> list[str]:
    """`args` with `flag` set to `value`, replacing it where present."""
    if flag in args:
        return args[:args.index(flag) + 1] + [value] + args[args.index(flag) + 2:]
    return args + [flag, value]


def journal(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


@pytest.fixture()
def server():
    with FakeServer() as running:
        yield running


def test_a_run_journals_every_prediction_and_prints_the_summary(server, trained_tokenizer_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(run_args(server, trained_tokenizer_dir, out)) == 0
    records = journal(out)
    assert len(records) == 6 and {r["validity"] for r in records} == {"ok"}
    assert {"id", "task", "length", "index", "prediction", "validity", "finish_reason", "prompt_tokens", "usage",
            "latency_s"} <= set(records[0])
    printed = capsys.readouterr().out
    assert "niah_single_1" in printed and "100.0 (n=3)" in printed and "validity: ok 6" in printed
    assert printed.startswith("claimed 128k | largest accepted 4k | effective >=4k (<4k not ruled out) | first "
                              "failing none")  # six answers cannot rule out a lower score
    assert (out / "report" / "report.html").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run"] == {"backend": "openai", "model": "fake", "base_url": server.url, "window": 131072,
                               "served_window": 131072, "served_by": "/v1/models: max_model_len", "claimed": None,
                               "plan": {"tasks": ["niah_single_1", "niah_multikey_2"], "lengths": [4096],
                                        "samples": 3}}


def test_the_same_command_resumes_without_sending_anything_twice(server, trained_tokenizer_dir, tmp_path):
    out = tmp_path / "run"
    assert main(run_args(server, trained_tokenizer_dir, out)) == 0
    server.received.clear()
    assert main(run_args(server, trained_tokenizer_dir, out)) == 0
    assert server.received == [] and len(journal(out)) == 6


def test_a_changed_model_is_refused_unless_new(server, trained_tokenizer_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(run_args(server, trained_tokenizer_dir, out)) == 0
    changed = with_option(run_args(server, trained_tokenizer_dir, out), "--model", "other")
    assert main(changed) == 2
    assert "different model; use --new" in capsys.readouterr().err
    assert main(changed + ["--new"]) == 0
    assert len(journal(out)) == 6 and len(list(tmp_path.glob("run.old-*"))) == 1


def test_a_run_left_with_errors_says_so_and_retry_errors_resends_only_them(server, trained_tokenizer_dir, tmp_path,
                                                                          capsys):
    out = tmp_path / "run"
    server.script.extend(["500", "500"])
    assert main(run_args(server, trained_tokenizer_dir, out, "--concurrency", "1")) == 4
    assert Counter(r["validity"] for r in journal(out)) == {"ok": 4, "error": 2}
    said = capsys.readouterr()
    assert "incomplete: 4k (2 error)" in said.out
    assert "2 requests ended in error (last: HTTP 500: injected 500 (after 1 attempts)); run the same command with " \
           "--retry-errors" in said.err
    server.received.clear()
    assert main(run_args(server, trained_tokenizer_dir, out, "--retry-errors")) == 0
    assert len(server.received) == 2
    latest = {r["id"]: r["validity"] for r in journal(out)}
    assert set(latest.values()) == {"ok"} and len(latest) == 6


def test_lengths_beyond_the_window_are_skipped_unless_forced(trained_tokenizer_dir, tmp_path, capsys):
    with FakeServer(window=6000) as server:
        args = with_option(run_args(server, trained_tokenizer_dir, tmp_path / "run"), "--lengths", "4k,8k")
        assert main(args) == 0
        assert "skipping 8k: beyond the 6,000-token window the server serves" in capsys.readouterr().err
        assert {r["length"] for r in journal(tmp_path / "run")} == {4096}
        server.script.extend(["overflow"] * 6)
        assert main(args + ["--force"]) == 0
        assert Counter(r["validity"] for r in journal(tmp_path / "run")) == {"ok": 6, "overflow": 6}


def test_chat_mode_sends_the_user_message_with_the_prefix(server, trained_tokenizer_dir, tmp_path):
    assert main(run_args(server, trained_tokenizer_dir, tmp_path / "run", "--mode", "chat")) == 0
    sent = server.received[0]
    assert sent["path"] == "/v1/chat/completions"
    message = sent["messages"][0]["content"]
    assert message.endswith("mentioned in the provided text is") and "<|start|>" not in message
    assert {r["validity"] for r in journal(tmp_path / "run")} == {"ok"}


def test_extra_body_settings_reach_every_request_and_pin_the_run(server, trained_tokenizer_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(run_args(server, trained_tokenizer_dir, out, "--extra-body", '{"repeat_penalty": 1.0}')) == 0
    assert {sent["repeat_penalty"] for sent in server.received} == {1.0}
    assert json.loads((out / "manifest.json").read_text())["run"]["extra_body"] == {"repeat_penalty": 1.0}
    assert main(run_args(server, trained_tokenizer_dir, out, "--extra-body", '{"repeat_penalty": 1.1}')) == 2
    assert "different request body" in capsys.readouterr().err


@pytest.mark.parametrize("extra,message", [
    (["--backend", "vllmm"], "unknown backend 'vllmm'"),
    (["--base-url", "http://127.0.0.1:9/v1"], "cannot reach http://127.0.0.1:9/v1"),
    (["--api-key-env", "RULER_TEST_NO_SUCH_KEY"], "RULER_TEST_NO_SUCH_KEY is not set"),
    (["--lengths", "4x"], "bad length"),
    (["--tokenizer", "server"], "has no tokenize endpoint"),
    (["--extra-body", "[1]"], "must be a JSON object"),
    (["--extra-body", "{repeat"], "not JSON"),
])
def test_bad_run_input_is_one_line_and_exit_code_2(server, trained_tokenizer_dir, tmp_path, capsys, extra, message):
    args = with_option(run_args(server, trained_tokenizer_dir, tmp_path / "run"), *extra)
    assert main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines


def test_a_served_model_name_that_is_no_tokenizer_asks_for_one(server, tmp_path, capsys):
    assert main(["run", "--model", "llama3.1:8b", "--base-url", server.url, "--lengths", "4k",
                 "--out", str(tmp_path / "run")]) == 2
    assert "pass --tokenizer" in capsys.readouterr().err


def test_run_without_a_model_says_how_to_choose_one(capsys):
    assert main(["run", "--lengths", "4k"]) == 2
    assert "choose a model" in capsys.readouterr().err


def test_kill_9_at_any_point_loses_nothing_finished(trained_tokenizer_dir, tmp_path):
    out = tmp_path / "run"
    with FakeServer(delay=0.15) as server:
        args = [sys.executable, "-m", "ruler.cli",
                *with_option(run_args(server, trained_tokenizer_dir, out, "--concurrency", "2"), "--samples", "5")]
        for stop_after in (1, 4, 7):
            process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
            path = out / "predictions.jsonl"
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and (not path.exists() or
                                                   path.read_bytes().count(b"\n") < stop_after):
                time.sleep(0.02)
            process.send_signal(signal.SIGKILL)
            assert process.wait() == -signal.SIGKILL  # the kill landed mid-run, not after it ended
            assert stop_after <= path.read_bytes().count(b"\n") < 10
        assert subprocess.run(args, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}).returncode == 0
    ids = Counter(record["id"] for record in journal(out))
    assert len(ids) == 10 and set(ids.values()) == {1}


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(trained_tokenizer_dir, tmp_path):
    out = tmp_path / "run"
    with FakeServer(delay=0.3) as server:
        args = [sys.executable, "-m", "ruler.cli", *run_args(server, trained_tokenizer_dir, out, "--concurrency", "1")]
        # a shell runs background jobs with SIGINT ignored, and children inherit that: give the run the default
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env={**os.environ, "HF_HUB_OFFLINE": "1"},
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        path = out / "predictions.jsonl"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not path.exists() or path.read_bytes().count(b"\n") < 2):
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "Run the same command to resume" in stderr and "Traceback" not in stderr
    assert 2 <= len(journal(out)) < 6


def test_validate_climbs_a_ladder_to_the_claim_and_exits_by_the_verdict(server, trained_tokenizer_dir, tmp_path,
                                                                       capsys):
    from ruler.cli import ladder

    assert ladder(16384) == [4096, 8192, 16384] and ladder(100_000) == [4096, 8192, 16384, 32768, 65536, 100_000]
    args = ["validate", "--model", "fake", "--base-url", server.url, "--tokenizer", str(trained_tokenizer_dir),
            "--tasks", "niah_single_1", "--samples", "40", "--concurrency", "8", "--out", str(tmp_path / "ok")]
    assert main(args + ["--claimed", "8k"]) == 0
    assert "the claim holds: claimed 8k" in capsys.readouterr().out
    server.script.extend(["empty"] * 40)
    failing = with_option(args, "--out", str(tmp_path / "bad"))
    assert main(failing + ["--claimed", "8k", "--concurrency", "1"]) == 1
    assert "the claim does not hold" in capsys.readouterr().out


def test_progress_without_a_terminal_is_lines_and_a_resume_says_where_it_stands(trained_tokenizer_dir, tmp_path,
                                                                               capsys, monkeypatch):
    """Piped or in CI (no terminal), a line every EVERY seconds once sending lasts two, and one at the end."""
    import ruler.progress

    monkeypatch.setattr(ruler.progress, "EVERY", 0.5)
    out = tmp_path / "run"
    with FakeServer(delay=0.4) as server:
        server.script.extend(["ok", "500"])
        first = with_option(run_args(server, trained_tokenizer_dir, out, "--concurrency", "1"), "--samples", "2")
        assert main(first) == 4
        capsys.readouterr()
        assert main(with_option(first, "--samples", "5")) == 4
    err = capsys.readouterr().err.splitlines()
    assert ("ruler: resuming: 4 of 10 answered, 6 to send (1 in error stay so: --retry-errors sends them again)"
            in err)
    lines = [line for line in err if line.startswith("predict: ")]
    assert len(lines) >= 2 and len(set(lines)) == len(lines) and "\r" not in "".join(lines)
    assert lines[-1].startswith("predict: 10/10 (100%)") and lines[-1].endswith("ok 9, error 1")
