"""A sample depends on (seed, task, length, index) and the data alone: generated alone or in a batch, in any
order, by a fresh process, it is the same prompt; its stored recipe rebuilds it byte for byte."""

from __future__ import annotations

import pytest

from ruler.errors import RulerError
from ruler.workspace import workspace_for

TASKS = ["niah_single_1", "niah_multikey_1", "niah_multikey_3", "vt", "cwe", "fwe", "qa_1", "qa_2"]
QA = {"squad": "sample", "hotpotqa": "sample"}


@pytest.mark.parametrize("task", TASKS)
def test_sample_alone_equals_sample_in_a_batch(smollm2, task: str) -> None:
    batch = workspace_for(smollm2, qa_sources=QA)
    spec = batch.registry.tasks[task]
    in_batch = [batch.builder.build(spec, 8192, index) for index in range(4)][3]
    alone = workspace_for(smollm2, qa_sources=QA).builder.build(spec, 8192, 3)
    assert alone == in_batch


def test_stored_recipe_rebuilds_the_same_prompt(smollm2, workspaces) -> None:
    workspace = workspaces(smollm2)
    for task in TASKS:
        spec = workspace.registry.tasks[task]
        sample, text = workspace.builder.build(spec, 8192, 1)
        assert workspace.builder.rebuild(spec, sample) == text


def test_rebuild_refuses_a_recipe_that_no_longer_matches(smollm2, workspaces) -> None:
    workspace = workspaces(smollm2)
    spec = workspace.registry.tasks["niah_single_2"]
    sample, _ = workspace.builder.build(spec, 8192, 0)
    tampered = type(sample)(**{**sample.to_json(), "units": sample.units - 1})
    with pytest.raises(RulerError, match="differs"):
        workspace.builder.rebuild(spec, tampered)


def test_seed_index_and_length_each_change_the_sample(smollm2, workspaces) -> None:
    spec = workspaces(smollm2).registry.tasks["niah_single_2"]
    base = workspaces(smollm2).builder.build(spec, 8192, 0)[1]
    assert workspaces(smollm2, seed=7).builder.build(spec, 8192, 0)[1] != base
    assert workspaces(smollm2).builder.build(spec, 8192, 1)[1] != base
    assert workspaces(smollm2).builder.build(spec, 9000, 0)[1] != base


def test_needle_order_and_positions_vary_across_samples(smollm2, workspaces) -> None:
    """RULER reshuffled needles with a fixed seed, so every sample had the same order; ours do not."""
    workspace = workspaces(smollm2)
    spec = workspace.registry.tasks["niah_multivalue"]
    depths = {tuple(workspace.builder.build(spec, 8192, index)[0].depths) for index in range(6)}
    assert len(depths) == 6
