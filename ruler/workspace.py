"""Everything one generation needs, opened from user options: tokenizer, chat template, tasks, data, builder."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generators.resources import Resources
from ruler.chat_template import resolve_chat_template
from ruler.counting import TokenCounter
from ruler.dataset import Build, Plan
from ruler.endpoints import scrub
from ruler.prompts import PromptRenderer
from ruler.samples import RECIPES, SampleBuilder
from ruler.tasks import TaskRegistry, load_tasks
from ruler.tokenizers import Tokenizer


@dataclass
class Workspace:
    tokenizer: Tokenizer
    registry: TaskRegistry
    resources: Resources
    builder: SampleBuilder
    seed: int
    #: how the samples a folder lacks are built (None: by `builder`, in this process; see ruler.workers)
    build: Build | None = None

    def manifest(self, plan: Plan) -> dict[str, Any]:
        """What shaped these prompts, for the dataset folder (and the run) to record and compare."""
        chat = self.builder.renderer.chat
        needs_essay = any(spec.args.get("haystack") == "essay" for spec in plan.tasks)
        qa_names = sorted({spec.args["dataset"] for spec in plan.tasks if spec.generator == "qa"})
        return {
            "kind": "ruler-dataset",
            "tokenizer": self.tokenizer.name,
            "tokenizer_fingerprint": self.tokenizer.fingerprint,
            "chat_template": chat.source,
            "chat_template_sha256": chat.sha256,
            "mode": self.builder.renderer.mode,
            "recipes": RECIPES,
            "seed": self.seed,
            "tasks": {spec.name: self.registry.digest([spec]) for spec in plan.tasks},
            "data": self.resources.describe(needs_essay, qa_names),
            "lengths": plan.lengths,
            "samples": plan.samples,
            "command": scrub(" ".join(shlex.quote(arg) for arg in sys.argv)),
        }


@dataclass(frozen=True)
class WorkspaceRecipe:
    """The options a workspace is opened from, so that worker processes can open the same one."""

    tokenizer: str
    chat_template: str = "auto"
    task_configs: tuple[Path, ...] = ()
    haystack_file: Path | None = None
    qa_sources: tuple[tuple[str, str | None], ...] = ()
    seed: int = 42
    mode: str = "prefill"

    def open(self, tokenizer: Tokenizer | None = None) -> Workspace:
        """The workspace, around `tokenizer` when it is already loaded."""
        from ruler.tokenizers import load_tokenizer

        return workspace_for(tokenizer or load_tokenizer(self.tokenizer), self.chat_template, self.task_configs,
                             self.haystack_file, dict(self.qa_sources), self.seed, self.mode)


def workspace_for(tokenizer: Tokenizer, chat_template: str = "auto", task_configs: Sequence[Path] = (),
                  haystack_file: Path | None = None, qa_sources: dict[str, str | None] | None = None,
                  seed: int = 42, mode: str = "prefill") -> Workspace:
    """Tasks, chat template, data and sample builder around a loaded tokenizer."""
    registry = load_tasks(list(task_configs))
    renderer = PromptRenderer(registry.template_dirs, resolve_chat_template(chat_template, tokenizer), tokenizer,
                              mode)
    sources = {name: source for name, source in (qa_sources or {}).items() if source}
    resources = Resources(TokenCounter(tokenizer), haystack_file, sources, seed)
    return Workspace(tokenizer, registry, resources, SampleBuilder(tokenizer, renderer, resources, seed), seed)
