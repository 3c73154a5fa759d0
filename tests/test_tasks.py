"""Tasks are data: the shipped 13 with RULER's budgets and metrics, suites, and user variants in YAML alone."""

from __future__ import annotations

import pytest

from ruler.errors import RulerError
from ruler.tasks import load_tasks


def test_all_thirteen_ruler_tasks_with_rulers_budgets_and_metrics() -> None:
    tasks = load_tasks().tasks
    budgets = {name: (spec.max_new_tokens, spec.metric) for name, spec in tasks.items()}
    assert budgets["niah_multiquery"] == (128, "string_match_all")
    assert budgets["vt"] == (30, "string_match_all") and budgets["cwe"] == (120, "string_match_all")
    assert budgets["fwe"] == (50, "string_match_all")
    assert budgets["qa_1"] == budgets["qa_2"] == (32, "string_match_part")
    assert len(load_tasks().suites["ruler13"]) == 13 and len(load_tasks().suites["niah"]) == 8


def test_include_inherits_and_merges_args() -> None:
    spec = load_tasks().tasks["niah_multikey_3"]
    assert spec.args == {"haystack": "needle", "key_type": "uuids", "value_type": "uuids", "num_keys": 1,
                         "num_values": 1, "num_queries": 1}


def test_a_user_variant_needs_only_yaml(smollm2, tmp_path) -> None:
    from ruler.workspace import workspace_for

    config = tmp_path / "mine.yaml"
    config.write_text("tasks:\n  niah_words_8:\n    include: niah_single_2\n"
                      "    args: {value_type: words, num_values: 8}\nsuites:\n  mine: [niah_words_8]\n")
    workspace = workspace_for(smollm2, task_configs=[config])
    (spec,) = workspace.registry.select(None, "mine")
    sample, text = workspace.builder.build(spec, 4096, 0)
    assert len(sample.references) == 8 and all("-" in ref for ref in sample.references)
    assert "Some special magic words are hidden" in text


def test_a_user_template_next_to_the_yaml_is_found(smollm2, tmp_path) -> None:
    from ruler.workspace import workspace_for

    (tmp_path / "brief.jinja").write_text("Find the number for {{ query }}.\n{{ context }}\nNumber for {{ query }}?")
    config = tmp_path / "brief.yaml"
    config.write_text("tasks:\n  brief:\n    include: niah_single_1\n    template: brief.jinja\n")
    workspace = workspace_for(smollm2, task_configs=[config])
    _, text = workspace.builder.build(workspace.registry.tasks["brief"], 4096, 0)
    assert "Find the number for" in text


@pytest.mark.parametrize("yaml_text,message", [
    ("tasks:\n  x:\n    include: nope\n", "unknown task 'nope'"),
    ("tasks:\n  x:\n    include: vt\n    metric: bleu\n", "unknown metric"),
    ("tasks:\n  x:\n    generator: niah\n", "lacks"),
    ("tasks:\n  x:\n    include: vt\n    budget: 3\n", "unknown keys"),
    ("tasks: [1, 2]\n", "needs a `tasks:` mapping"),
    ("tasks:\n  x: {include: vt\n", "not valid YAML"),
])
def test_bad_task_files_are_explained(tmp_path, yaml_text: str, message: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(yaml_text)
    with pytest.raises(RulerError, match=message):
        load_tasks([config])


def test_unknown_task_names_suggest_close_ones() -> None:
    with pytest.raises(RulerError, match="did you mean niah_single_1"):
        load_tasks().select("niah_singel_1", None)


def test_a_task_named_twice_is_selected_once() -> None:
    assert [spec.name for spec in load_tasks().select("vt,niah_single_1,vt", None)] == ["vt", "niah_single_1"]


@pytest.mark.parametrize("place", ["answer_prefix", "template"])
def test_a_task_file_cannot_run_code(smollm2, tmp_path, place: str) -> None:
    from ruler.workspace import workspace_for

    marker = tmp_path / "ran"
    payload = "{{ lipsum.__globals__['os'].system('touch " + str(marker) + "') }}"
    (tmp_path / "evil.jinja").write_text(payload + "\n{{ context }}\n" if place == "template" else "{{ context }}")
    extra = f"    answer_prefix: \"{payload}\"\n" if place == "answer_prefix" else ""
    config = tmp_path / "evil.yaml"
    config.write_text(f"tasks:\n  evil:\n    include: niah_single_1\n    template: evil.jinja\n{extra}")
    workspace = workspace_for(smollm2, task_configs=[config])
    with pytest.raises(RulerError, match="failed"):
        workspace.builder.build(workspace.registry.tasks["evil"], 4096, 0)
    assert not marker.exists()
