"""Reasoning models: thinking is split from the answer before scoring, whatever shape it comes in; a model that
runs out of budget while thinking is `truncated`, not wrong; thinking tokens are recorded; budgets and effort
reach the server; and a template that writes today's date sees a fixed day."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_server import FakeServer

from ruler.cli import main
from ruler.reasoning import split_reasoning

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("text,answer,reasoning", [
    ("<think>Look at line 3.</think> 1234567.", "1234567.", "Look at line 3."),
    ("Opened by the template.\n</think>\n\n 1234567.", "1234567.", "Opened by the template."),
    ("<|channel|>analysis<|message|>Find it.<|end|><|start|>assistant<|channel|>final<|message|>1234567.<|return|>",
     "1234567.", "Find it."),
    ("analysisFind the final key.assistantfinal1234567.", "1234567.", "Find the final key."),
    (" 1234567.", " 1234567.", ""),
])
def test_thinking_is_split_from_the_answer(text: str, answer: str, reasoning: str) -> None:
    split = split_reasoning(text)
    assert (split.answer, split.reasoning, split.unfinished) == (answer, reasoning, False)


@pytest.mark.parametrize("text", ["<think>Still reading the", "<|channel|>analysis<|message|>Still reading"])
def test_text_that_ends_inside_its_thinking_is_unfinished(text: str) -> None:
    split = split_reasoning(text)
    assert split.unfinished and split.answer == "" and "Still reading" in split.reasoning


@pytest.fixture()
def run_with(trained_tokenizer_dir, tmp_path):
    def go(script: list[str], *extra: str) -> tuple[list[dict], list[dict]]:
        out = tmp_path / "run"
        with FakeServer() as server:
            server.script.extend(script)
            assert main(["run", "--model", "fake", "--base-url", server.url, "--tokenizer",
                         str(trained_tokenizer_dir), "--lengths", "4k", "--tasks", "niah_single_1", "--samples",
                         str(len(script)), "--concurrency", "1", "--out", str(out), *extra]) == 0
        records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
        return records, server.received

    go.out = tmp_path / "run"
    return go


def test_thinking_in_every_shape_scores_only_the_answer(run_with) -> None:
    shapes = ["think", "opened-think", "harmony", "reasoning-field"]
    records, _ = run_with(shapes)
    assert [r["validity"] for r in records] == ["ok"] * 4
    cell, = json.loads((run_with.out / "report" / "results.json").read_text())["cells"]
    assert cell["score"] == 100.0 and cell["n"] == 4
    assert all(r["reasoning_tokens"] > 0 for r in records)
    assert records[3]["reasoning"] == "I read every line." and records[3]["reasoning_tokens"] == 5


def test_running_out_of_budget_while_thinking_is_truncated_with_the_reason(run_with) -> None:
    records, _ = run_with(["think-length", "reasoning-length"])
    assert [r["validity"] for r in records] == ["truncated", "truncated"]
    assert all("inside the reasoning" in r["error"] for r in records)
    assert records[1]["reasoning_tokens"] == 64


def test_thinking_budget_and_effort_reach_the_server(run_with) -> None:
    _, received = run_with(["ok"], "--max-thinking-tokens", "1000", "--reasoning-effort", "low")
    assert received[0]["max_tokens"] == 128 + 1000 and received[0]["reasoning_effort"] == "low"


def test_a_template_that_writes_the_date_sees_the_same_day_every_day(trained) -> None:
    from ruler.chat_template import TEMPLATE_DATE
    from ruler.workspace import workspace_for

    workspace = workspace_for(trained, str(DATA / "gpt-oss.jinja"))
    sample, text = workspace.builder.build(workspace.registry.tasks["niah_single_1"], 4096, 0)
    assert f"Current date: {TEMPLATE_DATE:%Y-%m-%d}\n" in text
    assert text.endswith("<|start|>assistant<|channel|>final<|message|>" + sample.answer_prefix)
