"""Every sample fills its window: prompt + generation budget <= L and prompt >= 99.5% of (L - budget), for every
task, several lengths and three real tokenizers, counted apart from ruler: by implementations it does not use for
the GGUF (llama.cpp) and the tiktoken encoding (Hugging Face's BPE over its ranks), and for the folder by the
`tokenizers` library read directly (ruler's library, not its loading, cache or count of added tokens); each adds
its BOS by its own rules in base mode."""

from __future__ import annotations

import math

import pytest

from configs import CONFIG_DIR
from ruler.tasks import load_tasks

TASKS = load_tasks().suites["ruler13"]
LENGTHS = [4096, 16384, 65536]


@pytest.fixture(scope="module", params=["smollm2", "trained", "tiktoken"])
def setup(request, workspaces, independent):
    tokenizer = request.getfixturevalue({"tiktoken": "tiktoken_tokenizer"}.get(request.param, request.param))
    return tokenizer, workspaces(tokenizer), independent[tokenizer.fingerprint]


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("task", TASKS)
def test_prompt_fills_the_window_exactly(setup, task: str, length: int) -> None:
    tokenizer, workspace, count = setup
    spec = workspace.registry.tasks[task]
    sample, text = workspace.builder.build(spec, length, 0)
    budget = length - spec.max_new_tokens
    counted = count(text, not workspace.builder.renderer.chat.text)
    assert counted == sample.prompt_tokens
    assert counted + spec.max_new_tokens <= length
    assert counted >= math.ceil(0.995 * budget)


@pytest.mark.parametrize("index", range(8))
def test_distractor_lines_fill_a_short_window_by_cutting_the_last_number(smollm2, workspaces, independent,
                                                                        index: int) -> None:
    """SmolLM2 spells numbers digit by digit: a whole distractor line is ~24 tokens, wider than a 2K window's
    10-token tolerance, so the last line must be cut inside its number."""
    workspace = workspaces(smollm2)
    spec = workspace.registry.tasks["niah_multikey_2"]
    sample, text = workspace.builder.build(spec, 2048, index)
    budget = 2048 - spec.max_new_tokens
    counted = independent[smollm2.fingerprint](text, False)
    assert math.ceil(0.995 * budget) <= counted == sample.prompt_tokens <= budget


def test_base_mode_counts_the_bos_the_tokenizer_adds(trained, workspaces, independent) -> None:
    workspace = workspaces(trained, "none")
    spec = workspace.registry.tasks["niah_single_1"]
    sample, text = workspace.builder.build(spec, 4096, 0)
    assert trained.added_tokens == 1
    assert not text.startswith("<s>")
    count = independent[trained.fingerprint]
    assert count(text, True) == count(text, False) + 1
    assert sample.prompt_tokens == count(text, True) <= 4096 - spec.max_new_tokens


def test_chat_template_file_wraps_the_prompt_and_prefills_the_answer(smollm2, workspaces, tmp_path) -> None:
    from ruler.workspace import workspace_for

    template = tmp_path / "plain.jinja"
    template.write_text("{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}{% endfor %}")
    workspace = workspace_for(smollm2, str(template))
    sample, text = workspace.builder.build(workspace.registry.tasks["niah_single_1"], 4096, 0)
    assert text.startswith("[user] A special magic number is hidden")
    assert text.endswith("[assistant] " + sample.answer_prefix.strip()) or text.endswith(sample.answer_prefix)
    assert workspace.builder.renderer.chat.sha256 is not None


def test_shipped_config_credits_ruler() -> None:
    text = (CONFIG_DIR / "tasks.yaml").read_text()
    assert "NVIDIA RULER" in text and "Apache-2.0" in text
