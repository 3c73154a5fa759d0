"""Task definitions as data: configs/tasks.yaml plus any user YAML files, resolved into TaskSpecs and suites.

A user file has the same shape (`tasks:` and optional `suites:`); its templates are looked up next to it (and in
its `templates/` folder) before the shipped ones. `include: name` starts a task from another one; `args` merge.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from configs import CONFIG_DIR
from ruler.errors import RulerError

REQUIRED = ("generator", "template", "answer_prefix", "max_new_tokens", "metric")
METRICS = ("string_match_all", "string_match_part")


@dataclass(frozen=True)
class TaskSpec:
    name: str
    generator: str
    template: str
    answer_prefix: str
    max_new_tokens: int
    metric: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskRegistry:
    tasks: dict[str, TaskSpec]
    suites: dict[str, list[str]]
    template_dirs: list[Path]

    def select(self, tasks: str | None, suite: str | None) -> list[TaskSpec]:
        """`--tasks a,b` or `--suite name` (default: ruler13)."""
        if tasks and suite:
            raise RulerError("give --tasks or --suite, not both")
        if tasks:
            names = list(dict.fromkeys(name.strip() for name in tasks.split(",") if name.strip()))
        else:
            names = self.suites.get(suite or "ruler13") or _unknown("suite", suite or "ruler13", self.suites)
        return [self.tasks.get(name) or _unknown("task", name, self.tasks) for name in names]

    def templates_digest(self, spec: TaskSpec) -> str:
        for folder in self.template_dirs:
            if (folder / spec.template).is_file():
                return hashlib.sha256((folder / spec.template).read_bytes()).hexdigest()
        raise RulerError(f"task {spec.name}: template {spec.template!r} not found")

    def digest(self, specs: list[TaskSpec]) -> str:
        """A hash of everything that shapes the selected tasks' prompts: specs and template texts."""
        payload = [[asdict(spec), self.templates_digest(spec)] for spec in specs]
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _unknown(kind: str, name: str, known: dict) -> Any:
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(sorted(known))}"
    raise RulerError(f"unknown {kind} {name!r} ({hint})")


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise RulerError(f"task config not found: {str(path)!r}")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise RulerError(f"task config {str(path)!r} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(loaded, dict) or not isinstance(loaded.get("tasks", {}), dict):
        raise RulerError(f"task config {str(path)!r} needs a `tasks:` mapping")
    return loaded


def load_tasks(extra: list[Path] | None = None) -> TaskRegistry:
    """The shipped tasks and suites, with user files layered on top (later files win)."""
    raw: dict[str, dict[str, Any]] = {}
    suites: dict[str, list[str]] = {}
    template_dirs = [CONFIG_DIR / "templates"]
    for path in [CONFIG_DIR / "tasks.yaml", *(extra or [])]:
        loaded = _read(path)
        raw.update(loaded.get("tasks", {}))
        suites.update(loaded.get("suites", {}) or {})
        if path.parent != CONFIG_DIR:
            template_dirs[:0] = [path.parent / "templates", path.parent]
    tasks = {name: _resolve(name, raw, ()) for name in raw}
    for suite, names in suites.items():
        for name in names:
            if name not in tasks:
                raise RulerError(f"suite {suite!r} names unknown task {name!r}")
    return TaskRegistry(tasks, suites, template_dirs)


def _resolve(name: str, raw: dict[str, dict[str, Any]], seen: tuple[str, ...]) -> TaskSpec:
    entry = dict(raw[name] or {})
    if "include" in entry:
        base_name = entry.pop("include")
        if base_name in seen or base_name not in raw:
            what = "itself" if base_name in seen else "unknown task"
            raise RulerError(f"task {name!r} includes {what} {base_name!r}")
        base = asdict(_resolve(base_name, raw, seen + (name,)))
        base.pop("name")
        entry = {**base, **entry, "args": {**base["args"], **(entry.get("args") or {})}}
    missing = [key for key in REQUIRED if key not in entry]
    if missing:
        raise RulerError(f"task {name!r} lacks {', '.join(missing)}")
    unknown = sorted(set(entry) - set(REQUIRED) - {"args"})
    if unknown:
        raise RulerError(f"task {name!r} has unknown keys: {', '.join(unknown)}")
    if entry["metric"] not in METRICS:
        raise RulerError(f"task {name!r}: unknown metric {entry['metric']!r} (use {' or '.join(METRICS)})")
    return TaskSpec(name=name, **{key: entry[key] for key in REQUIRED}, args=dict(entry.get("args") or {}))
