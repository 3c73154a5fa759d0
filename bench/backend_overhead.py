"""Backend overhead: how close `ruler run`'s request path gets to the ideal throughput of a server.

    python bench/backend_overhead.py [--latency 0.5] [--requests-per-slot 10] [--concurrency 1,8,64]

A loopback OpenAI-compatible server (a separate process, so its CPU is not counted) answers every request after a
fixed latency. The toolkit's real path sends the requests: OpenAICompatible backend, the runner's bounded
concurrency, and the append-only journal with an fsync per prediction. Prints, per concurrency: achieved / ideal
throughput (ideal = concurrency / latency) and the client's CPU time per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ruler.backends.base import Request  # noqa: E402
from ruler.backends.openai_compat import OpenAICompatible  # noqa: E402
from ruler.journal import Journal  # noqa: E402
from ruler.runner import predict  # noqa: E402
from ruler.types import Sample  # noqa: E402

REPLY = json.dumps({"choices": [{"text": " 1234567.", "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 4}}).encode()


def serve(port: int, latency: float) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(latency)
            # One write for head and body: split writes meet the client's delayed ACK and add ~40 ms a request.
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(REPLY)).encode() + b"\r\n\r\n" + REPLY)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256

    Server(("127.0.0.1", port), Handler).serve_forever()


def sample(i: int) -> Sample:
    return Sample(id=f"bench/4096/{i}", task="bench", length=4096, index=i, seed=0, units=0, words=0,
                  max_new_tokens=16, metric="string_match_all", answer_prefix="", references=["1234567"],
                  depths=[], prompt_tokens=100, prompt_sha256="")


async def measure(url: str, concurrency: int, count: int, journal_path: Path) -> tuple[float, float]:
    backend = OpenAICompatible("bench", url, concurrency=concurrency, max_retries=0)
    prompt = "The grass is green. " * 40
    try:
        with Journal(journal_path) as journal:
            wall, cpu = time.perf_counter(), time.process_time()
            await predict(backend, [sample(i) for i in range(count)],
                          lambda s: Request(s.id, prompt, s.max_new_tokens), journal, concurrency, lambda p: None,
                          count=lambda text: len(text.split()))  # answers carry no thinking to count
            return time.perf_counter() - wall, time.process_time() - cpu
    finally:
        await backend.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.5, help="seconds the server takes per request")
    parser.add_argument("--requests-per-slot", type=int, default=10)
    parser.add_argument("--concurrency", default="1,8,64")
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve, args.latency)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--latency", str(args.latency)])
    try:
        time.sleep(1.0)
        url = f"http://127.0.0.1:{port}/v1"
        print(f"server latency {args.latency * 1000:.0f} ms, {args.requests_per_slot} requests per slot")
        print(f"{'concurrency':>11} {'requests':>8} {'achieved/s':>10} {'ideal/s':>8} {'ratio':>6} {'CPU ms/req':>10}")
        for concurrency in map(int, args.concurrency.split(",")):
            count = concurrency * args.requests_per_slot
            with tempfile.TemporaryDirectory() as scratch:
                asyncio.run(measure(url, concurrency, min(count, 2 * concurrency), Path(scratch) / "warm.jsonl"))
                wall, cpu = asyncio.run(measure(url, concurrency, count, Path(scratch) / "predictions.jsonl"))
            achieved, ideal = count / wall, concurrency / args.latency
            print(f"{concurrency:>11} {count:>8} {achieved:>10.1f} {ideal:>8.1f} {achieved / ideal:>6.3f} "
                  f"{1000 * cpu / count:>10.2f}", flush=True)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
