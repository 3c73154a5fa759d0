"""`ruler run` against a real OpenAI-compatible server: llama.cpp (llama-cpp-python) serving SmolLM2-135M-Instruct
on loopback, through both endpoints. Whatever the model answers is scored; nothing here is faked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ruler.cli import main


def predictions(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("mode,endpoint_usage", [("prefill", True), ("chat", True)])
def test_a_real_server_answers_every_request(llama_server, tmp_path, capsys, mode: str, endpoint_usage: bool):
    out = tmp_path / mode
    code = main(["run", "--model", "smollm2", "--base-url", llama_server, "--tokenizer", "smollm2", "--lengths",
                 "1k", "--tasks", "niah_single_1", "--samples", "2", "--mode", mode, "--concurrency", "1",
                 "--out", str(out)])
    assert code == 0
    records = predictions(out)
    assert len(records) == 2
    assert all(r["validity"] in {"ok", "truncated", "empty"} for r in records), records
    assert all(r["usage"]["prompt_tokens"] > 800 and r["latency_s"] > 0 for r in records)
    assert "niah_single_1" in capsys.readouterr().out


def run_one(server: str, out: Path, *extra: str, tokenizer: str = "smollm2") -> int:
    return main(["run", "--model", "smollm2", "--base-url", server, "--tokenizer", tokenizer, "--lengths", "1k",
                 "--tasks", "niah_single_1", "--samples", "1", "--concurrency", "1", "--extra-body",
                 '{"repeat_penalty": 1.0}', "--out", str(out), *extra])


def test_a_streamed_answer_from_a_real_server_times_its_first_token(llama_server, tmp_path):
    assert run_one(llama_server, tmp_path / "stream", "--stream") == 0
    record, = predictions(tmp_path / "stream")
    assert record["validity"] in {"ok", "truncated", "empty"} and record["prediction"]
    assert 0 < record["timings"]["ttft_s"] < record["latency_s"]
    row, = json.loads((tmp_path / "stream" / "report" / "results.json").read_text())["telemetry"]
    assert row["ttft_p50"] == pytest.approx(record["timings"]["ttft_s"])


def test_the_right_tokenizer_counts_what_the_server_counts(llama_server, tmp_path, capsys):
    assert run_one(llama_server, tmp_path / "right") == 0
    record, = predictions(tmp_path / "right")
    assert record["usage"]["prompt_tokens"] == record["prompt_tokens"]
    assert "warning" not in capsys.readouterr().out


def test_a_wrong_tokenizer_is_caught_by_the_servers_counts(llama_server, trained_tokenizer_dir, tmp_path, capsys):
    assert run_one(llama_server, tmp_path / "wrong", tokenizer=str(trained_tokenizer_dir)) == 0
    warning = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("warning"))
    assert "at 1k the server counted" in warning and "wrong --tokenizer or chat template" in warning


def test_a_dry_run_estimate_matches_the_tokens_the_server_then_counts(llama_server, tmp_path, capsys):
    out = tmp_path / "estimate"
    assert run_one(llama_server, out, "--dry-run") == 0
    assert not (out / "predictions.jsonl").exists()
    total = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("total")).split()
    estimated = int(total[2].replace(",", ""))
    assert run_one(llama_server, out) == 0
    sent = sum(record["usage"]["prompt_tokens"] for record in predictions(out))
    assert abs(sent - estimated) <= 0.01 * estimated


def test_the_servers_tokenizer_sizes_prompts_exactly(llama_server, tmp_path):
    out = tmp_path / "server-sized"
    assert main(["run", "--model", "smollm2", "--base-url", llama_server, "--tokenizer", "server", "--chat-template",
                 "none", "--lengths", "1k", "--tasks", "niah_single_1,niah_single_2", "--samples", "1",
                 "--concurrency", "1", "--extra-body", '{"repeat_penalty": 1.0}', "--out", str(out)]) == 0
    records = predictions(out)
    assert len(records) == 2
    for record in records:  # 1k less the 128-token budget, filled to within 8 tokens (short windows)
        assert 896 - 8 <= record["usage"]["prompt_tokens"] == record["prompt_tokens"] <= 896
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tokenizer"].startswith("server:http://127.0.0.1:")


def test_streams_a_real_server_cuts_are_retried_one_at_a_time_and_match_unstreamed_answers(llama_server, tmp_path,
                                                                                         capsys):
    """llama-cpp-python ends a running stream with [DONE] and no finish reason whenever another request waits
    (`interrupt_requests`, on by default): those streams are retried, and the server then gets one at a time."""
    def answers(out: Path, *extra: str) -> dict[str, tuple[str, str]]:
        assert main(["run", "--model", "smollm2", "--base-url", llama_server, "--tokenizer", "smollm2", "--lengths",
                     "512", "--tasks", "niah_single_1", "--samples", "6", "--concurrency", "3", "--extra-body",
                     '{"repeat_penalty": 1.0}', "--out", str(out), *extra]) == 0  # 3 sent alone, 3 together
        return {r["id"]: (r["prediction"], r["finish_reason"]) for r in predictions(out)}

    plain = answers(tmp_path / "plain")
    capsys.readouterr()
    streamed = answers(tmp_path / "streamed", "--stream")
    assert "cut 2 streams short when other requests arrived" in capsys.readouterr().err
    assert streamed == plain and all(finish for _, finish in streamed.values())


def test_a_streamed_prompt_past_a_real_servers_window_is_an_overflow(llama_server, tmp_path):
    """llama-cpp-python fails a stream whose prompt exceeds its window after the headers, saying nothing; the
    same request unstreamed says why."""
    out = tmp_path / "beyond"
    main(["run", "--model", "smollm2", "--base-url", llama_server, "--tokenizer", "smollm2", "--lengths", "16k",
          "--tasks", "niah_single_1", "--samples", "1", "--stream", "--out", str(out)])
    record, = predictions(out)
    # the stream, the same unstreamed, and that once more on a new connection when it met the one the server
    # had just closed: all within one attempt of the retry budget
    assert record["validity"] == "overflow" and record["attempts"] in (2, 3)
    assert "maximum context length is 8192 tokens" in record["error"]
