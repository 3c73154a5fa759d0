"""`ruler run`: generate (or reuse) the data, send every prompt to a model, journal the answers, summarise.

A run folder is a dataset folder (manifest.json, samples.jsonl) plus predictions.jsonl. The same command resumes
it: finished ids are skipped and nothing is sent twice. A different model, backend, tokenizer, chat template, task
definition or seed is refused unless --new, which moves the old folder aside.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ruler import dataset
from ruler.backends import backend_class
from ruler.backends.base import Backend, BackendOptions, Request
from ruler.backends.openai_compat import api_key_from_env
from ruler.cost import Budget, estimate, estimate_text, seconds_per_input_token
from ruler.errors import RulerError
from ruler.journal import Journal
from ruler.lengths import format_length
from ruler.predictions import latest_predictions
from ruler.probe import probe_key, recall
from ruler.report.results import NothingToScore
from ruler.report.write import write_and_summarise
from ruler.runner import predict
from ruler.scoring import RULER_THRESHOLD
from ruler.scoring.validity import SCORED
from ruler.server_tokenizer import ServerTokenizer
from ruler.tokenizers import Tokenizer, load_tokenizer
from ruler.types import Prediction, Prices, Sample
from ruler.workspace import Workspace, workspace_for

#: the exit code of a run that stopped at its --max-cost (resumable)
BUDGET_REACHED = 3


@dataclass
class RunOptions:
    model: str
    lengths: list[int]
    backend: str = "openai"
    #: one server, or several replicas of the same model
    base_url: list[str] | None = None
    api_key_env: str | None = None
    tokenizer: str | None = None
    chat_template: str = "auto"
    mode: str = "prefill"
    tasks: str | None = None
    suite: str | None = None
    samples: int = 10
    seed: int = 42
    out: Path | None = None
    concurrency: int = 8
    timeout: float = 600.0
    max_retries: int = 6
    force: bool = False
    new: bool = False
    retry_errors: bool = False
    task_configs: list[Path] = field(default_factory=list)
    haystack_file: Path | None = None
    qa_sources: dict[str, str | None] = field(default_factory=dict)
    device: str | None = None
    dtype: str | None = None
    stream: bool = False
    extra_body: dict | None = None
    max_thinking_tokens: int = 0
    reasoning_effort: str | None = None
    threshold: float = RULER_THRESHOLD
    claimed: int | None = None
    dry_run: bool = False
    price_in: float | None = None
    price_out: float | None = None
    max_cost: float | None = None


def run_folder(options: RunOptions) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(options.model.rstrip("/")).name).strip("-") or "model"
    return options.out or Path("outputs") / f"{slug}-{options.backend}"


def _prices(options: RunOptions) -> Prices | None:
    if (options.price_in is None) != (options.price_out is None):
        raise RulerError("give both --price-in and --price-out (US$ per 1M tokens)")
    return Prices(options.price_in, options.price_out) if options.price_in is not None else None


def _tokenizer(options: RunOptions) -> Tokenizer:
    """The local tokenizer the options name (the model's by default), or the server's own with `server`."""
    if options.tokenizer == "server":
        if not options.base_url:
            raise RulerError("--tokenizer server needs --base-url")
        return ServerTokenizer.connect(options.base_url[0], options.model, api_key_from_env(options.api_key_env),
                                       options.timeout)
    try:
        return load_tokenizer(options.tokenizer or options.model)
    except RulerError as error:
        if options.tokenizer:
            raise
        raise RulerError(f"{error}; pass --tokenizer with the model's tokenizer (hub id, folder, .gguf, "
                         "tiktoken:..., or server)") from None


def execute(options: RunOptions) -> int:
    cls = backend_class(options.backend)
    given_prices = _prices(options)
    tokenizer = _tokenizer(options)
    workspace = workspace_for(tokenizer, options.chat_template,
                              options.task_configs, options.haystack_file, options.qa_sources, options.seed,
                              options.mode)
    backend_options = BackendOptions(base_url=options.base_url, api_key=api_key_from_env(options.api_key_env),
                                     timeout=options.timeout, max_retries=options.max_retries,
                                     concurrency=options.concurrency,
                                     device=options.device, dtype=options.dtype,
                                     chat_template=workspace.builder.renderer.chat.text,
                                     reasoning_effort=options.reasoning_effort, stream=options.stream,
                                     extra_body=options.extra_body or {})
    backend = cls.create(options.model, backend_options)
    try:
        return asyncio.run(_execute(options, workspace, backend, given_prices))
    except KeyboardInterrupt:
        print(f"ruler: interrupted; finished predictions are saved in {run_folder(options)}. "
              "Run the same command to resume.", file=sys.stderr)
        return 130


async def _execute(options: RunOptions, workspace: Workspace, backend: Backend, given_prices: Prices | None) -> int:
    from tqdm import tqdm

    try:
        window = await backend.context_window()
        probed = recall(probe_key(options.base_url[0], options.model)) if window is None and options.base_url else None
        usable = window or (probed.window if probed else None)
        lengths = options.lengths
        if usable is not None and not options.force:
            beyond = [length for length in lengths if length > usable]
            source = f"{usable}-token window" + (" (probed)" if window is None else "")
            if beyond:
                print(f"skipping {', '.join(map(format_length, beyond))}: beyond the model's {source} "
                      "(--force sends them anyway)", file=sys.stderr)
            lengths = [length for length in lengths if length <= usable]
            if not lengths:
                raise RulerError(f"every length exceeds the model's {source}; use --force to send them")
        plan = dataset.Plan(workspace.registry.select(options.tasks, options.suite), lengths, options.samples)
        root = run_folder(options)
        folder = dataset.DatasetFolder(root)
        manifest = workspace.manifest(plan)
        run = {**backend.describe(), "window": window, "claimed": options.claimed}
        if probed:
            run["probed_window"] = probed.window
        manifest = {**manifest, "kind": "ruler-run", "run": run}
        if options.new and root.exists():
            root.rename(root.with_name(f"{root.name}.old-{time.strftime('%Y%m%d-%H%M%S')}"))
        folder.claim(manifest, hint="use --new to start a fresh run")

        with tqdm(total=plan.size, unit="sample", desc="data", disable=None) as bar:
            samples = dataset.generate(folder, workspace.builder, plan, lambda sample, new: bar.update(1))
        predictions_path = root / "predictions.jsonl"
        done = latest_predictions(predictions_path)
        pending = [s for s in samples if s.id not in done or (options.retry_errors and done[s.id].validity == "error")]
        specs = {spec.name: spec for spec in plan.tasks}

        def request_for(sample: Sample) -> Request:
            text, message = workspace.builder.rebuild_request(specs[sample.task], sample)
            chat = options.mode == "chat"
            return Request(sample.id, message if chat else text, sample.max_new_tokens + options.max_thinking_tokens,
                           chat=chat)

        prices = given_prices or await backend.prices()
        if options.dry_run:
            print(estimate_text(estimate(pending, options.max_thinking_tokens), prices, options.concurrency,
                                seconds_per_input_token(done.values())))
            print(f"run: {root} (nothing sent)")
            return 0
        budget = None
        if options.max_cost is not None:
            if prices is None:
                raise RulerError("--max-cost needs prices: --price-in and --price-out (US$ per 1M tokens), or a "
                                 "server whose /models listing gives them")
            budget = Budget(options.max_cost, prices, done.values(), options.max_thinking_tokens)

        failures = Counter()
        with Journal(predictions_path) as journal, tqdm(total=len(samples), initial=len(samples) - len(pending),
                                                         unit="req", desc="predict", disable=None) as bar:
            def finished(prediction: Prediction) -> None:
                done[prediction.id] = prediction
                if budget:
                    budget.charge(prediction)
                if prediction.validity not in SCORED:
                    failures[prediction.validity] += 1
                    bar.set_postfix_str(", ".join(f"{k} {v}" for k, v in failures.items()), refresh=False)
                bar.update(1)

            await predict(backend, pending, request_for, journal, options.concurrency, finished,
                          workspace.builder.tokenizer.count, budget.admit if budget else None)
        try:
            print(write_and_summarise(root, options.threshold, options.claimed))
        except NothingToScore as nothing:
            print(f"{nothing}\nrun: {root}")
        if budget and budget.stopped:
            print(f"ruler: stopped before the spent cost would exceed --max-cost {budget.cap:g} (spent "
                  f"{budget.spent:.4f}); run again with a higher --max-cost to continue", file=sys.stderr)
            return BUDGET_REACHED
        return 0
    finally:
        await backend.aclose()
