"""Fault table: each fault injected into a real `ruler run` against a loopback server, and what it cost.

    python bench/faults.py

For each fault: requests the server received and answers saved in the journal by the faulty run (lost: answered by
the server, never saved), then in all once the same command ran again as a user would (with --retry-errors where
the fault left errors), samples answered twice, the exit codes, and how many of the secrets given on the command
line or in the environment were found anywhere in the run folder. A malicious task file is run last: does its
template's code run? Uses the test suite's fault-injecting server (tests/fake_server.py) and a tokenizer trained
offline (tests/helpers.py).
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fake_server import FakeServer  # noqa: E402
from helpers import train_tokenizer  # noqa: E402

from ruler.cli import main  # noqa: E402
from ruler.journal import Journal  # noqa: E402

SECRETS = ("hunter2pass", "sk-bench-secret-key", "query-secret")
SAMPLES = 8


class FullDisk(Journal):
    """The disk fills up after two answers."""

    room = 2

    def extend(self, records: list[dict]) -> None:
        if FullDisk.room < len(records):
            raise OSError(errno.ENOSPC, "No space left on device")
        FullDisk.room -= len(records)
        super().extend(records)


def command(url: str, tokenizer: Path, out: Path, *extra: str, tasks: str = "niah_single_1,niah_single_2") -> list[str]:
    return ["run", "--model", "fake", "--base-url", url, "--tokenizer", str(tokenizer), "--lengths", "4k",
            "--tasks", tasks, "--samples", str(SAMPLES // 2), "--max-retries", "0", "--concurrency", "4",
            "--out", str(out), *extra]


def quiet(run: Callable[[], int]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = run()
    lines = [line for line in err.getvalue().splitlines() if line.startswith("ruler: error")]
    return code, lines[-1] if lines else ""


def journal(out: Path) -> list[dict]:
    path = out / "predictions.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith('{"')] \
        if path.exists() else []


@dataclass
class Fault:
    """A fault, injected while `first` runs; then `again` (the same command, as a user would rerun it)."""

    name: str
    first: Callable[[str, Path], int]
    again: tuple[str, ...] | None = ("--retry-errors",)
    script: tuple[str, ...] = ()
    delay: float = 0.0


def measure(fault: Fault, tokenizer: Path, root: Path) -> dict:
    """Sent and saved by the faulty run (lost: answered by the server, never saved), then in all; duplicated:
    samples with more than one answer in the journal (a retried error is superseded, not duplicated)."""
    out = root / fault.name.replace(" ", "-").replace("/", "-")
    with FakeServer(delay=fault.delay) as server:
        server.script.extend(fault.script)
        started = time.monotonic()
        code, said = quiet(lambda: fault.first(server.url, out))
        took, sent, saved = time.monotonic() - started, len(server.received), len(journal(out))
        codes = [code]
        if fault.again is not None:
            codes.append(quiet(lambda: main(command(server.url, tokenizer, out, *fault.again)))[0])
        answers = Counter(r["id"] for r in journal(out) if r["validity"] != "error")
        written = "".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())
        return {"fault": fault.name, "sent": sent, "saved": saved, "lost": max(0, sent - saved),
                "seconds": f"{took:.1f}", "sent in all": len(server.received), "answered in the end": len(answers),
                "duplicated": sum(n > 1 for n in answers.values()), "exit codes": " then ".join(map(str, codes)),
                "secrets on disk": sum(secret in written for secret in SECRETS), "said": said.removeprefix("ruler: ")}


def faults(tokenizer: Path, root: Path) -> list[Fault]:
    def plain(*extra: str, tasks: str = "niah_single_1,niah_single_2") -> Callable[[str, Path], int]:
        return lambda url, out: main(command(url, tokenizer, out, *extra, tasks=tasks))

    def full_disk(url: str, out: Path) -> int:
        with mock.patch("ruler.run.Journal", FullDisk):
            return main(command(url, tokenizer, out))

    def broken_rebuild(url: str, out: Path) -> int:
        from ruler.samples import SampleBuilder

        real = SampleBuilder.rebuild_request

        def rebuild(self, spec, sample):
            if sample.index == 1:
                raise ValueError("prompt hash mismatch")
            return real(self, spec, sample)
        with mock.patch.object(SampleBuilder, "rebuild_request", rebuild):
            return main(command(url, tokenizer, out))

    def cold_cache(url: str, out: Path) -> int:
        main(command(url, tokenizer, out, "--samples", "2"))
        with mock.patch.dict(os.environ, {"RULER_CACHE_DIR": str(root / "cold-cache")}):
            return main(command(url, tokenizer, out))

    def second_run(url: str, out: Path) -> int:
        first = subprocess.Popen([sys.executable, "-m", "ruler.cli", *command(url, tokenizer, out)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        deadline = time.monotonic() + 120
        while not (out / "predictions.jsonl").exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        code = main(command(url, tokenizer, out))
        first.wait()
        return code

    def secrets(url: str, out: Path) -> int:
        secret_url = url.replace("http://", "http://someone:hunter2pass@") + "?key=query-secret"
        with mock.patch.dict(os.environ, {"OPENAI_API_KEY": "sk-bench-secret-key"}):
            return main(command(secret_url, tokenizer, out))

    def damaged(damage: Callable[[Path], None]) -> Callable[[str, Path], int]:
        def run(url: str, out: Path) -> int:
            main(command(url, tokenizer, out))
            damage(out)
            return main(command(url, tokenizer, out))
        return run

    return [Fault("none", plain(), again=None),
            Fault("disk full after 2 answers", full_disk, again=(), delay=0.05),
            Fault("one prompt cannot be rebuilt", broken_rebuild),
            Fault("one response body undecodable", plain(), script=("ok", "bad-gzip")),
            Fault("a finished run resumed on a cold cache", cold_cache, again=None),
            Fault("--tasks a,a", plain(tasks="niah_single_1,niah_single_1"), again=None),
            Fault("two runs on one folder at once", second_run, again=None, delay=0.3),
            Fault("credentials in the URL and the environment", secrets, again=None),
            Fault("server drips bytes (--timeout 1)", plain("--timeout", "1"), script=("drip",)),
            Fault("journal line damaged", damaged(lambda out: _damage(out / "predictions.jsonl")), again=None),
            Fault("manifest half-written", damaged(lambda out: _truncate(out / "manifest.json")), again=None)]


def _damage(path: Path) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "{garbage", *lines[1:]]) + "\n")


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def malicious_task(tokenizer: Path, root: Path) -> str:
    """A task file whose answer prefix calls os.system: does the file appear?"""
    marker = root / "PWNED"
    path = root / "evil.yaml"
    path.write_text("tasks:\n  evil:\n    include: niah_single_1\n    answer_prefix: \""
                    "{{ lipsum.__globals__['os'].system('touch %s') }}\"\n" % marker)
    with FakeServer() as server:
        code, said = quiet(lambda: main(["run", "--model", "fake", "--base-url", server.url, "--tokenizer",
                                         str(tokenizer), "--lengths", "4k", "--task-config", str(path), "--tasks",
                                         "evil", "--samples", "1", "--out", str(root / "evil")]))
        sent = len(server.received)
    return f"exit {code}, requests sent {sent}, file created: {marker.exists()}; {said}"


def main_bench() -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        os.environ.setdefault("RULER_CACHE_DIR", str(root / "cache"))
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        tokenizer = train_tokenizer(root / "tokenizer")
        rows = [measure(fault, tokenizer, root) for fault in faults(tokenizer, root)]
        columns = list(rows[0])
        print("| " + " | ".join(columns) + " |")
        print("|" + "---|" * len(columns))
        for row in rows:
            print("| " + " | ".join(str(row[c]) for c in columns) + " |")
        print(f"\nSamples per run: {SAMPLES}, --concurrency 4, --max-retries 0 (then the same command again).")
        print("malicious task file:", malicious_task(tokenizer, root))


if __name__ == "__main__":
    main_bench()
