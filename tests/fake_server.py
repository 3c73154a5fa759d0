"""A loopback OpenAI-compatible server for injecting faults: each request takes the next scripted behaviour
(default: answer), so tests can produce what real servers rarely do on cue (429s, resets, malformed JSON ...).

Its answers read the needle for the queried key out of a NIAH prompt, like a model that always finds it; it is a
test double for faults and resume, not a stand-in for a model (the llama.cpp tests use a real one)."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NEEDLE = re.compile(r"One of the special magic \w+ for (\S+) is: (\S+)\.")
QUERY = re.compile(r"special magic \w+ for (.+?) mentioned in the provided text")
#: what reasoning models send back: text (with the answer at {answer}), finish reason, fields beside the text
THINKING = {
    "think": ("<think>The needle is near the middle.</think>{answer}", "stop", {}),
    "opened-think": ("The template opened the thinking.\n</think>\n{answer}", "stop", {}),
    "harmony": ("<|channel|>analysis<|message|>Find the key.<|end|><|start|>assistant<|channel|>final<|message|>"
                "{answer}<|return|>", "stop", {}),
    "reasoning-field": ("{answer}", "stop", {"reasoning": "I read every line.", "reasoning_tokens": 5}),
    "think-length": ("<think>One line after another, and", "length", {}),
    "reasoning-length": ("", "length", {"reasoning": "Still reading", "reasoning_tokens": 64}),
}


def answer(prompt: str) -> str:
    """The values of the queried keys, read off the prompt."""
    match = QUERY.search(prompt.split("\n")[-1]) or QUERY.search(prompt)
    keys = re.split(r", and |, ", match.group(1)) if match else []
    values = [value for key, value in NEEDLE.findall(prompt) if key in keys]
    return " " + ", ".join(values) + "." if values else " I do not know."


class Context:
    """How a server serves long prompts, in tokens of a real tokenizer: it counts every prompt (reported as
    `usage.prompt_tokens`, after any cut, as Ollama does) and keeps `keep` tokens of a longer one: the last ones
    (`side="start"` dropped: Ollama, llama.cpp slots), both ends (`"middle"` dropped: OpenRouter's middle-out), or
    none (`"empty"`: LM Studio's empty 200). With `refuse`, a request whose prompt and answer budget exceed `keep`
    is refused instead (400, as vLLM does), with the window stated in the message or not."""

    def __init__(self, tokenizer, keep: int | None = None, side: str = "start", refuse: bool = False,
                 state_window: bool = True, report: bool = True) -> None:
        self.tokenizer, self.keep, self.side = tokenizer, keep, side
        self.refuse, self.state_window, self.report = refuse, state_window, report

    def serve(self, prompt: str, max_tokens: int) -> tuple[str, int, str | None]:
        """The prompt the model sees, its token count, and the refusal message when it is refused."""
        starts = list(self.tokenizer.token_starts(prompt))
        added = self.tokenizer.added_tokens
        total = len(starts) + added
        if self.keep is None or total + (max_tokens if self.refuse else 0) <= self.keep:
            return prompt, total, None
        if self.refuse:
            said = f"This model's maximum context length is {self.keep} tokens" if self.state_window else \
                "the prompt is too long for the context"
            return "", total, f"{said}. However, you requested {total} tokens."
        keep = self.keep - added
        if self.side == "empty":
            return "", self.keep, None
        if self.side == "middle":
            head, tail = keep // 2, keep - keep // 2
            return prompt[:starts[head]] + prompt[starts[len(starts) - tail]:], self.keep, None
        return prompt[starts[len(starts) - keep]:], self.keep, None


class FakeServer:
    def __init__(self, window: int | None = 131072, delay: float = 0.0, first_token_delay: float = 0.0,
                 pricing: dict[str, str] | None = None, context: Context | None = None,
                 routes: dict[str, dict] | None = None, models: list[str | dict] | None = None,
                 timings: bool = False, serial: bool = False,
                 on_request: Callable[[dict], None] = lambda body: None) -> None:
        self.script: deque[str] = deque()
        #: told of every completion request as it arrives, before it is answered
        self.on_request = on_request
        self.window, self.delay, self.first_token_delay, self.pricing = window, delay, first_token_delay, pricing
        #: how long prompts are served (None: whole, uncounted); other routes (`GET /props`, `POST /api/show` ...)
        #: and the model ids /v1/models lists
        self.context, self.routes, self.models = context, routes or {}, models or ["fake"]
        #: answer with llama-server's own `timings` (prefill 120 ms, decode 30 ms)
        self.timings = timings
        #: serve one completion at a time, the others queueing (llama-cpp-python, a one-slot llama-server)
        self.serial = threading.Lock() if serial else contextlib.nullcontext()
        self.received: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.partition("?")[0]
                if f"GET {path}" in server.routes:
                    return self._json(200, server.routes[f"GET {path}"])
                if path != "/v1/models":
                    return self._json(404, {"error": {"message": "not found"}})
                entries = []
                for model in server.models:
                    entry = {"id": model, "object": "model"} if isinstance(model, str) else dict(model)
                    if server.window:
                        entry["max_model_len"] = server.window
                    if server.pricing:
                        entry["pricing"] = server.pricing
                    entries.append(entry)
                self._json(200, {"object": "list", "data": entries})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                path, _, query = self.path.partition("?")
                if f"POST {path}" in server.routes:
                    return self._json(200, server.routes[f"POST {path}"])
                if path not in ("/v1/completions", "/v1/chat/completions"):
                    return self._json(404, {"error": {"message": "not found"}})
                with server.lock:
                    server.received.append({"path": path, "query": query,
                                            "authorization": self.headers.get("Authorization"), **body})
                    behaviour = server.script.popleft() if server.script else "ok"
                    server.on_request(body)
                with server.serial:
                    server.act(self, behaviour, body)

            def _json(self, status: int, payload: dict, headers: dict | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self.handler = Handler
        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address) -> None:
                pass  # a client that hung up (killed, interrupted) is part of the tests

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def act(self, handler, behaviour: str, body: dict) -> None:
        chat = "messages" in body
        prompt = body["messages"][-1]["content"] if chat else body.get("prompt", "")
        counted = None
        if self.context is not None:
            prompt, counted, refusal = self.context.serve(prompt, body.get("max_tokens") or 0)
            if refusal:
                return handler._json(400, {"error": {"message": refusal, "type": "invalid_request_error"}})
            counted = counted if self.context.report else None
        if behaviour == "ok" and self.delay:
            time.sleep(self.delay)
        if behaviour == "slow":
            time.sleep(5)
            return handler._json(200, self.reply(answer(prompt), "stop", chat))
        if behaviour == "drip":  # a byte every 0.2 s for 3 s: each read is quick, the whole answer is not
            data = json.dumps(self.reply(answer(prompt), "stop", chat)).encode()
            handler.send_response(200)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            for byte in data[:15]:
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                time.sleep(0.2)
            return handler.wfile.write(data[15:])
        if behaviour == "die":
            threading.Thread(target=self.__exit__, daemon=True).start()
            behaviour = "reset"
        if behaviour == "reset":
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            handler.connection.close()
            return None
        if behaviour == "stream-silent":  # llama-cpp-python on a streamed prompt over its window: headers, then gone
            handler.send_response(200)
            handler.send_header("Content-Type", "text/event-stream")
            handler.end_headers()
            return None
        if behaviour == "bad-gzip":  # says gzip, is not: the client cannot decode the body
            handler.send_response(200)
            handler.send_header("Content-Encoding", "gzip")
            handler.send_header("Content-Length", "8")
            handler.end_headers()
            return handler.wfile.write(b"not gzip")
        if behaviour == "malformed":
            data = b'{"choices": [{"te'
            handler.send_response(200)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            return handler.wfile.write(data)
        statuses = {"429": (429, {"Retry-After": "0"}), "500": (500, {}), "503": (503, {}), "401": (401, {})}
        if behaviour in statuses:
            status, headers = statuses[behaviour]
            return handler._json(status, {"error": {"message": f"injected {behaviour}"}}, headers)
        if behaviour == "overflow":
            return handler._json(400, {"error": {"message": "This model's maximum context length is 4096 tokens. "
                                                            "However, you requested 9000 tokens."}})
        if behaviour in THINKING:
            text, finish, extra = THINKING[behaviour]
            reply = self.reply(text.format(answer=answer(prompt)), finish, chat, **extra)
        else:
            text, finish = {"length": (" 12", "length"), "empty": ("", "stop"),
                            "filter": ("", "content_filter")}.get(behaviour, (answer(prompt), "stop"))
            reply = self.reply(text if prompt else "", finish, chat)
        if counted is not None:
            reply["usage"]["prompt_tokens"] = counted
        if self.timings:
            reply["timings"] = {"prompt_n": counted or 0, "prompt_ms": 120.0, "predicted_n": 3, "predicted_ms": 30.0}
        if body.get("stream"):
            return self.stream(handler, reply, chat, behaviour)
        return handler._json(200, reply)

    def stream(self, handler, reply: dict, chat: bool, behaviour: str) -> None:
        """The reply as server-sent events, a few characters a chunk, the first after `first_token_delay`; usage
        last when asked for. `stream-reset` hangs up halfway, `stream-error` sends an error event, `stream-cut` ends
        with [DONE] halfway and no finish reason (llama-cpp-python interrupting a stream)."""
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.end_headers()
        choice = reply["choices"][0]
        message = choice.get("message", choice)
        thinking, text = message.get("reasoning_content") or "", message.get("content", choice.get("text")) or ""
        time.sleep(self.first_token_delay)

        def send(payload: dict | str) -> None:
            handler.wfile.write(f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n".encode())
            handler.wfile.flush()

        pieces = [("reasoning_content", thinking[i:i + 4]) for i in range(0, len(thinking), 4)]
        pieces += [("content" if chat else "text", text[i:i + 4]) for i in range(0, len(text), 4)]
        for number, (field, piece) in enumerate(pieces):
            if behaviour == "stream-reset" and number == len(pieces) // 2:
                handler.connection.close()
                return
            if behaviour == "stream-error" and number == 1:
                return send({"error": {"message": "injected stream error"}})
            if behaviour == "stream-cut" and number == len(pieces) // 2:
                return send("[DONE]")
            send({"choices": [{"index": 0, "delta": {field: piece}} if chat else {"index": 0, field: piece}]})
            time.sleep(0.002)
        send({"choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]} if chat else
                          {"index": 0, "text": "", "finish_reason": choice["finish_reason"]}]})
        send({"choices": [], "usage": reply["usage"]})
        send("[DONE]")

    @staticmethod
    def reply(text: str, finish: str, chat: bool, reasoning: str | None = None,
              reasoning_tokens: int | None = None) -> dict:
        choice = {"index": 0, "finish_reason": finish}
        choice.update({"message": {"role": "assistant", "content": text}} if chat else {"text": text})
        if reasoning is not None:
            (choice["message"] if chat else choice)["reasoning_content"] = reasoning
        usage = {"completion_tokens": 3}
        if reasoning_tokens is not None:
            usage["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
        return {"id": "x", "choices": [choice], "usage": usage}

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
