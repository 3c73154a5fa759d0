"""Every sample fills its window: prompt + generation budget <= L and prompt >= 99.5% of (L - budget), counted
independently of ruler's own counting, for every task, several lengths and three real tokenizers."""

from __future__ import annotations

import math

import pytest

from configs import CONFIG_DIR
from ruler.tasks import load_tasks

TASKS = load_tasks().suites["ruler13"]
LENGTHS = [4096, 16384, 65536]


def independent_count(tokenizer, text: str) -> int:
    """The count as the model's own library gives it: transformers' encode, or tiktoken's."""
    if hasattr(tokenizer, "_encoding"):
        return len(tokenizer._encoding.encode(text, allowed_special="all"))
    from transformers import AutoTokenizer

    return len(AutoTokenizer.from_pretrained(_folder(tokenizer))(text, add_special_tokens=False)["input_ids"])


_FOLDERS: dict[str, str] = {}


def _folder(tokenizer) -> str:
    if tokenizer.fingerprint not in _FOLDERS:
        from ruler.tokenizers import cache_dir

        candidates = [tokenizer.name] + [str(p) for p in (cache_dir() / "tokenizers").glob("*")]
        from transformers import AutoTokenizer

        for candidate in candidates:
            try:
                AutoTokenizer.from_pretrained(candidate)
            except Exception:
                continue
            _FOLDERS[tokenizer.fingerprint] = candidate
            break
    return _FOLDERS[tokenizer.fingerprint]


@pytest.fixture(scope="module", params=["smollm2", "trained", "tiktoken"])
def setup(request, workspaces):
    tokenizer = request.getfixturevalue({"tiktoken": "tiktoken_tokenizer"}.get(request.param, request.param))
    return tokenizer, workspaces(tokenizer)


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("task", TASKS)
def test_prompt_fills_the_window_exactly(setup, task: str, length: int) -> None:
    tokenizer, workspace = setup
    spec = workspace.registry.tasks[task]
    sample, text = workspace.builder.build(spec, length, 0)
    budget = length - spec.max_new_tokens
    bos = 0 if workspace.builder.renderer.chat.text else tokenizer.added_tokens
    counted = independent_count(tokenizer, text) + bos
    assert counted == sample.prompt_tokens
    assert counted + spec.max_new_tokens <= length
    assert counted >= math.ceil(0.995 * budget)


@pytest.mark.parametrize("index", range(8))
def test_distractor_lines_fill_a_short_window_by_cutting_the_last_number(smollm2, workspaces, index: int) -> None:
    """SmolLM2 spells numbers digit by digit: a whole distractor line is ~24 tokens, wider than a 2K window's
    10-token tolerance, so the last line must be cut inside its number."""
    workspace = workspaces(smollm2)
    spec = workspace.registry.tasks["niah_multikey_2"]
    sample, text = workspace.builder.build(spec, 2048, index)
    budget = 2048 - spec.max_new_tokens
    assert math.ceil(0.995 * budget) <= independent_count(smollm2, text) == sample.prompt_tokens <= budget


def test_base_mode_counts_the_bos_the_tokenizer_adds(trained, workspaces) -> None:
    workspace = workspaces(trained, "none")
    spec = workspace.registry.tasks["niah_single_1"]
    sample, text = workspace.builder.build(spec, 4096, 0)
    assert trained.added_tokens == 1
    assert not text.startswith("<s>")
    assert sample.prompt_tokens == independent_count(trained, text) + 1 <= 4096 - spec.max_new_tokens


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
