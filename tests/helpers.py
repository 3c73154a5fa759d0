"""Real tokenizers built offline for the tests: trained on the shipped corpus, never downloaded."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

from generators.resources import DATA_DIR

#: a token count made apart from ruler: (text, add the tokenizer's own BOS/EOS) -> tokens
Counter = Callable[[str, bool], int]

LLAMA_STYLE_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start|>{{ m['role'] }}\n{{ m['content'] }}"
    "{% if not loop.last %}<|end|>\n{% endif %}{% endfor %}"
)


def corpus_text(limit: int = 400_000) -> str:
    with gzip.open(DATA_DIR / "austen.jsonl.gz", "rt") as handle:
        return json.loads(handle.readline())["text"][:limit]


def train_tokenizer(path: Path) -> Path:
    """A SentencePiece-style BPE (Metaspace, BOS added by the post-processor) with a chat template, saved as a
    transformers folder: the `--tokenizer FOLDER` path, and boundary merges unlike byte-level BPE's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    specials = ["<unk>", "<s>", "</s>", "<|start|>", "<|end|>"]
    trainer = trainers.BpeTrainer(vocab_size=6000, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator([corpus_text(), " ".join(word_lists())], trainer)
    backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>",
                                        unk_token="<unk>", additional_special_tokens=specials[3:])
    tokenizer.chat_template = LLAMA_STYLE_TEMPLATE
    tokenizer.save_pretrained(path)
    return path


def build_tiktoken():
    """A tiktoken encoding from a byte-level BPE trained here (GPT-2's pattern; ranks in merge order)."""
    import tiktoken
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=8000, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    backend.train_from_iterator([corpus_text(), " ".join(word_lists())], trainer)
    to_byte = {char: byte for byte, char in bytes_to_unicode().items()}
    vocab = sorted(backend.get_vocab().items(), key=lambda item: item[1])
    ranks = {bytes(to_byte[char] for char in token): rank for rank, (token, _) in enumerate(vocab)}
    pattern = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
    return tiktoken.Encoding("test-bpe", pat_str=pattern, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": len(ranks)})


def llama_cpp_counter(gguf: Path) -> Counter:
    """llama.cpp's own tokenizer (what llama-server counts with), read from the GGUF's vocabulary alone."""
    from llama_cpp import Llama

    model = Llama(model_path=str(gguf), vocab_only=True, verbose=False)
    return lambda text, add_special: len(model.tokenize(text.encode(), add_bos=add_special, special=True))


def tokenizers_counter(folder: Path) -> Counter:
    """The folder's `tokenizer.json` read by the `tokenizers` library directly, its post-processor adding the BOS.
    ruler counts such a folder with the same library: what this checks apart from ruler is its loading, its cache
    and its count of added tokens, not the BPE itself (llama.cpp and the tiktoken ranks do that)."""
    from tokenizers import Tokenizer

    backend = Tokenizer.from_file(str(folder / "tokenizer.json"))
    return lambda text, add_special: len(backend.encode(text, add_special_tokens=add_special))


def bpe_counter(encoding) -> Counter:
    """A tiktoken encoding's ranks run by Hugging Face's BPE (merges rebuilt from the ranks) instead of tiktoken."""
    from tokenizers import AddedToken
    from transformers.convert_slow_tokenizer import TikTokenConverter

    class FromRanks(TikTokenConverter):
        def load_tiktoken_bpe(self, _url: str) -> dict[bytes, int]:
            return encoding._mergeable_ranks

    backend = FromRanks(pattern=encoding._pat_str).converted()
    backend.add_special_tokens([AddedToken(token, special=True) for token in encoding._special_tokens])
    return lambda text, add_special: len(backend.encode(text, add_special_tokens=add_special))


def word_lists() -> list[str]:
    with gzip.open(DATA_DIR / "wonderwords.json.gz", "rt") as handle:
        return [word for words in json.load(handle).values() for word in words]


def chromium() -> tuple[str | None, str | None]:
    """The Chromium (or Chrome) binary and its driver found on PATH, None for each missing."""
    import shutil

    binary = next((path for name in ("chromium", "chromium-browser", "google-chrome") if (path := shutil.which(name))),
                  None)
    return binary, shutil.which("chromedriver")


def headless_chromium(binary: str, driver: str, height: int = 900, *arguments: str):
    """A selenium session of a headless Chromium 1200 pixels wide, on this machine's binaries only."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size=1200,{height}",
                     *arguments):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))
