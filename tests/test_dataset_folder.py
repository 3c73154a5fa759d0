"""A dataset folder resumes where it stopped, survives a torn last line, and refuses a different configuration."""

from __future__ import annotations

import json

import pytest

from ruler import dataset
from ruler.errors import RulerError
from ruler.journal import Journal, read_jsonl


def plan_for(workspace, tasks: str = "niah_single_1,fwe", lengths=(4096,), samples: int = 3) -> dataset.Plan:
    return dataset.Plan(workspace.registry.select(tasks, None), list(lengths), samples)


def claim(workspace, folder, plan) -> None:
    folder.claim(workspace.manifest(plan))


def test_generation_resumes_without_rebuilding_finished_samples(smollm2, workspaces, tmp_path) -> None:
    workspace = workspaces(smollm2)
    folder = dataset.DatasetFolder(tmp_path)
    plan = plan_for(workspace)
    claim(workspace, folder, plan)
    first = dataset.generate(folder, workspace.builder, dataset.Plan(plan.tasks, plan.lengths, 2))
    built = []
    again = dataset.generate(folder, workspace.builder, plan, lambda sample, new: built.append((sample.id, new)))
    assert [sample for sample in again if sample.id in {done.id for done in first}] == first
    assert [sample_id for sample_id, new in built if new] == ["niah_single_1/4096/2", "fwe/4096/2"]
    assert len(list(read_jsonl(folder.samples_path))) == 6


def test_torn_last_line_is_ignored_and_cut_before_appending(tmp_path) -> None:
    path = tmp_path / "samples.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": "b"')
    assert [record["id"] for record in read_jsonl(path)] == ["a"]
    with Journal(path) as journal:
        journal.append({"id": "c"})
    assert [record["id"] for record in read_jsonl(path)] == ["a", "c"]


def test_a_folder_made_with_another_tokenizer_is_refused(smollm2, trained, workspaces, tmp_path) -> None:
    folder = dataset.DatasetFolder(tmp_path)
    claim(workspaces(smollm2), folder, plan_for(workspaces(smollm2)))
    with pytest.raises(RulerError, match="different tokenizer; use another --out"):
        claim(workspaces(trained), folder, plan_for(workspaces(trained)))


def test_a_folder_made_with_another_seed_is_refused(smollm2, workspaces, tmp_path) -> None:
    folder = dataset.DatasetFolder(tmp_path)
    claim(workspaces(smollm2), folder, plan_for(workspaces(smollm2)))
    with pytest.raises(RulerError, match="different seed"):
        claim(workspaces(smollm2, seed=1), folder, plan_for(workspaces(smollm2, seed=1)))


def test_adding_tasks_and_lengths_extends_the_manifest(smollm2, workspaces, tmp_path) -> None:
    workspace = workspaces(smollm2)
    folder = dataset.DatasetFolder(tmp_path)
    claim(workspace, folder, plan_for(workspace, "niah_single_1", (4096,)))
    claim(workspace, folder, plan_for(workspace, "vt", (8192,)))
    manifest = json.loads(folder.manifest_path.read_text())
    assert set(manifest["tasks"]) == {"niah_single_1", "vt"} and manifest["lengths"] == [4096, 8192]
    assert manifest["tokenizer_fingerprint"] == smollm2.fingerprint


def test_export_writes_ruler_fields_with_the_exact_counted_text(smollm2, workspaces, tmp_path) -> None:
    workspace = workspaces(smollm2)
    folder = dataset.DatasetFolder(tmp_path / "data")
    plan = plan_for(workspace, "niah_multivalue,qa_1", (4096,), 2)
    claim(workspace, folder, plan)
    samples = dataset.generate(folder, workspace.builder, plan)
    out = tmp_path / "export.jsonl"
    dataset.export_jsonl(out, samples, workspace.builder, {spec.name: spec for spec in plan.tasks})
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 4
    for row in rows:
        assert {"index", "input", "outputs", "length", "answer_prefix", "task", "max_length", "max_new_tokens",
                "depths"} <= set(row)
        assert row["length"] == smollm2.measure(row["input"])[0]
        assert row["input"].endswith(row["answer_prefix"])
        assert row["length"] + row["max_new_tokens"] <= row["max_length"] == 4096
