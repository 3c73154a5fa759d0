"""Every sample is checked as it is made: needles present once, references recoverable, keys distinct, the QA gold
documents included, the frequency tasks' answers truly the most frequent; needle depths are where they say."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter

import pytest

from generators import get_generator
from generators.base import Context, GenerationDefect, derive_rng


def draft_of(workspace, task: str, length: int = 8192, index: int = 0):
    spec = workspace.registry.tasks[task]
    return get_generator(spec.generator)(spec.args, length, index, derive_rng(42, task, length, index),
                                         workspace.resources)


@pytest.fixture(scope="module")
def workspace(smollm2, workspaces):
    return workspaces(smollm2)


def test_a_needle_inserted_twice_is_caught(workspace) -> None:
    draft = draft_of(workspace, "niah_single_2")
    context = draft.render(2000)
    doubled = Context(context.text + " " + draft.needles[0], context.marks)
    with pytest.raises(GenerationDefect, match="appears 2 times"):
        draft.check(doubled)


def test_a_missing_needle_is_caught(workspace) -> None:
    draft = draft_of(workspace, "niah_multikey_2")
    context = draft.render(100)
    with pytest.raises(GenerationDefect, match="appears 0 times"):
        draft.check(Context(context.text.replace(draft.needles[0], ""), context.marks))


def test_a_reference_absent_from_the_context_is_caught(workspace) -> None:
    draft = draft_of(workspace, "vt")
    draft = dataclasses.replace(draft, references=draft.references + ["ZZZZZ"])
    with pytest.raises(GenerationDefect, match="ZZZZZ"):
        draft.check(draft.render(40))


def test_cwe_rejects_an_uncommon_word_as_frequent_as_a_common_one(workspace) -> None:
    draft = draft_of(workspace, "cwe")
    context = draft.render(300)
    rival = draft.uncommon[0]
    padded = context.text + "".join(f" {i}. {rival}" for i in range(9000, 9040))
    with pytest.raises(GenerationDefect, match="uncommon word"):
        draft.check(Context(padded))


def test_fwe_rejects_answers_that_do_not_stand_out(workspace) -> None:
    draft = draft_of(workspace, "fwe")
    context = draft.render(3000)
    flooded = context.text + (" " + draft.vocab[-1]) * 2000
    with pytest.raises(GenerationDefect, match="do not stand above"):
        draft.check(Context(flooded))


def test_qa_rejects_a_context_without_its_gold_document(workspace) -> None:
    draft = draft_of(workspace, "qa_1")
    context = draft.render(10)
    with pytest.raises(GenerationDefect, match="gold document"):
        draft.check(Context(context.text.replace(draft.docs[draft.gold[0]], "")))


def test_keys_are_distinct_and_distractors_never_reuse_the_query_key(workspace) -> None:
    draft = draft_of(workspace, "niah_multiquery")
    keys = [needle.split(" for ")[1].split(" is:")[0] for needle in draft.needles]
    assert len(set(keys)) == len(keys) == 4
    haystack = draft_of(workspace, "niah_multikey_2")
    key = haystack.needles[0].split(" for ")[1].split(" is:")[0]
    assert sum(f" for {key} is:" in line for line in haystack.stream.take(3000)) == 0


@pytest.mark.parametrize("task", ["niah_single_1", "niah_single_2", "niah_multikey_2", "vt", "qa_2"])
def test_recorded_depth_is_where_the_needle_starts(workspace, task: str) -> None:
    spec = workspace.registry.tasks[task]
    sample, text = workspace.builder.build(spec, 16384, 2)
    draft = draft_of(workspace, task, 16384, 2)
    needles = draft.needles if task != "qa_2" else [draft.docs[doc] for doc in draft.gold]
    assert len(sample.depths) == len(needles) > 0
    for needle, depth in zip(needles, sample.depths):
        before = workspace.tokenizer.measure(text[: text.index(needle)])[0]
        assert abs(depth * sample.prompt_tokens - before) <= 8


def test_essay_needles_sit_at_sentence_starts(workspace) -> None:
    _, text = workspace.builder.build(workspace.registry.tasks["niah_multikey_1"], 16384, 0)
    draft = draft_of(workspace, "niah_multikey_1", 16384, 0)
    for needle in draft.needles:
        before = text[: text.index(needle)].rstrip()
        assert before[-1] in ".!?\"'\u201d\u2019)]" or before.endswith("afterwards.")


def test_word_lists_hold_single_words_only(workspace) -> None:
    for kind in ("nouns", "adjectives", "common", "extra"):
        assert all(" " not in word for word in workspace.resources.words(kind))


@pytest.mark.parametrize("index", range(6))
def test_cwe_lists_keep_common_words_most_frequent(workspace, index: int) -> None:
    """Counted off the prompt's last list (the one asked about), not by the generator's own check."""
    sample, text = workspace.builder.build(workspace.registry.tasks["cwe"], 32768, index)
    listed = text.rsplit("appear most often.\n", 1)[1].rsplit("\nQuestion:", 1)[0]
    counts = Counter(re.findall(r"\d+\. (\S+)", listed))
    assert sample.draw == 0 and len(sample.references) == 10
    assert min(counts[word] for word in sample.references) > max(
        count for word, count in counts.items() if word not in sample.references)


def test_draws_are_rarely_replaced(workspace) -> None:
    """Up to five draws per sample could hide a generator that usually breaks its invariants: at most one
    replaced draw in 52 samples (4 of every task)."""
    replaced = [name for name in workspace.registry.suites["ruler13"] for index in range(4)
                if workspace.builder.build(workspace.registry.tasks[name], 4096, index)[0].draw > 0]
    assert len(replaced) <= 1, replaced


def test_a_draw_that_breaks_an_invariant_is_replaced_deterministically(smollm2, monkeypatch) -> None:
    """A fault injected into the first draw's check: the sample comes from the next draw, records it, and its
    recipe rebuilds the same prompt."""
    from generators.base import InvalidSample
    from generators.haystack import HaystackDraft
    from ruler.workspace import workspace_for

    workspace = workspace_for(smollm2)
    spec = workspace.registry.tasks["niah_single_1"]
    clean, _ = workspace.builder.build(spec, 4096, 0)
    real_check, calls = HaystackDraft.check, []

    def failing_first(self, context):
        calls.append(1)
        if len(calls) == 1:
            raise InvalidSample("injected")
        return real_check(self, context)

    monkeypatch.setattr(HaystackDraft, "check", failing_first)
    redrawn, text = workspace.builder.build(spec, 4096, 0)
    assert clean.draw == 0 and redrawn.draw == 1 and redrawn.references != clean.references
    assert workspace.builder.rebuild(spec, redrawn) == text


def test_distractor_needles_never_repeat_an_answer_value(smollm2, monkeypatch) -> None:
    """A fault injected into the draws: values from a space of ten, so the pool's lines would repeat the answer (a
    workspace of its own: the pool it draws is kept for its life)."""
    import generators.niah as niah
    from ruler.workspace import workspace_for

    real = niah._draw
    monkeypatch.setattr(niah, "_draw", lambda kind, rng, data: str(rng.randint(1, 10)) if kind == "numbers"
                        else real(kind, rng, data))
    draft = draft_of(workspace_for(smollm2), "niah_multikey_2")
    (answer,) = [needle.split(" is: ")[1].rstrip(".") for needle in draft.needles]
    values = {line.rsplit(" is: ", 1)[1].rstrip(".") for line in draft.stream.take(2000)}
    assert values == {str(value) for value in range(1, 11)} - {answer}


def test_a_sample_takes_each_distractor_line_once_in_an_order_of_its_own(workspace) -> None:
    first, second = (draft_of(workspace, "niah_multikey_2", 65536, index).stream for index in (0, 1))
    lines = first.take(first.size)
    assert len(set(lines)) == len(lines) >= 2 * 65536 // 8
    assert first.take(50) != second.take(50)


def test_the_distractor_pool_follows_the_seed_not_the_tokenizer(smollm2, trained, workspaces) -> None:
    def lines(tokenizer, seed: int) -> list[str]:
        return draft_of(workspaces(tokenizer, seed=seed), "niah_multikey_3", 16384).stream.take(50)

    assert lines(smollm2, 42) == lines(trained, 42) != lines(smollm2, 7)


def test_more_qa_samples_than_questions_are_refused_with_the_count(workspace) -> None:
    from ruler.errors import RulerError

    questions = len(workspace.resources.qa("hotpotqa").items)
    spec = workspace.registry.tasks["qa_2"]
    with pytest.raises(RulerError, match=f"holds {questions} questions, so sample {questions} would repeat one"):
        workspace.builder.build(spec, 4096, questions)
