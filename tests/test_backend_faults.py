"""The OpenAI-compatible backend against injected faults: each ends in the right validity, retried only when a
retry can help, and never turns a failure into an answer."""

from __future__ import annotations

import asyncio

import pytest
from fake_server import FakeServer

from ruler.backends.base import Request
from ruler.backends.openai_compat import OpenAICompatible
from ruler.endpoints import api_base
from ruler.scoring.validity import classify

PROMPT = "One of the special magic numbers for calm-river is: 1234567.\nWhat is the special magic number for " \
         "calm-river mentioned in the provided text? The special magic number for calm-river mentioned in the " \
         "provided text is"


def complete(server: FakeServer, script: list[str], chat: bool = False, **settings):
    server.script.extend(script)
    server.received.clear()

    async def go():
        backend = OpenAICompatible("fake", server.url, backoff=0.01, max_backoff=0.05, **settings)
        try:
            return await backend.generate(Request("t/1/0", PROMPT, 16, chat=chat))
        finally:
            await backend.aclose()

    return asyncio.run(go())


@pytest.fixture(scope="module")
def server():
    with FakeServer() as running:
        yield running


@pytest.mark.parametrize("fault", ["429", "500", "503", "reset", "malformed", "bad-gzip"])
def test_transient_faults_are_retried_until_the_answer(server, fault: str) -> None:
    completion = complete(server, [fault, fault])
    assert classify(completion)[0] == "ok" and "1234567" in completion.text
    assert len(server.received) == 3


def test_a_timeout_is_retried(server) -> None:
    completion = complete(server, ["slow"], timeout=0.5)
    assert classify(completion)[0] == "ok" and len(server.received) == 2


@pytest.mark.parametrize("fault", ["429", "503", "reset", "malformed"])
def test_exhausted_retries_end_in_error_with_the_last_message(server, fault: str) -> None:
    # a reset is sent again at once on a new connection (a kept-alive one may just have been closed): twice each
    sends = 2 if fault == "reset" else 1
    completion = complete(server, [fault] * 3 * sends, max_retries=2)
    assert classify(completion)[0] == "error" and "after 3 attempts" in completion.error
    assert len(server.received) == 3 * sends


def test_a_refused_context_length_is_overflow_and_not_retried(server) -> None:
    completion = complete(server, ["overflow"])
    assert classify(completion)[0] == "overflow" and "maximum context length" in completion.error
    assert len(server.received) == 1


def test_a_client_error_is_not_retried(server) -> None:
    completion = complete(server, ["401"])
    assert classify(completion)[0] == "error" and "HTTP 401" in completion.error and len(server.received) == 1


@pytest.mark.parametrize("fault,validity", [("length", "truncated"), ("empty", "empty"), ("filter", "refused")])
def test_answers_that_are_not_answers_are_named(server, fault: str, validity: str) -> None:
    assert classify(complete(server, [fault]))[0] == validity


def test_prefill_uses_completions_and_chat_uses_chat_completions(server) -> None:
    complete(server, [])
    assert server.received[-1]["path"] == "/v1/completions" and server.received[-1]["prompt"] == PROMPT
    completion = complete(server, [], chat=True)
    assert server.received[-1]["path"] == "/v1/chat/completions" and "1234567" in completion.text
    assert server.received[-1]["temperature"] == 0 and server.received[-1]["max_tokens"] == 16


def test_usage_and_latency_are_recorded(server) -> None:
    completion = complete(server, [])
    assert completion.usage == {"completion_tokens": 3} and completion.latency_s > 0


def test_window_comes_from_the_model_listing(server) -> None:
    async def go():
        backend = OpenAICompatible("fake", server.url)
        try:
            return await backend.context()
        finally:
            await backend.aclose()

    context = asyncio.run(go())
    assert context.served == context.window == 131072 and context.source == "/v1/models: max_model_len"


def test_base_urls_are_normalised_to_the_v1_root() -> None:
    assert api_base("http://h:1") == api_base("http://h:1/") == api_base("http://h:1/v1/") == "http://h:1/v1"


def test_the_recorded_url_carries_no_credentials() -> None:
    backend = OpenAICompatible("m", "https://user:secret@host:8443/v1?key=secret")
    assert backend.describe()["base_url"] == "https://host:8443/v1"
    asyncio.run(backend.aclose())


def test_streaming_times_the_first_token_and_keeps_the_usage() -> None:
    with FakeServer(first_token_delay=0.3) as slow_start:
        completion = complete(slow_start, [], stream=True)
        body = slow_start.received[-1]
    assert classify(completion)[0] == "ok" and "1234567" in completion.text
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert 0.3 <= completion.timings["ttft_s"] <= completion.latency_s and completion.timings["decode_s"] > 0
    assert completion.usage == {"completion_tokens": 3}


def test_a_streamed_chat_answer_keeps_its_thinking_apart(server) -> None:
    completion = complete(server, ["reasoning-field"], chat=True, stream=True)
    assert completion.reasoning == "I read every line." and completion.text.strip() == "1234567."


@pytest.mark.parametrize("fault", ["stream-reset", "stream-error"])
def test_a_stream_broken_halfway_is_retried(server, fault: str) -> None:
    completion = complete(server, [fault], stream=True)
    assert classify(completion)[0] == "ok" and completion.text.strip() == "1234567."
    assert len(server.received) == 2


@pytest.mark.parametrize("then,validity", [("overflow", "overflow"), ("ok", "ok")])
def test_a_stream_that_closes_before_its_first_event_is_asked_again_unstreamed(server, then: str,
                                                                               validity: str) -> None:
    """llama-cpp-python answers a streamed prompt longer than its window with headers and nothing else: asked
    again without streaming, it says why (an overflow, never an error after every retry), or answers."""
    completion = complete(server, ["stream-silent", then], stream=True, max_retries=0)
    assert classify(completion)[0] == validity and completion.attempts == 2
    assert [sent["stream"] for sent in server.received] == [True, False]
    assert "stream_options" not in server.received[1]
