"""Tokenizers: every kind loads, fingerprints tell them apart, counts agree with the library's own, GGUF
conversions are cached, and a tokenizer that cannot load is a one-line error."""

from __future__ import annotations

import pytest

from ruler.errors import RulerError
from ruler.tokenizers import TiktokenTokenizer, cache_dir, embedded_gguf, load_tokenizer


def test_fingerprints_differ_between_tokenizers_and_repeat_for_the_same(smollm2, trained, tiktoken_tokenizer,
                                                                        trained_tokenizer_dir) -> None:
    assert len({smollm2.fingerprint, trained.fingerprint, tiktoken_tokenizer.fingerprint}) == 3
    assert load_tokenizer(str(trained_tokenizer_dir)).fingerprint == trained.fingerprint


def test_gguf_conversion_is_cached_under_the_file_hash(smollm2, monkeypatch) -> None:
    import ruler.tokenizers

    assert list((cache_dir() / "tokenizers").glob("*/tokenizer_config.json"))
    monkeypatch.setattr(ruler.tokenizers, "_auto_tokenizer", lambda *a, **k: pytest.fail("converted again"))
    assert load_tokenizer(str(embedded_gguf("smollm2"))).fingerprint == smollm2.fingerprint


def test_a_folder_written_by_several_writers_at_once_ends_whole(tmp_path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from ruler.files import write_folder_atomic

    def fill(folder) -> None:
        for part in range(20):
            (folder / f"part{part}").write_text(str(part))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: write_folder_atomic(tmp_path / "made", fill), range(8)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["made"]
    assert len(list((tmp_path / "made").iterdir())) == 20


def test_counts_match_transformers_encode(trained, trained_tokenizer_dir) -> None:
    from transformers import AutoTokenizer

    reference = AutoTokenizer.from_pretrained(trained_tokenizer_dir)
    texts = ["Hello world.", "One of the special magic numbers for calm-river is: 1234567.\n", "  spaced\n\nout  "]
    assert trained.count_batch(texts) == [len(reference(t, add_special_tokens=False)["input_ids"]) for t in texts]
    assert trained.added_tokens == 1 and trained.chat_template


def test_measure_locates_marks_at_the_token_holding_them(smollm2, tiktoken_tokenizer) -> None:
    text = "The grass is green. The sky is blue."
    for tokenizer in (smollm2, tiktoken_tokenizer):
        total, (index,) = tokenizer.measure(text, [text.index("The sky")])
        assert total == tokenizer.count(text)
        assert tokenizer.count(text[: text.index("The sky")]) in (index, index + 1)


def test_tiktoken_counts_match_its_encode(tiktoken_encoding) -> None:
    tokenizer = TiktokenTokenizer(tiktoken_encoding, "tiktoken:test")
    text = "Pride and Prejudice <|endoftext|> again"
    assert tokenizer.count(text) == len(tiktoken_encoding.encode(text, allowed_special="all"))
    assert tokenizer.token_starts(text)[0] == 0


@pytest.mark.parametrize("spec", ["/no/such/folder", "missing.gguf", "tiktoken:no_such_encoding"])
def test_unloadable_tokenizers_are_one_line_errors(spec: str) -> None:
    with pytest.raises(RulerError) as error:
        load_tokenizer(spec)
    assert "\n" not in str(error.value)


def test_a_hub_tokenizer_without_the_hub_is_one_line_at_once(monkeypatch, no_hub: str) -> None:
    """Not in the cache, and the hub unreachable or switched off: transformers (whose hub client retries for a
    minute) is never asked, and the error is one line."""
    import ruler.tokenizers

    asked = []
    monkeypatch.setattr(ruler.tokenizers, "_auto_tokenizer", lambda source, **options: asked.append(source))
    with pytest.raises(RulerError) as error:
        load_tokenizer("someone/no-such-tokenizer")
    said = str(error.value)
    assert "\n" not in said and said.startswith("cannot load tokenizer 'someone/no-such-tokenizer': it is not in "
                                                "the local cache and ")
    assert no_hub in said and asked == []
