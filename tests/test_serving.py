"""Verdicts that hold on the servers people use: loopback servers that serve long prompts the way Ollama, LM
Studio, OpenRouter and llama-server do (cut silently, shrink the context, split it among slots), counted with a real
tokenizer. The server's behaviour is never blamed on the model, and a claim never passes on missing answers."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import pytest
from fake_server import Context, FakeServer

from ruler.backends.base import Request
from ruler.backends.openai_compat import OpenAICompatible
from ruler.cli import main
from ruler.scoring.validity import classify


def run(server: FakeServer, tokenizer: Path, out: Path, lengths: str, *extra: str, command: str = "run",
        tasks: str = "niah_single_1", samples: str = "4") -> int:
    length_option = ["--claimed", lengths] if command == "validate" else ["--lengths", lengths]
    return main([command, "--model", "fake", "--base-url", server.url, "--tokenizer", str(tokenizer), *length_option,
                 "--tasks", tasks, "--samples", samples, "--max-retries", "0", "--out", str(out), *extra])


def journal(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


def results(out: Path) -> dict:
    return json.loads((out / "report" / "results.json").read_text())


def test_a_server_keeping_the_last_tokens_is_named_and_its_cuts_are_not_scored(trained, trained_tokenizer_dir,
                                                                               tmp_path, capsys):
    with FakeServer(window=None, context=Context(trained, keep=3000)) as server:
        assert run(server, trained_tokenizer_dir, tmp_path / "run", "1k,2k,4k,8k") == 0
    printed = capsys.readouterr().out
    verdict = printed.splitlines()[0]
    assert "effective 2k" in verdict and "not served whole: 4k (4 cut), 8k (4 cut)" in verdict
    assert "first failing 4k" in verdict and "largest accepted 2k" in verdict
    assert "the server silently cut prompts to at most 3,000 tokens at 4k (4), 8k (4); it kept the end and " \
           "dropped the beginning" in printed and "OLLAMA_CONTEXT_LENGTH" in printed
    assert "wrong --tokenizer" not in printed  # a cut is not a tokenizer's drift
    found = results(tmp_path / "run")
    assert found["validity"] == {"ok": 8, "cut": 8}
    assert {cell["length"]: cell["n"] for cell in found["cells"]} == {1024: 4, 2048: 4, 4096: 0, 8192: 0}


def test_a_cut_at_every_length_is_still_a_cut(trained, trained_tokenizer_dir, tmp_path, capsys):
    with FakeServer(window=None, context=Context(trained, keep=1500)) as server:
        run(server, trained_tokenizer_dir, tmp_path / "run", "2k,4k")
    assert "not served whole: 2k (4 cut), 4k (4 cut)" in capsys.readouterr().out


def test_a_tokenizer_that_counts_differently_is_drift_not_a_cut(trained_tokenizer_dir, tmp_path, capsys):
    from ruler.tokenizers import load_tokenizer

    with FakeServer(window=None, context=Context(load_tokenizer("smollm2"))) as server:
        assert run(server, trained_tokenizer_dir, tmp_path / "run", "1k,2k") == 0
    printed = capsys.readouterr().out
    assert "cut" not in printed.splitlines()[0] and "wrong --tokenizer or chat template" in printed


def test_a_server_cutting_the_middle_is_named(trained, trained_tokenizer_dir, tmp_path, capsys):
    with FakeServer(window=None, context=Context(trained, keep=3000, side="middle")) as server:
        run(server, trained_tokenizer_dir, tmp_path / "run", "1k,4k,8k", samples="6")
    assert "it kept both ends and dropped the middle" in capsys.readouterr().out


def test_validate_fails_a_claim_the_server_cuts_and_names_the_cut(trained, trained_tokenizer_dir, tmp_path, capsys):
    with FakeServer(window=None, context=Context(trained, keep=5000)) as server:
        assert run(server, trained_tokenizer_dir, tmp_path / "run", "8k", command="validate") == 1
    printed = capsys.readouterr().out
    last = printed.strip().splitlines()[-1]
    assert last.startswith("the claim does not hold: claimed 8k") and "not served whole: 8k (4 cut)" in last
    assert "warning: the server silently cut prompts to at most 5,000 tokens at 8k" in printed


LM_STUDIO = {"GET /api/v0/models/fake": {"id": "fake", "object": "model", "type": "llm", "state": "loaded",
                                         "max_context_length": 32768, "loaded_context_length": 4096}}


def test_lm_studio_s_shorter_loaded_context_is_said_and_its_empty_answers_are_cuts(trained, trained_tokenizer_dir,
                                                                                  tmp_path, capsys):
    with FakeServer(window=None, routes=LM_STUDIO, context=Context(trained, keep=4096, side="empty",
                                                                   report=False)) as server:
        assert run(server, trained_tokenizer_dir, tmp_path / "run", "4k,8k") == 0
        said = capsys.readouterr()
        assert "the server serves 4,096 tokens a request, the model was trained for 32,768 (LM Studio " \
               "/api/v0/models (loaded)); to serve the whole window, load the model with a context length of 32768" \
               in said.err
        assert "skipping 8k: beyond the 4,096-token window the server serves" in said.err
        assert run(server, trained_tokenizer_dir, tmp_path / "run", "4k,8k", "--force") == 0
    assert "not served whole: 8k (4 cut)" in capsys.readouterr().out
    assert Counter(r["validity"] for r in journal(tmp_path / "run")) == {"ok": 4, "empty": 4}  # journal: raw


LLAMA_SERVER = {"GET /props": {"default_generation_settings": {"n_ctx": 4096, "params": {}}, "total_slots": 4}}
OLLAMA = {"GET /api/version": {"version": "0.12.3"},
          "POST /api/show": {"model_info": {"general.architecture": "llama", "llama.context_length": 131072},
                             "parameters": f"{'num_ctx':<30} 2048\n{'stop':<30} \"<|eot_id|>\""}}


@pytest.mark.parametrize("routes,models,said", [
    (LLAMA_SERVER, [{"id": "fake", "meta": {"n_ctx_train": 131072}}],
     "the server serves 4,096 tokens a request, the model was trained for 131,072 (llama-server /props: n_ctx 4,096 a "
     "slot, 4 slots); to serve the whole window, start llama-server with -c 524288 (4 --parallel slots share -c), or "
     "--parallel 1 -c 131072"),
    (OLLAMA, ["fake"], "the server serves 2,048 tokens a request, the model was trained for 131,072 (Ollama "
                       "/api/show: num_ctx); to serve the whole window, set num_ctx to 131072: OLLAMA_CONTEXT_LENGTH"),
])
def test_the_probe_says_what_the_server_is_configured_to_serve(trained_tokenizer_dir, routes, models, said, capsys):
    with FakeServer(window=None, routes=routes, models=models) as server:
        assert main(["probe", "--model", "fake", "--base-url", server.url, "--tokenizer", str(trained_tokenizer_dir),
                     "--start", "1k", "--max", "2k"]) == 0
    assert said in capsys.readouterr().out


def test_the_probe_finds_the_largest_prompt_served_whole_and_says_the_server_truncates(trained, trained_tokenizer_dir,
                                                                                      tmp_path, capsys):
    with FakeServer(window=None, context=Context(trained, keep=3000)) as server:
        assert main(["probe", "--model", "fake", "--base-url", server.url, "--tokenizer", str(trained_tokenizer_dir),
                     "--start", "1k", "--max", "16k"]) == 0
        printed = capsys.readouterr().out
        assert "it TRUNCATES" in printed and "answered as 3,000 tokens" in printed
        served = int(printed.split("serves prompts of ")[1].split()[0].replace(",", ""))
        assert 3000 - 64 <= served <= 3000
        assert run(server, trained_tokenizer_dir, tmp_path / "run", "2k,4k") == 0
    assert "skipping 4k: beyond the probed window" in capsys.readouterr().err


def test_transient_failures_while_probing_are_retried_not_taken_for_refusals(trained_tokenizer_dir, tmp_path,
                                                                            capsys):
    with FakeServer(window=None) as server:
        server.script.extend(["500", "503", "429"])
        assert main(["probe", "--model", "fake", "--base-url", server.url, "--tokenizer", str(trained_tokenizer_dir),
                     "--start", "1k", "--max", "8k", "--timeout", "5"]) == 0
        assert "nothing up to 8,192 was refused or cut" in capsys.readouterr().out
        assert run(server, trained_tokenizer_dir, tmp_path / "run", "8k", samples="1") == 0
    assert "skipping" not in capsys.readouterr().err


def test_an_auth_error_while_probing_is_an_error_and_nothing_is_stored(trained_tokenizer_dir, tmp_path, capsys):
    with FakeServer(window=None) as server:
        server.script.extend(["401"])
        assert main(["probe", "--model", "fake", "--base-url", server.url, "--tokenizer", str(trained_tokenizer_dir),
                     "--start", "1k", "--max", "8k"]) == 2
        assert "HTTP 401" in capsys.readouterr().err
        assert run(server, trained_tokenizer_dir, tmp_path / "run", "8k", samples="1") == 0
    assert "skipping" not in capsys.readouterr().err


def test_a_probe_without_a_stated_window_skips_only_lengths_known_to_be_refused(trained, trained_tokenizer_dir,
                                                                               tmp_path, capsys):
    refusing = Context(trained, keep=4200, refuse=True, state_window=False)
    with FakeServer(window=None, context=refusing) as server:
        assert main(["probe", "--model", "fake", "--base-url", server.url, "--tokenizer", str(trained_tokenizer_dir),
                     "--start", "1k", "--max", "16k"]) == 0
        printed = capsys.readouterr().out
        refused = int(printed.split("it refused ")[1].split()[0].replace(",", ""))
        served = int(printed.split("serves prompts of ")[1].split()[0].replace(",", ""))
        assert served < 4200 <= refused and refused - served <= 64
        assert run(server, trained_tokenizer_dir, tmp_path / "run", f"4k,{refused},8k", samples="2") == 0
    said = capsys.readouterr()
    assert "skipping 8k: beyond the probed window" in said.err and str(refused) not in said.err
    sent = {(r["length"], r["validity"]) for r in journal(tmp_path / "run")}
    assert (4096, "ok") in sent and {length for length, _ in sent} == {4096, refused}  # the band's length is sent
    assert {validity for length, validity in sent if length == refused} <= {"ok", "overflow"}


def test_a_stream_ending_without_its_finish_reason_is_retried_never_scored():
    with FakeServer() as server:
        server.script.extend(["stream-cut"])

        async def go():
            backend = OpenAICompatible("fake", server.url, stream=True, backoff=0.01, max_backoff=0.05)
            try:
                return await backend.generate(Request("t/1/0", "What is the special magic number for calm-river "
                                                      "mentioned in the provided text?", 16))
            finally:
                await backend.aclose()

        completion = asyncio.run(go())
    assert classify(completion)[0] in {"ok", "empty"} and completion.finish_reason == "stop"
    assert completion.attempts == 2 and len(server.received) == 2


def test_a_stream_cut_on_every_attempt_ends_in_error_with_the_reason():
    with FakeServer() as server:
        server.script.extend(["stream-cut"] * 3)

        async def go():
            backend = OpenAICompatible("fake", server.url, stream=True, max_retries=2, backoff=0.01, max_backoff=0.05)
            try:
                return await backend.generate(Request("t/1/0", "calm-river", 16))
            finally:
                await backend.aclose()

        completion = asyncio.run(go())
    assert classify(completion)[0] == "error" and "without a finish reason" in completion.error


def test_another_models_window_and_prices_are_never_used(trained_tokenizer_dir, tmp_path, capsys):
    with FakeServer(window=6000, models=["other-model", "third"], pricing={"prompt": "1", "completion": "1"}) as server:
        assert run(server, trained_tokenizer_dir, tmp_path / "run", "8k", samples="1") == 0
    err = capsys.readouterr().err
    assert "'fake' is not among the models" in err and "(other-model, third)" in err and "skipping" not in err


def test_a_model_listed_under_its_organisation_is_matched(trained_tokenizer_dir, tmp_path, capsys):
    with FakeServer(window=6000, models=["other-model", "org/fake"]) as server:
        run(server, trained_tokenizer_dir, tmp_path / "run", "4k,8k", samples="1")
    assert "skipping 8k: beyond the 6,000-token window" in capsys.readouterr().err


def test_openrouter_requests_ask_for_no_middle_out():
    backend = OpenAICompatible("openai/gpt-oss-20b", "https://openrouter.ai/api/v1")
    _, body = backend._body(Request("t/1/0", "hello", 4))
    assert body["transforms"] == []
    _, elsewhere = OpenAICompatible("m", "http://127.0.0.1:1/v1")._body(Request("t/1/0", "hello", 4))
    assert "transforms" not in elsewhere
    asyncio.run(backend.aclose())


def test_a_length_with_a_task_in_error_is_incomplete_and_never_passes(trained_tokenizer_dir, tmp_path, capsys):
    with FakeServer() as server:
        server.script.extend(["ok", "ok", "500", "500"])  # niah_single_1 at 8k fails; niah_single_2 answers
        code = run(server, trained_tokenizer_dir, tmp_path / "run", "4k,8k", "--concurrency", "1",
                   tasks="niah_single_1,niah_single_2", samples="2")
    assert code == 4
    said = capsys.readouterr()
    verdict = said.out.splitlines()[0]
    assert "effective >=4k (<4k not ruled out; 8k incomplete)" in verdict and "incomplete: 8k (2 error)" in verdict
    assert "--retry-errors" in said.err


def test_a_run_where_every_request_failed_exits_non_zero_and_says_how_to_retry(trained_tokenizer_dir, tmp_path,
                                                                               capsys):
    with FakeServer() as server:
        server.script.extend(["500"] * 4)
        assert run(server, trained_tokenizer_dir, tmp_path / "run", "4k", "--concurrency", "1") == 4
    said = capsys.readouterr()
    assert "has no answers to score (validity: error 4)" in said.out
    assert "4 requests ended in error (last: HTTP 500: injected 500" in said.err and "--retry-errors" in said.err


def test_validate_with_errors_below_the_claim_is_undecided(trained_tokenizer_dir, tmp_path, capsys):
    with FakeServer() as server:
        server.script.extend(["ok", "ok", "ok", "ok", "500"])
        code = run(server, trained_tokenizer_dir, tmp_path / "run", "8k", "--concurrency", "1", command="validate")
    assert code == 4
    assert "the claim is undecided" in capsys.readouterr().out


def test_latency_is_the_models_service_time_not_the_servers_queue(trained_tokenizer_dir, tmp_path):
    with FakeServer(delay=0.3, serial=True) as server:  # one request at a time: the rest wait in its queue
        assert run(server, trained_tokenizer_dir, tmp_path / "run", "4k", "--concurrency", "4", samples="9") == 0
    records = journal(tmp_path / "run")
    assert sum(r["alone"] for r in records) == 3
    queued = max(r["latency_s"] for r in records if not r["alone"])  # the last of four sent together waits 0.9 s
    row, = results(tmp_path / "run")["telemetry"]
    assert row["measured"] == "3 sent alone" and 0.3 <= row["latency_p50"] < queued / 2


def test_the_servers_own_timings_are_preferred(trained_tokenizer_dir, tmp_path):
    with FakeServer(timings=True) as server:
        assert run(server, trained_tokenizer_dir, tmp_path / "run", "4k", samples="2") == 0
    row, = results(tmp_path / "run")["telemetry"]
    assert row["measured"] == "server timings"
    assert row["ttft_p50"] == pytest.approx(0.12) and row["latency_p50"] == pytest.approx(0.15)


def test_latency_leaves_out_failed_attempts_and_backoff(trained_tokenizer_dir, tmp_path):
    with FakeServer(delay=0.1) as server:
        server.script.extend(["slow"])  # the first attempt times out after 1 s
        assert main(["run", "--model", "fake", "--base-url", server.url, "--tokenizer", str(trained_tokenizer_dir),
                     "--lengths", "4k", "--tasks", "niah_single_1", "--samples", "1", "--timeout", "1",
                     "--max-retries", "1", "--out", str(tmp_path / "run")]) == 0
    record, = journal(tmp_path / "run")
    assert record["attempts"] == 2 and record["latency_s"] < 0.5


def test_a_server_that_cuts_streams_when_others_arrive_gets_one_stream_at_a_time():
    notices: list[str] = []
    with FakeServer(delay=0.05) as server:
        server.script.extend(["stream-cut", "stream-cut"])

        async def go():
            backend = OpenAICompatible("fake", server.url, stream=True, backoff=0.01, max_backoff=0.05,
                                       notify=notices.append)
            try:
                return await asyncio.gather(*(backend.generate(Request(f"t/1/{i}", "calm-river", 16))
                                              for i in range(4)))
            finally:
                await backend.aclose()

        completions = asyncio.run(go())
    assert all(c.finish_reason == "stop" for c in completions) and len(server.received) == 6
    notice, = notices
    assert "cut 2 streams short when other requests arrived" in notice and "--interrupt_requests False" in notice


def test_an_old_probe_that_recorded_no_method_is_not_trusted(trained_tokenizer_dir, tmp_path, capsys):
    """Probes kept before they recorded how they were obtained took transient errors for refusals."""
    from ruler.probe import _store, probe_key

    with FakeServer(window=None) as server:
        old = {"accepted": 1975, "refused": 1976, "requests": 3, "reason": "HTTP 500: injected 500"}
        _store().write_text(json.dumps({probe_key(server.url, "fake"): old}))
        assert run(server, trained_tokenizer_dir, tmp_path / "run", "4k", samples="1") == 0
    assert "skipping" not in capsys.readouterr().err


def test_validate_says_when_only_the_intervals_keep_a_claim_from_holding(trained_tokenizer_dir, tmp_path, capsys):
    with FakeServer() as server:
        assert run(server, trained_tokenizer_dir, tmp_path / "run", "4k", samples="2", command="validate") == 1
    assert ("the claim is not shown to hold (no length fails for certain: at 4k the mean 100.0 [34.2, 100.0] "
            "straddles 85.6 with 2 samples per task; about --samples 23 would decide it if the mean held)"
            in capsys.readouterr().out)
