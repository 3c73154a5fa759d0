"""A loopback OpenAI-compatible server for injecting faults: each request takes the next scripted behaviour
(default: answer), so tests can produce what real servers rarely do on cue (429s, resets, malformed JSON ...).

Its answers read the needle for the queried key out of a NIAH prompt, like a model that always finds it; it is a
test double for faults and resume, not a stand-in for a model (the llama.cpp tests use a real one)."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NEEDLE = re.compile(r"One of the special magic \w+ for (\S+) is: (\S+)\.")
QUERY = re.compile(r"special magic \w+ for (.+?) mentioned in the provided text")


def answer(prompt: str) -> str:
    """The values of the queried keys, read off the prompt."""
    match = QUERY.search(prompt.split("\n")[-1]) or QUERY.search(prompt)
    keys = re.split(r", and |, ", match.group(1)) if match else []
    values = [value for key, value in NEEDLE.findall(prompt) if key in keys]
    return " " + ", ".join(values) + "." if values else " I do not know."


class FakeServer:
    def __init__(self, window: int | None = 131072, delay: float = 0.0) -> None:
        self.script: deque[str] = deque()
        self.window, self.delay = window, delay
        self.received: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                entry = {"id": "fake", "object": "model"}
                if server.window:
                    entry["max_model_len"] = server.window
                self._json(200, {"object": "list", "data": [entry]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.received.append({"path": self.path, **body})
                    behaviour = server.script.popleft() if server.script else "ok"
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
        if behaviour == "ok" and self.delay:
            time.sleep(self.delay)
        if behaviour == "slow":
            time.sleep(5)
            return handler._json(200, self.reply(answer(prompt), "stop", chat))
        if behaviour == "reset":
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            handler.connection.close()
            return None
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
        text, finish = {"length": (" 12", "length"), "empty": ("", "stop"),
                        "filter": ("", "content_filter")}.get(behaviour, (answer(prompt), "stop"))
        return handler._json(200, self.reply(text, finish, chat))

    @staticmethod
    def reply(text: str, finish: str, chat: bool) -> dict:
        choice = {"index": 0, "finish_reason": finish}
        choice.update({"message": {"role": "assistant", "content": text}} if chat else {"text": text})
        return {"id": "x", "choices": [choice], "usage": {"prompt_tokens": 10, "completion_tokens": 3}}

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
