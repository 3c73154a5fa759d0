"""Haystack and QA data: the shipped defaults, user files in RULER's formats, hub rows, and clear errors."""

from __future__ import annotations

import json

import pytest

from generators.resources import hotpotqa_from_rows, load_corpus, load_qa, squad_from_rows
from ruler.errors import RulerError

TEXT = "It is a truth universally acknowledged. " * 40


def test_default_essay_is_the_shipped_austen_corpus() -> None:
    corpus = load_corpus(None)
    assert len(corpus.words) > 700_000 and corpus.words[:3] == ["SENSE", "AND", "SENSIBILITY"]
    assert len(corpus.sentence_starts) > 20_000


@pytest.mark.parametrize("name,content", [
    ("essays.json", json.dumps({"text": TEXT})),
    ("essays.jsonl", "\n".join(json.dumps({"text": TEXT}) for _ in range(2))),
    ("essay.txt", TEXT),
])
def test_haystack_files_in_rulers_and_plain_formats(tmp_path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    corpus = load_corpus(path)
    assert corpus.words[:3] == ["It", "is", "a"] and corpus.sentence_starts[1] == 6


def test_a_custom_haystack_repeats_when_exhausted(smollm2, tmp_path) -> None:
    from ruler.workspace import workspace_for

    path = tmp_path / "short.txt"
    path.write_text(TEXT)
    workspace = workspace_for(smollm2, haystack_file=path)
    _, text = workspace.builder.build(workspace.registry.tasks["niah_single_2"], 4096, 0)
    assert text.count("It is a truth universally acknowledged.") > 100


@pytest.mark.parametrize("content,message", [("{not json", "cannot read"), (json.dumps({"body": "x"}), "text")])
def test_unreadable_haystack_files_are_explained(tmp_path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(RulerError, match=message):
        load_corpus(path)


def test_bundled_qa_samples_follow_rulers_reading() -> None:
    squad = load_qa("squad", "sample")
    assert all(item.answers for item in squad.items) and squad.items[0].related
    hotpot = load_qa("hotpotqa", "sample")
    assert len(hotpot.items) == 80 and all(len(item.gold) >= 2 for item in hotpot.items)


def test_local_ruler_format_files_load(tmp_path) -> None:
    path = tmp_path / "squad.json"
    path.write_text(json.dumps({"data": [{"title": "T", "paragraphs": [
        {"context": "Paris is in France.", "qas": [
            {"question": "Where is Paris?", "is_impossible": False, "answers": [{"text": "France"}]},
            {"question": "Where is Atlantis?", "is_impossible": True, "answers": []}]},
        {"context": "Rome is in Italy.", "qas": []}]}]}))
    dataset = load_qa("squad", str(path))
    assert [(item.query, item.answers) for item in dataset.items] == [("Where is Paris?", ["France"])]
    assert [dataset.docs[i] for i in dataset.items[0].related] == ["Rome is in Italy."]


def test_hub_rows_convert_to_rulers_structure() -> None:
    import datasets

    squad_rows = datasets.Dataset.from_list([
        {"id": "1", "title": "T", "context": "Paris is in France.", "question": "Where is Paris?",
         "answers": {"text": ["France"], "answer_start": [12]}},
        {"id": "2", "title": "T", "context": "Rome is in Italy.", "question": "Where is Atlantis?",
         "answers": {"text": [], "answer_start": []}},
    ])
    docs, items = squad_from_rows(squad_rows)
    assert docs == ["Paris is in France.", "Rome is in Italy."] and len(items) == 1 and items[0].related == [1]
    hotpot_rows = datasets.Dataset.from_list([{"question": "Q?", "answer": "yes", "context": {
        "title": ["A", "B"], "sentences": [["a1 ", "a2"], ["b1"]]}}])
    docs, items = hotpotqa_from_rows(hotpot_rows)
    assert docs == ["A\na1 a2", "B\nb1"] and items[0].gold == [0, 1]


def test_a_hub_dataset_without_the_hub_is_one_line_at_once_naming_the_option(monkeypatch, no_hub: str) -> None:
    """Not cached, and the hub switched off or unreachable: `datasets`, whose hub client retries for half a
    minute, is never asked, and the line names the option that fixes it."""
    import generators.resources

    asked = []
    monkeypatch.setattr(generators.resources, "_hub_rows", lambda *args: asked.append(args))
    with pytest.raises(RulerError) as error:
        load_qa("squad", "nobody/no-such-squad")
    said = str(error.value)
    assert "\n" not in said and said.startswith("cannot load squad dataset 'nobody/no-such-squad': it is not in the "
                                                "local cache and ")
    assert no_hub in said and asked == []
    assert said.endswith("pass --squad FILE (RULER's squad.json) or `--squad sample` for the bundled sample")


def test_a_missing_qa_file_names_the_option() -> None:
    with pytest.raises(RulerError, match="--hotpotqa"):
        load_qa("hotpotqa", "./missing/hotpotqa.json")
