"""`ruler run`: generate (or reuse) the data, send every prompt to a model, journal the answers, summarise.

A run folder is a dataset folder (manifest.json, samples.jsonl) plus predictions.jsonl. The same command resumes
it: finished ids are skipped and nothing is sent twice. A different model, backend, tokenizer, chat template, task
definition or seed is refused unless --new, which moves the old folder aside.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ruler import adaptive, dataset
from ruler.ahead import built_ahead
from ruler.backends import backend_class
from ruler.backends.base import Backend, BackendOptions, Request, ServedContext
from ruler.cost import Budget, Unbuilt, estimate, estimate_text, seconds_per_input_token
from ruler.endpoints import api_key_from_env
from ruler.errors import RulerError
from ruler.files import folder_lock
from ruler.journal import Journal, read_jsonl
from ruler.lengths import format_length
from ruler.predictions import latest_predictions
from ruler.probe import ProbeResult, probe_key, recall
from ruler.progress import progress
from ruler.report.results import NothingToScore
from ruler.report.write import write_and_summarise
from ruler.runner import alone_ids, predict
from ruler.samples import prompt_budget
from ruler.scoring import RULER_THRESHOLD
from ruler.scoring.sequential import BELOW, Validation
from ruler.server_tokenizer import ServerTokenizer
from ruler.sizing import aim
from ruler.tokenizers import Tokenizer, load_tokenizer
from ruler.types import Prediction, Prices, Sample
from ruler.workers import Workers
from ruler.workspace import Workspace, WorkspaceRecipe

#: the exit code of a run that stopped at its --max-cost (resumable)
BUDGET_REACHED = 3
#: the exit code of a run that ended with requests in error, or of a verdict left undecided by them
UNFINISHED = 4
#: the fixed design adaptive validation is measured against: the default --samples per task and length
FIXED_DESIGN = 10
#: requests of each length sent with nothing else in flight, to time the model rather than a server's queue
ALONE_PER_LENGTH = 3


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
    #: adaptive validation: the most samples per task a rung may get (None: the fixed design of `samples`)
    max_samples: int | None = None
    #: processes that build samples (None: every core, when there is enough to build)
    workers: int | None = None


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
    recipe = WorkspaceRecipe(options.tokenizer or options.model, options.chat_template, tuple(options.task_configs),
                             options.haystack_file, tuple(options.qa_sources.items()), options.seed, options.mode)
    workspace = recipe.open(tokenizer)
    # the server's tokenizer stays in this process (its connection, its key)
    workspace.build = Workers(workspace.builder, None if isinstance(tokenizer, ServerTokenizer) else recipe,
                              options.workers).build
    backend_options = BackendOptions(base_url=options.base_url, api_key=api_key_from_env(options.api_key_env),
                                     timeout=options.timeout, max_retries=options.max_retries,
                                     concurrency=options.concurrency,
                                     device=options.device, dtype=options.dtype,
                                     chat_template=workspace.builder.renderer.chat.text,
                                     reasoning_effort=options.reasoning_effort, stream=options.stream,
                                     extra_body=options.extra_body or {}, notify=_say)
    backend = cls.create(options.model, backend_options)
    try:
        return asyncio.run(_execute(options, workspace, backend, given_prices))
    except KeyboardInterrupt:
        print(f"ruler: interrupted; finished predictions are saved in {run_folder(options)}. "
              "Run the same command to resume.", file=sys.stderr)
        return 130


def _say(message: str) -> None:
    print(f"ruler: {message}", file=sys.stderr)


@dataclass(frozen=True)
class Window:
    """What is known of the window before sending: what the server says, and what a probe found."""

    context: ServedContext
    probed: ProbeResult | None

    @property
    def limit(self) -> int | None:
        """The largest length not known to be refused or cut: what the server serves, else what a probe found,
        else the model's own window."""
        return self.context.served or (self.probed.limit if self.probed else None) or self.context.trained

    def source(self) -> str:
        if self.context.served:
            return f"the {self.context.served:,}-token window the server serves ({self.context.source})"
        if self.probed and self.probed.limit:
            return f"the probed window ({self.probed.limit:,} tokens, {self.probed.method})"
        return f"the model's {self.context.trained:,}-token window"

    def record(self) -> dict:
        """For the manifest: what was known and where it came from."""
        described = {"window": self.context.window}
        if self.context.served:
            described.update(served_window=self.context.served, served_by=self.context.source)
        if self.context.trained and self.context.trained != self.context.served:
            described["trained_window"] = self.context.trained
        if self.context.fix:
            described["fix"] = self.context.fix
        if self.probed and self.probed.limit:
            described["probed_window"] = self.probed.limit
        return described


async def _window(options: RunOptions, backend: Backend) -> Window:
    context = await backend.context()
    if said := context.describe():
        _say(said)
    probed = None
    if context.served is None and options.base_url:
        probed = recall(probe_key(options.base_url[0], options.model))
    return Window(context, probed)


def _lengths(options: RunOptions, window: Window) -> tuple[list[int], dict[int, str]]:
    """The lengths to send, and those skipped with why: only lengths known not to be served whole are skipped."""
    limit = window.limit
    if limit is None or options.force:
        return options.lengths, {}
    skipped = {length: f"beyond {window.source()}" for length in options.lengths if length > limit}
    if skipped:
        fix = f"; {window.context.fix}" if window.context.fix else ""
        _say(f"skipping {', '.join(map(format_length, skipped))}: beyond {window.source()}{fix} (--force sends "
             "them anyway)")
    lengths = [length for length in options.lengths if length not in skipped]
    if not lengths:
        raise RulerError(f"every length exceeds {window.source()}; use --force to send them")
    return lengths, skipped


def _claim_folder(options: RunOptions, workspace: Workspace, backend: Backend, plan: dataset.Plan, window: Window,
                  skipped: dict[int, str], root: Path) -> dataset.DatasetFolder:
    run = {**backend.describe(), **window.record(), "claimed": options.claimed,
           "plan": {"tasks": [spec.name for spec in plan.tasks], "lengths": plan.lengths, "samples": plan.samples}}
    run.update({name: value for name, value in (("stream", options.stream),
                                                ("max_thinking_tokens", options.max_thinking_tokens),
                                                ("reasoning_effort", options.reasoning_effort)) if value})
    if skipped:
        run["skipped"] = {str(length): why for length, why in skipped.items()}
    folder = dataset.DatasetFolder(root)
    folder.claim({**workspace.manifest(plan), "kind": "ruler-run", "run": run},
                 hint="use --new to start a fresh run")
    return folder


async def _execute(options: RunOptions, workspace: Workspace, backend: Backend, given_prices: Prices | None) -> int:
    try:
        window = await _window(options, backend)
        lengths, skipped = _lengths(options, window)
        plan = dataset.Plan(workspace.registry.select(options.tasks, options.suite), lengths, options.samples)
        root = run_folder(options)
        if options.new and root.exists():
            root.rename(root.with_name(f"{root.name}.old-{time.strftime('%Y%m%d-%H%M%S')}"))
        with folder_lock(root):
            folder = _claim_folder(options, workspace, backend, plan, window, skipped, root)
            return await _run_in(folder, options, workspace, backend, plan, given_prices)
    finally:
        await backend.aclose()


async def _run_in(folder: dataset.DatasetFolder, options: RunOptions, workspace: Workspace, backend: Backend,
                  plan: dataset.Plan, given_prices: Prices | None) -> int:
    """Estimate (a dry run), validate adaptively, or generate what the folder lacks, send and summarise."""
    root = folder.root
    workspace.builder.preflight(plan.tasks, plan.lengths, plan.samples)
    if options.dry_run:
        return await _estimate(folder, options, backend, plan, given_prices)
    if options.max_samples:
        return await _validate(folder, options, workspace, backend, plan, given_prices)
    predictions_path = root / "predictions.jsonl"
    done = latest_predictions(predictions_path)
    planned = [(Sample.make_id(spec.name, length, index), length) for spec, length, index in plan.ids()]
    waiting = [(id_, length) for id_, length in planned
               if id_ not in done or (options.retry_errors and done[id_].validity == "error")]
    answered = [done[id_] for id_, _ in planned if id_ in done]  # a narrower rerun leaves other answers there
    if done:
        errors = sum(p.validity == "error" for p in answered) if not options.retry_errors else 0
        _say(f"resuming: {len(planned) - len(waiting)} of {len(planned)} answered, {len(waiting)} to send"
             + (f" ({errors} in error stay so: --retry-errors sends them again)" if errors else ""))
    budget = _budget(options, given_prices or await backend.prices(), done.values())
    sending = {id_ for id_, _ in waiting}
    samples = (sample for sample in dataset.each_sample(folder, workspace.builder, plan, build=workspace.build)
               if sample.id in sending)
    with _saving(root):
        await _send(options, workspace, backend, plan, built_ahead(samples), waiting, answered, len(planned),
                    predictions_path, budget)
    return _finish(options, root, budget)


async def _estimate(folder: dataset.DatasetFolder, options: RunOptions, backend: Backend, plan: dataset.Plan,
                    given_prices: Prices | None) -> int:
    """What the run would send, at once: the samples already generated count exactly, the others at the size they
    will be built to, so nothing is generated (at 1M tokens a prompt, generating is what takes time)."""
    built = folder.samples()
    done = latest_predictions(folder.root / "predictions.jsonl")
    pending, unbuilt = [], []
    for spec, length, index in plan.ids():
        sample = built.get(Sample.make_id(spec.name, length, index))
        if sample is None:
            budget = prompt_budget(spec, length)
            unbuilt.append(Unbuilt(length, aim(budget), spec.max_new_tokens))
        elif sample.id not in done or (options.retry_errors and done[sample.id].validity == "error"):
            pending.append(sample)
    print(estimate_text(estimate(pending, options.max_thinking_tokens, unbuilt),
                        given_prices or await backend.prices(), options.concurrency,
                        seconds_per_input_token(done.values())))
    if options.max_samples:
        fewest = len(plan.tasks) * min(len(plan.lengths), 2)
        print(f"adaptive validation: the most it can send, every length to --max-samples {options.max_samples} "
              f"per task; it stops once the verdict is known, after as few as {fewest} requests (one round at the "
              "claim and one at the shortest length, both failing)")
    print(f"run: {folder.root} (nothing sent)")
    return 0


async def _validate(folder: dataset.DatasetFolder, options: RunOptions, workspace: Workspace, backend: Backend,
                    plan: dataset.Plan, given_prices: Prices | None) -> int:
    """Adaptive validation: rounds until the verdict is known (ruler/adaptive.py), recorded in the manifest beside
    what the fixed design of --samples would have sent, then the report."""
    journal = folder.root / "predictions.jsonl"
    budget = _budget(options, given_prices or await backend.prices(), latest_predictions(journal).values())
    validation = Validation(plan.lengths, len(plan.tasks), options.max_samples, options.threshold / 100)

    async def send(pending: list[Sample], done: list[Prediction]) -> bool:
        await _send(options, workspace, backend, plan, pending, [(s.id, s.length) for s in pending], done,
                    len(pending), journal, budget)
        return not (budget and budget.stopped)

    with _saving(folder.root):
        stopped = await adaptive.validate_in_rounds(validation, folder, workspace, plan.tasks, journal,
                                                    options.retry_errors, send)
    manifest = folder.manifest() or {}
    run = manifest.get("run", {})
    # what was asked of each length is the plan the report reads
    asked = {str(length): rung.per_task for length, rung in validation.rungs.items() if rung.per_task}
    folder.claim({**manifest, "run": {**run, "plan": {**run.get("plan", {}), "samples": asked}, "adaptive": {
        # a length skipped as beyond the window fails the claim whatever the rounds said
        "verdict": BELOW if run.get("skipped") else validation.verdict(), "effective": validation.effective(),
        "effective_said": validation.effective_said(),
        "path": validation.path,
        "requests": validation.requests(), "fixed_requests": len(plan.tasks) * FIXED_DESIGN * len(plan.lengths),
        "tokens": validation.tokens(), "fixed_tokens": len(plan.tasks) * FIXED_DESIGN * sum(plan.lengths),
        "fixed_samples": FIXED_DESIGN, "max_samples": options.max_samples, "alpha": validation.alpha,
        "stopped": stopped.why if stopped else None}}})
    return _finish(options, folder.root, budget)


@contextlib.contextmanager
def _saving(root: Path) -> Iterator[None]:
    """A failure to save answers is one line naming the folder; what was saved is kept."""
    try:
        yield
    except OSError as failure:
        raise RulerError(f"cannot save answers in {root}: {failure.strerror or failure}; what was saved is kept: "
                         "free space and run the same command to resume") from None


def _budget(options: RunOptions, prices: Prices | None, done: Iterable[Prediction]) -> Budget | None:
    if options.max_cost is None:
        return None
    if prices is None:
        raise RulerError("--max-cost needs prices: --price-in and --price-out (US$ per 1M tokens), or a server "
                         "whose /models listing gives them")
    return Budget(options.max_cost, prices, done, options.max_thinking_tokens)


async def _send(options: RunOptions, workspace: Workspace, backend: Backend, plan: dataset.Plan,
                samples: Iterable[Sample] | AsyncIterator[Sample], waiting: list[tuple[str, int]],
                done: Iterable[Prediction], total: int, predictions_path: Path, budget: Budget | None) -> None:
    """Send the samples (as they are built: `waiting` names them, id and length, in order) and journal every
    answer, with progress: answers so far by validity."""
    specs = {spec.name: spec for spec in plan.tasks}

    def request_for(sample: Sample) -> Request:
        text, message = workspace.builder.rebuild_request(specs[sample.task], sample)
        chat = options.mode == "chat"
        return Request(sample.id, message if chat else text, sample.max_new_tokens + options.max_thinking_tokens,
                       chat=chat)

    sending = {id_ for id_, _ in waiting}
    validities = Counter(prediction.validity for prediction in done if prediction.id not in sending)
    with Journal(predictions_path) as journal, progress(total, "predict", "req", total - len(waiting)) as bar:
        def finished(prediction: Prediction) -> None:
            if budget:
                budget.charge(prediction)
            validities[prediction.validity] += 1
            bar.set_postfix_str(", ".join(f"{k} {v}" for k, v in validities.most_common()), refresh=False)
            bar.update(1)

        await predict(backend, samples, request_for, journal, options.concurrency, finished,
                      workspace.builder.tokenizer.count, budget.admit if budget else None,
                      alone_ids(waiting, done, ALONE_PER_LENGTH))


def _finish(options: RunOptions, root: Path, budget: Budget | None) -> int:
    """Print the report's summary and say what is left to do; the exit code says whether anything is."""
    try:
        print(write_and_summarise(root, options.threshold, options.claimed))
    except NothingToScore as nothing:  # an adaptive validation's verdict stands without a scored answer
        run = (dataset.DatasetFolder(root).manifest() or {}).get("run") or {}
        print("\n".join([*(adaptive.summary(run) if run.get("adaptive") else []), str(nothing), f"run: {root}"]))
    except OSError as failure:
        raise RulerError(f"the answers are saved in {root}, but the report could not be written "
                         f"({failure.strerror or failure}); `ruler report {root}` writes it later") from None
    if budget and budget.stopped:
        _say(f"stopped before the spent cost would exceed --max-cost {budget.cap:g} (spent {budget.spent:.4f}); run "
             "again with a higher --max-cost to continue")
        return BUDGET_REACHED
    latest: dict[str, dict] = {}
    for record in read_jsonl(root / "predictions.jsonl"):  # each id's last word, in the order they were said
        latest.pop(record["id"], None)
        latest[record["id"]] = record
    errors = [record["error"] for record in latest.values() if record["validity"] == "error"]
    if errors:
        _say(f"{len(errors)} request{'s' if len(errors) > 1 else ''} ended in error (last: {errors[-1]}); run the "
             "same command with --retry-errors to send them again")
        return UNFINISHED
    return 0
