"""Data generation speed and memory, ours against NVIDIA RULER's own prepare.py on the same tokenizer.

    python bench/generation.py --tokenizer TOKENIZER --lengths 128k --samples 10 \
        [--tasks niah_single_1,vt] [--all-cores 20] [--ruler-python /path/to/ruler-venv/bin/python]

Prints, per task x length: our seconds per sample, tokenizer calls per sample (whole prompts, or the windows around
a constructed prompt's joins) and tokens tokenized per prompt token, the cost of one sample against one plain
tokenization of its prompt, RULER's seconds per sample and tokenizer calls per sample, and the speed ratio.
`--all-cores N` adds seconds per sample with a worker process per core (ruler.workers), from the first of N + 1
samples handed back to the last, so that starting the workers is not counted. `--rss 1m --rss-samples 10,100` adds
peak RSS while generating that many samples at that length, each count in a fresh process.

RULER runs from `nvidia-long-context-eval==26.3` installed with --no-deps (plus numpy, tqdm, wonderwords, nltk,
scipy, transformers, tenacity, pyyaml) in a separate venv given by --ruler-python. Its essay tasks need NLTK's
punkt data, which cannot be downloaded offline: the bench then trains Punkt parameters on RULER's own essay file
once (same algorithm and speed, other parameters) and says so.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ruler.lengths import format_length, parse_lengths  # noqa: E402
from ruler.tokenizers import HFTokenizer, Tokenizer, cache_dir, load_tokenizer  # noqa: E402
from ruler.workers import Workers, cores  # noqa: E402
from ruler.workspace import WorkspaceRecipe, workspace_for  # noqa: E402

QA = {"squad": "sample", "hotpotqa": "sample"}


class Counted(Tokenizer):
    """Counts tokenizer calls (measure, token_starts) and the tokens they return, passing through to a real
    tokenizer."""

    def __init__(self, inner: Tokenizer) -> None:
        self.inner, self.calls, self.tokens = inner, 0, 0
        for name in ("name", "fingerprint", "chat_template", "bos_token", "eos_token", "added_tokens"):
            setattr(self, name, getattr(inner, name))

    def count_batch(self, texts):
        return self.inner.count_batch(texts)

    def measure(self, text, marks=()):
        self.calls += 1
        total, positions = self.inner.measure(text, marks)
        self.tokens += total
        return total, positions

    def token_starts(self, text):
        self.calls += 1
        starts = self.inner.token_starts(text)
        self.tokens += len(starts)
        return starts


def ours(tokenizer: Tokenizer, tasks: list[str], lengths: list[int], samples: int) -> dict:
    counted = Counted(tokenizer)
    workspace = workspace_for(counted, qa_sources=QA)
    results = {}
    for task in tasks:
        spec = workspace.registry.tasks[task]
        for length in lengths:
            workspace.builder.build(spec, length, samples)  # warm the per-process caches (corpus index, word costs)
            counted.calls = counted.tokens = 0
            start, prompt_tokens, plain = time.perf_counter(), 0, 0.0
            for index in range(samples):
                sample, text = workspace.builder.build(spec, length, index)
                prompt_tokens += sample.prompt_tokens
                if index == 0:
                    began = time.perf_counter()
                    tokenizer.measure(text)
                    plain = time.perf_counter() - began
            elapsed = time.perf_counter() - start - plain
            results[(task, length)] = {
                "seconds": elapsed / samples, "calls": counted.calls / samples,
                "tokenized": counted.tokens / max(prompt_tokens, 1), "plain": plain,
            }
    return results


def all_cores(spec: str, tokenizer: Tokenizer, tasks: list[str], lengths: list[int], samples: int) -> dict:
    """Seconds per sample with a worker process per core, once they run: from the first sample handed back to the
    last of `samples` + 1."""
    recipe = WorkspaceRecipe(spec, qa_sources=tuple(QA.items()))
    workspace = recipe.open(tokenizer)
    results = {}
    for task in tasks:
        for length in lengths:
            keys = [(workspace.registry.tasks[task], length, index) for index in range(samples + 1)]
            times = [time.perf_counter() for _ in Workers(workspace.builder, recipe, cores()).build(keys)]
            results[(task, length)] = (times[-1] - times[0]) / samples
    return results


def ruler_folder(tokenizer: Tokenizer, spec: str) -> str:
    """RULER's `hf` tokenizer type needs a transformers folder: the converted GGUF's, or the folder given."""
    if isinstance(tokenizer, HFTokenizer) and spec.lower().endswith(".gguf"):
        import hashlib

        digest = hashlib.sha256(Path(spec).read_bytes()).hexdigest()[:32]
        return str(cache_dir() / "tokenizers" / digest)
    return spec


PUNKT = """
import json, os, sys, nltk
from nltk.tokenize.punkt import PunktTrainer, save_punkt_params
target = os.path.join(sys.prefix, "nltk_data", "tokenizers", "punkt_tab", "english")
try:
    nltk.data.find("tokenizers/punkt_tab/english/")
except LookupError:
    import long_context_eval.data.synthetic as s
    text = json.load(open(os.path.join(os.path.dirname(s.__file__), "json", "PaulGrahamEssays.json")))["text"]
    trainer = PunktTrainer()
    trainer.train(text, finalize=True)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    save_punkt_params(trainer.get_params(), dir=target)
    print("trained")
"""

COUNTER = """
import atexit, os
import transformers
calls = [0]
load = transformers.AutoTokenizer.from_pretrained
def counted(*args, **kwargs):
    tokenizer = load(*args, **kwargs)
    tokenize = tokenizer.tokenize
    def tokenize_counted(text, *a, **k):
        calls[0] += 1
        return tokenize(text, *a, **k)
    tokenizer.tokenize = tokenize_counted
    return tokenizer
transformers.AutoTokenizer.from_pretrained = counted
atexit.register(lambda: open(os.environ["RULER_BENCH_CALLS"], "a").write(f"{calls[0]}\\n"))
"""


def rulers(python: str, folder: str, tasks: list[str], lengths: list[int], samples: int) -> tuple[dict, bool]:
    trained = "trained" in subprocess.run([python, "-c", PUNKT], capture_output=True, text=True, check=True).stdout
    package = Path(subprocess.run([python, "-c", "import long_context_eval.data as d; print(d.__file__)"],
                                  capture_output=True, text=True, check=True).stdout.strip()).parent
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        hook = Path(scratch) / "hook"
        hook.mkdir()
        (hook / "sitecustomize.py").write_text(COUNTER)
        for task in tasks:
            for length in lengths:
                calls = Path(scratch) / f"{task}-{length}.calls"
                calls.touch()
                env = {**os.environ, "PYTHONPATH": str(hook), "RULER_BENCH_CALLS": str(calls),
                       "PATH": f"{Path(python).parent}:{os.environ['PATH']}", "TOKENIZERS_PARALLELISM": "true"}
                out = Path(scratch) / f"out-{task}-{length}"
                start = time.perf_counter()
                done = subprocess.run([python, "prepare.py", "--save_dir", str(out), "--benchmark", "synthetic",
                                       "--task", task, "--tokenizer_path", folder, "--tokenizer_type", "hf",
                                       "--max_seq_length", str(length), "--num_samples", str(samples),
                                       "--model_template_type", "base"], cwd=package, env=env,
                                      capture_output=True, text=True)
                elapsed = time.perf_counter() - start
                made = out / task / "validation.jsonl"
                lines = made.read_text().splitlines() if made.is_file() else []
                results[(task, length)] = {
                    "seconds": elapsed / samples if len(lines) == samples else None,
                    "calls": sum(int(n) for n in calls.read_text().split()) / samples,
                    "error": None if len(lines) == samples else (done.stdout + done.stderr)[-300:],
                }
                shutil.rmtree(out, ignore_errors=True)
    return results, trained


def peak_rss(tokenizer_spec: str, task: str, length: int, samples: int) -> float:
    """Peak RSS (MiB) of a fresh process generating `samples` samples (this script's --rss-child mode)."""
    done = subprocess.run([sys.executable, __file__, "--tokenizer", tokenizer_spec, "--rss-child", task, str(length),
                           str(samples)], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1]) / 1024


def rss_child(tokenizer_spec: str, task: str, length: int, samples: int) -> None:
    workspace = workspace_for(load_tokenizer(tokenizer_spec), qa_sources=QA)
    spec = workspace.registry.tasks[task]
    for index in range(samples):
        workspace.builder.build(spec, length, index)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--lengths", default="128k")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--tasks", default="niah_single_1,niah_single_2,niah_single_3,niah_multikey_1,"
                                           "niah_multikey_2,niah_multikey_3,niah_multivalue,niah_multiquery,"
                                           "vt,cwe,fwe,qa_1,qa_2")
    parser.add_argument("--ruler-python", default=None, help="python of a venv with nvidia-long-context-eval")
    parser.add_argument("--rss", default=None, help="length for the peak-RSS check, e.g. 1m")
    parser.add_argument("--rss-samples", default="10,100")
    parser.add_argument("--rss-task", default="niah_single_2")
    parser.add_argument("--all-cores", type=int, default=0, help="samples to time with a worker per core")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument("--rss-child", nargs=3, metavar=("TASK", "LENGTH", "SAMPLES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        task, length, samples = args.rss_child
        return rss_child(args.tokenizer, task, int(length), int(samples))

    tokenizer = load_tokenizer(args.tokenizer)
    tasks, lengths = args.tasks.split(","), parse_lengths(args.lengths)
    print(f"tokenizer {tokenizer.name} ({tokenizer.fingerprint[:12]}), {args.samples} samples per cell, "
          f"{os.cpu_count()} CPUs", flush=True)
    ours_results = ours(tokenizer, tasks, lengths, args.samples)
    if args.all_cores:
        for key, seconds in all_cores(args.tokenizer, tokenizer, tasks, lengths, args.all_cores).items():
            ours_results[key]["all_cores"] = seconds
    theirs, trained = (rulers(args.ruler_python, ruler_folder(tokenizer, args.tokenizer), tasks, lengths,
                              args.samples) if args.ruler_python else ({}, False))
    header = (f"{'task':16} {'length':>6} {'s/sample':>9} {'tok/sample':>10} {'tokenized':>9} {'vs 1 tok':>8} "
              f"{'all cores':>9} {'vs 1 tok':>8} {'RULER s/sample':>14} {'RULER tok/sample':>16} {'speed-up':>8}")
    print(header)
    rows = []
    for (task, length), mine in ours_results.items():
        other = theirs.get((task, length), {})
        ratio = other["seconds"] / mine["seconds"] if other.get("seconds") else None
        rows.append({"task": task, "length": length, **mine, "ruler": other, "speedup": ratio})
        ruler_s = f"{other['seconds']:.2f}" if other.get("seconds") else ("failed" if other else "-")
        ruler_calls = f"{other['calls']:.1f}" if other else "-"
        spread = (f"{mine['all_cores']:9.3f} {mine['all_cores'] / mine['plain']:8.2f}" if "all_cores" in mine
                  else f"{'-':>9} {'-':>8}")
        print(f"{task:16} {format_length(length):>6} {mine['seconds']:9.3f} {mine['calls']:10.2f} "
              f"{mine['tokenized']:9.3f} {mine['seconds'] / mine['plain']:8.2f} {spread} {ruler_s:>14} "
              f"{ruler_calls:>16} {(f'{ratio:.0f}x' if ratio else '-'):>8}", flush=True)
    for row in rows:
        if row["ruler"].get("error"):
            print(f"RULER {row['task']} {format_length(row['length'])} failed: {row['ruler']['error']!r}")
    if trained:
        print("note: NLTK punkt data is not installable offline; RULER's sent_tokenize used Punkt parameters "
              "trained on its own essay file (same algorithm)")
    if args.rss:
        length = parse_lengths(args.rss)[0]
        for count in map(int, args.rss_samples.split(",")):
            mib = peak_rss(args.tokenizer, args.rss_task, length, count)
            rows.append({"rss_task": args.rss_task, "length": length, "samples": count, "peak_rss_mib": mib})
            print(f"peak RSS, {count} x {args.rss_task} at {format_length(length)}: {mib:.0f} MiB", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, default=str))


if __name__ == "__main__":
    main()
