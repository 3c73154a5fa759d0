"""A dataset folder: `manifest.json` (what shaped the prompts) and `samples.jsonl` (one recipe per sample).

Generation appends to it and resumes where it stopped; asking for more tasks, lengths or samples adds to it. A
folder made with another tokenizer, chat template, seed, task definition or haystack data is refused, with the
difference named, rather than mixed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruler import __version__
from ruler.errors import RulerError
from ruler.files import write_atomic
from ruler.journal import Journal, read_jsonl
from ruler.samples import SampleBuilder
from ruler.tasks import TaskSpec
from ruler.types import Sample

#: manifest entries that must agree for two generations (or runs) to share a folder, and how to name a difference
PINNED = {("tokenizer_fingerprint",): "tokenizer", ("chat_template_sha256",): "chat template", ("seed",): "seed",
          ("mode",): "prompt mode", ("recipes",): "way of building prompts (an earlier ruler)",
          ("run", "model"): "model", ("run", "backend"): "backend",
          ("run", "extra_body"): "request body (--extra-body)", ("run", "stream"): "streaming (--stream)",
          ("run", "max_thinking_tokens"): "thinking budget (--max-thinking-tokens)",
          ("run", "reasoning_effort"): "reasoning effort (--reasoning-effort)"}


def _pinned(manifest: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        manifest = manifest.get(key) if isinstance(manifest, dict) else None
    return manifest


@dataclass(frozen=True)
class Plan:
    tasks: list[TaskSpec]
    lengths: list[int]
    samples: int

    @property
    def size(self) -> int:
        return len(self.tasks) * len(self.lengths) * self.samples

    def ids(self) -> Iterable[tuple[TaskSpec, int, int]]:
        for spec in self.tasks:
            for length in self.lengths:
                for index in range(self.samples):
                    yield spec, length, index


class DatasetFolder:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.manifest_path = root / "manifest.json"
        self.samples_path = root / "samples.jsonl"

    def manifest(self) -> dict[str, Any] | None:
        if not self.manifest_path.is_file():
            return None
        try:
            return json.loads(self.manifest_path.read_text())
        except json.JSONDecodeError:
            raise RulerError(f"{self.manifest_path} is not valid JSON (ruler writes it whole, so something else "
                             "damaged it): restore it from a copy, or use another --out") from None

    def samples(self) -> dict[str, Sample]:
        return {record["id"]: Sample.from_json(record) for record in read_jsonl(self.samples_path)}

    def claim(self, manifest: dict[str, Any], hint: str = "use another --out") -> None:
        """Write `manifest`, merged with the folder's own after checking that nothing that shapes prompts differs."""
        old = self.manifest()
        if old is not None:
            for path, what in PINNED.items():
                if _pinned(old, path) != _pinned(manifest, path):
                    raise RulerError(f"{self.root} was made with a different {what}; {hint}")
            for group, what in (("tasks", "definition of task"), ("data", "data for")):
                for name in set(old.get(group, {})) & set(manifest[group]):
                    if old[group][name] != manifest[group][name]:
                        raise RulerError(f"{self.root} was made with a different {what} {name}; {hint}")
            manifest = {**manifest, "tasks": {**old["tasks"], **manifest["tasks"]},
                        "data": {**old["data"], **manifest["data"]},
                        "lengths": sorted(set(old["lengths"]) | set(manifest["lengths"])),
                        "samples": max(old["samples"], manifest["samples"])}
        write_atomic(self.manifest_path, json.dumps({**manifest, "version": __version__}, indent=2) + "\n")


#: how the samples a folder lacks are built, in the order given (in this process, or ruler.workers' processes)
Build = Callable[[list[tuple[TaskSpec, int, int]]], Iterator[Sample]]


def each_sample(folder: DatasetFolder, builder: SampleBuilder, plan: Plan,
                on_sample: Callable[[Sample, bool], None] = lambda sample, new: None,
                build: Build | None = None) -> Iterator[Sample]:
    """Every sample of `plan` in order, built and appended as it is reached when the folder lacks it: sending can
    start with the first."""
    done = folder.samples()
    missing = [key for key in plan.ids() if Sample.make_id(key[0].name, key[1], key[2]) not in done]
    built = (build or (lambda keys: (builder.build(*key)[0] for key in keys)))(missing)
    try:
        with Journal(folder.samples_path) as journal:
            for spec, length, index in plan.ids():
                sample = done.get(Sample.make_id(spec.name, length, index))
                new = sample is None
                if new:
                    sample = next(built)
                    journal.append(sample.to_json())
                on_sample(sample, new)
                yield sample
    finally:
        close = getattr(built, "close", None)
        if close:  # stopped early: the builder stops too
            close()


def generate(folder: DatasetFolder, builder: SampleBuilder, plan: Plan,
             on_sample: Callable[[Sample, bool], None] = lambda sample, new: None,
             build: Build | None = None) -> list[Sample]:
    """Build every sample of `plan` not yet in `folder`, appending each as it is done; return all of them."""
    return list(each_sample(folder, builder, plan, on_sample, build))


def export_jsonl(path: Path, samples: list[Sample], builder: SampleBuilder, specs: dict[str, TaskSpec]) -> None:
    """RULER's data format, one line per sample, with the full prompt text (`input`) rebuilt from each recipe."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for sample in samples:
            handle.write(json.dumps(export_record(sample, builder.rebuild(specs[sample.task], sample)),
                                    ensure_ascii=False) + "\n")


def export_record(sample: Sample, text: str) -> dict[str, Any]:
    """RULER's fields (`index`, `input`, `outputs`, `length`, `answer_prefix`) and ours. `input` is exactly the text
    whose tokens were counted: chat template included, ending in the answer prefix when one is prefilled."""
    return {"index": sample.index, "input": text, "outputs": sample.references, "length": sample.prompt_tokens,
            "answer_prefix": sample.answer_prefix, "id": sample.id, "task": sample.task, "max_length": sample.length,
            "max_new_tokens": sample.max_new_tokens, "depths": sample.depths, "metric": sample.metric}
