"""Nobody waits for data: time to the first request of a long run, and an estimate without generation.

    python bench/first_request.py [--tokenizer smollm2] [--length 1m] [--tasks niah_single_1,vt,qa_1]
        [--samples 2] [--estimate-samples 500]

Runs `ruler` in subprocesses against a loopback server that answers at once, and prints, per task:
- the seconds `ruler generate` takes to build the samples (fresh folders, the same options) in one process and in
  one worker process per core, and the speed-up;
- the seconds from `ruler run`'s start to the first request the server received, against generating every sample
  in one process (before streaming, the first request waited for all of them), and the run's peak memory while
  it generates ahead of the requests;
- the seconds `ruler estimate` took on a fresh folder, its input tokens against the real total of the samples the
  run then built (the estimate builds nothing), and the same estimate for the issue's workload (every task of the
  suite x --estimate-samples at the length), which only needs the plan.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ruler.lengths import format_length, parse_lengths  # noqa: E402
from ruler.tasks import load_tasks  # noqa: E402
from ruler.workers import cores  # noqa: E402


class Server:
    """An OpenAI-compatible server on loopback that answers every completion at once and notes when the first
    one arrived."""

    def __init__(self) -> None:
        self.first: float | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _json(self, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._json({"data": [{"id": "bench", "max_model_len": 2_000_000}]})

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                server.first = server.first or time.perf_counter()
                self._json({"choices": [{"text": "nothing", "finish_reason": "stop", "message": {
                    "role": "assistant", "content": "nothing"}}], "usage": {}})

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/v1"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()


def ruler(*args: str) -> tuple[float, str, float]:
    """Seconds, stdout and peak memory (MiB) of one ruler command, in a process of its own."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen([sys.executable, "-m", "ruler.cli", *args], stdout=subprocess.PIPE,
                                   stderr=errors, text=True)
        printed = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        if os.waitstatus_to_exitcode(status) not in (0, 1):
            errors.seek(0)
            raise SystemExit(f"ruler {' '.join(args)} failed:\n{errors.read().decode()}")
    return time.perf_counter() - started, printed, usage.ru_maxrss / 1024


def total_input(printed: str) -> int:
    return int(next(line for line in printed.splitlines() if line.strip().startswith("total")).split()[2]
               .replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", default="smollm2")
    parser.add_argument("--length", default="1m")
    parser.add_argument("--tasks", default="niah_single_1,niah_multikey_2,vt,cwe,qa_1")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--estimate-samples", type=int, default=500)
    args = parser.parse_args()
    length = format_length(parse_lengths(args.length)[0])
    common = ["--tokenizer", args.tokenizer, "--lengths", length, "--samples", str(args.samples),
              "--squad", "sample", "--hotpotqa", "sample"]
    print(f"tokenizer {args.tokenizer}, length {length}, {args.samples} samples a task, {cores()} cores\n")
    print(f"{'task':16} {'1 process s':>12} {f'{cores()} workers s':>12} {'speed-up':>9} {'first request s':>16} "
          f"{'/ 1 process':>12} {'run MiB':>8} {'estimate s':>11} {'estimated':>12} {'built':>12} {'error':>7}")
    for task in args.tasks.split(","):
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch)
            alone_s, _, _ = ruler("generate", *common, "--tasks", task, "--workers", "1", "--out", str(folder / "one"))
            pool_s, _, _ = ruler("generate", *common, "--tasks", task, "--workers", str(cores()), "--out",
                              str(folder / "all"))
            server = Server()
            model = ["--model", "bench", "--base-url", server.url, "--tasks", task, "--concurrency", "1"]
            estimate_s, printed, _ = ruler("estimate", *common, *model, "--out", str(folder / "run"))
            started = time.perf_counter()
            _, _, peak = ruler("run", *common, *model, "--workers", "1", "--out", str(folder / "run"))
            first = (server.first or float("nan")) - started
            server.http.shutdown()
            built = sum(json.loads(line)["prompt_tokens"] for line in (folder / "run" / "samples.jsonl").open())
            estimated = total_input(printed)
            print(f"{task:16} {alone_s:>12.1f} {pool_s:>12.1f} {alone_s / pool_s:>9.2f} {first:>16.1f} "
                  f"{first / alone_s:>12.2f} {peak:>8.0f} {estimate_s:>11.1f} {estimated:>12,} {built:>12,} "
                  f"{(estimated - built) / built:>+7.2%}")
    # the bundled HotpotQA sample holds 80 questions, too few for 500 samples (the hub's dev set holds 7,405)
    suite = [spec.name for spec in load_tasks([]).select(None, "ruler13") if spec.name != "qa_2"]
    server = Server()
    with tempfile.TemporaryDirectory() as scratch:
        suite_s, printed, _ = ruler("estimate", "--tokenizer", args.tokenizer, "--lengths", length, "--samples",
                                 str(args.estimate_samples), "--tasks", ",".join(suite), "--squad", "sample",
                                 "--model", "bench", "--base-url", server.url, "--out", scratch)
    requests = next(line for line in printed.splitlines() if line.strip().startswith("total")).split()[1]
    print(f"\nruler estimate, ruler13 but qa_2 ({len(suite)} tasks) x {args.estimate_samples} samples at {length}: "
          f"{requests} requests, {total_input(printed):,} input tokens, in {suite_s:.1f} s (nothing generated)")


if __name__ == "__main__":
    main()
