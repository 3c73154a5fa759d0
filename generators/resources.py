"""The data generators draw from: haystack corpora, word lists and QA datasets, loaded once and hashed.

Defaults work offline from files the package ships (generators/data/, see its NOTICE): six public-domain Jane
Austen novels for the essay haystack, the wonderwords lists RULER uses for keys and words (plus SCOWL words when
a long common-words list needs more), and small real samples of SQuAD v2 dev and HotpotQA dev (distractor).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from generators.base import Counter
from ruler.errors import RulerError
from ruler.hub import cached_or_hub

DATA_DIR = Path(__file__).parent / "data"
DEFAULT_QA_SOURCES = {"squad": "rajpurkar/squad_v2", "hotpotqa": "hotpotqa/hotpot_qa"}
BUNDLED_QA = {"squad": "squad_v2_dev_sample.json.gz", "hotpotqa": "hotpotqa_dev_distractor_sample.json.gz"}
QA_OPTION = {"squad": "--squad", "hotpotqa": "--hotpotqa"}

# A sentence ends with . ! or ? (maybe closed by quotes or brackets); the next word opens with a capital or quote.
_SENTENCE_END = re.compile(r"[.!?][\"'\u201d\u2019)\]]*$")
_SENTENCE_START = re.compile(r"^[\"'\u201c\u2018(\[]*[A-Z0-9]")


@dataclass(frozen=True)
class Corpus:
    """A haystack text as RULER uses it: whitespace-normalised words, repeated when exhausted."""

    name: str
    words: list[str]
    sha256: str

    @cached_property
    def sentence_starts(self) -> np.ndarray:
        """Indices of the words that open a sentence (needles go in front of them, as RULER's sent_tokenize)."""
        starts = [0] + [
            i for i in range(1, len(self.words))
            if _SENTENCE_END.search(self.words[i - 1]) and _SENTENCE_START.match(self.words[i])
        ]
        return np.asarray(starts, dtype=np.int64)


@dataclass(frozen=True)
class QAItem:
    query: str
    answers: list[str]
    gold: list[int]
    #: documents from the same article, drawn as distractors first (RULER's SQuAD rule)
    related: list[int]


@dataclass(frozen=True)
class QADataset:
    name: str
    source: str
    docs: list[str]
    items: list[QAItem]
    sha256: str


def _sha256_text(texts: Iterable[str]) -> str:
    return hashlib.sha256("\0".join(texts).encode()).hexdigest()


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")


def load_corpus(path: Path | None) -> Corpus:
    """The essay haystack: the shipped Austen novels, or `--haystack-file` (RULER's PaulGrahamEssays.json, a .txt,
    or JSONL with a `text` field)."""
    path = path or DATA_DIR / "austen.jsonl.gz"
    if not path.is_file():
        raise RulerError(f"haystack file not found: {str(path)!r} (--haystack-file takes .txt, .json or .jsonl)")
    name = path.name.removesuffix(".gz")
    try:
        with _open_text(path) as handle:
            if name.endswith(".jsonl"):
                texts = [json.loads(line)["text"] for line in handle if line.strip()]
            elif name.endswith(".json"):
                loaded = json.load(handle)
                texts = [loaded["text"]] if isinstance(loaded, dict) else [entry["text"] for entry in loaded]
            else:
                texts = [handle.read()]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as error:
        raise RulerError(f"cannot read haystack file {str(path)!r}: expected a `text` field ({error})") from None
    words = " ".join(texts).split()
    if len(words) < 100:
        raise RulerError(f"haystack file {str(path)!r} holds {len(words)} words; it needs at least 100")
    return Corpus(name=name, words=words, sha256=_sha256_text(words))


def load_qa(name: str, source: str) -> QADataset:
    """SQuAD v2 dev or HotpotQA dev (distractor): `sample` (shipped), a local RULER-format json, or a hub id."""
    if source == "sample":
        path = DATA_DIR / BUNDLED_QA[name]
    else:
        path = Path(source)
    if path.is_file():
        with _open_text(path) as handle:
            try:
                raw = json.load(handle)
            except json.JSONDecodeError as error:
                raise RulerError(f"cannot read {name} file {str(path)!r}: {error}") from None
        docs, items = (_squad_from_ruler if name == "squad" else _hotpotqa_from_ruler)(raw)
    elif "/" in source and not source.startswith((".", "/")) and not source.endswith(".json"):
        docs, items = _from_hub(name, source)
    else:
        raise RulerError(f"{name} data not found at {source!r}: pass {QA_OPTION[name]} FILE (RULER's {name}.json), "
                         f"a hub id, or `{QA_OPTION[name]} sample` for the bundled sample")
    if not items:
        raise RulerError(f"{name} data from {source!r} holds no answerable questions")
    return QADataset(name, source, docs, items, _sha256_text(docs + [json.dumps(i.__dict__) for i in items]))


def _index_docs(texts: Iterable[str]) -> tuple[list[str], dict[str, int]]:
    docs = sorted(set(texts))
    return docs, {doc: i for i, doc in enumerate(docs)}


def _squad_items(articles: list[tuple[list[str], list[tuple[str, str, list[str]]]]]) -> tuple[list[str], list[QAItem]]:
    """RULER's read_squad: articles as (paragraphs, [(paragraph, question, answers)]); unanswerable ones dropped."""
    docs, index = _index_docs(p for paragraphs, _ in articles for p in paragraphs)
    items = []
    for paragraphs, questions in articles:
        article_docs = [index[p] for p in paragraphs]
        for paragraph, query, answers in questions:
            if answers:
                gold = index[paragraph]
                items.append(QAItem(query, answers, [gold], [d for d in article_docs if d != gold]))
    return docs, items


def _squad_from_ruler(raw: dict[str, Any]) -> tuple[list[str], list[QAItem]]:
    try:
        articles = [
            ([p["context"] for p in article["paragraphs"]],
             [(p["context"], qa["question"], [] if qa.get("is_impossible") else [a["text"] for a in qa["answers"]])
              for p in article["paragraphs"] for qa in p["qas"]])
            for article in raw["data"]
        ]
    except (KeyError, TypeError) as error:
        raise RulerError(f"not SQuAD v2 json (RULER's squad.json format): missing {error}") from None
    return _squad_items(articles)


def _hotpotqa_from_ruler(raw: list[dict[str, Any]]) -> tuple[list[str], list[QAItem]]:
    try:
        examples = [(e["question"], e["answer"], [f"{title}\n{''.join(sents)}" for title, sents in e["context"]])
                    for e in raw]
    except (KeyError, TypeError, ValueError) as error:
        raise RulerError(f"not HotpotQA json (RULER's hotpotqa.json format): missing {error}") from None
    return _hotpotqa_items(examples)


def _hotpotqa_items(examples: list[tuple[str, str, list[str]]]) -> tuple[list[str], list[QAItem]]:
    """RULER's read_hotpotqa: every paragraph of the example (supporting and distractor) is gold context."""
    docs, index = _index_docs(doc for _, _, paragraphs in examples for doc in paragraphs)
    return docs, [QAItem(query, [answer], [index[d] for d in paragraphs], []) for query, answer, paragraphs in examples]


def _from_hub(name: str, hub_id: str) -> tuple[list[str], list[QAItem]]:
    """Load through `datasets` (cached by it) and convert hub rows to RULER's structure; a dataset neither cached
    nor reachable is one line at once, not a minute of the hub client's retries."""
    fix = f"pass {QA_OPTION[name]} FILE (RULER's {name}.json) or `{QA_OPTION[name]} sample` for the bundled sample"
    rows = cached_or_hub(lambda local: _hub_rows(name, hub_id, fix), hub_id, f"{name} dataset", "dataset", fix)
    return squad_from_rows(rows) if name == "squad" else hotpotqa_from_rows(rows)


def _hub_rows(name: str, hub_id: str, fix: str) -> Iterable[dict[str, Any]]:
    try:
        import datasets

        if name == "squad":
            return datasets.load_dataset(hub_id, split="validation")
        return datasets.load_dataset(hub_id, "distractor", split="validation")
    except Exception as error:  # datasets raises many kinds when offline or given a bad id
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise RulerError(f"cannot load {name} from the hub ({hub_id!r}: {first}); {fix}") from None


def squad_from_rows(rows: Iterable[dict[str, Any]]) -> tuple[list[str], list[QAItem]]:
    """Hub rows of rajpurkar/squad_v2 (title, context, question, answers{text}) in RULER's structure."""
    articles: dict[str, tuple[list[str], list[tuple[str, str, list[str]]]]] = {}
    for row in rows:
        paragraphs, questions = articles.setdefault(row["title"], ([], []))
        if row["context"] not in paragraphs:
            paragraphs.append(row["context"])
        questions.append((row["context"], row["question"], list(row["answers"]["text"])))
    return _squad_items(list(articles.values()))


def hotpotqa_from_rows(rows: Iterable[dict[str, Any]]) -> tuple[list[str], list[QAItem]]:
    """Hub rows of hotpotqa/hotpot_qa distractor (question, answer, context{title, sentences})."""
    return _hotpotqa_items([
        (row["question"], row["answer"],
         [f"{title}\n{''.join(sents)}" for title, sents in zip(row["context"]["title"], row["context"]["sentences"])])
        for row in rows
    ])


class Resources:
    """Everything generators read, loaded lazily (a NIAH-only run never touches the QA data)."""

    def __init__(self, counter: Counter, haystack_file: Path | None = None,
                 qa_sources: dict[str, str] | None = None, seed: int = 42) -> None:
        self.counter = counter
        #: the run's seed, for the data drawn once and shared by its samples (the distractor pools)
        self.seed = seed
        self._haystack_file = haystack_file
        self._qa_sources = {**DEFAULT_QA_SOURCES, **(qa_sources or {})}
        self._qa: dict[str, QADataset] = {}
        self._derived: dict[tuple, Any] = {}

    @cached_property
    def essay(self) -> Corpus:
        return load_corpus(self._haystack_file)

    @cached_property
    def _wonderwords(self) -> dict[str, list[str]]:
        """RULER's lists without their seven multi-word entries (`contact lens`, `ad hoc` ...): a space inside a key
        or a list item would make one word read as two."""
        with gzip.open(DATA_DIR / "wonderwords.json.gz", "rt") as handle:
            return {kind: [word for word in words if " " not in word] for kind, words in json.load(handle).items()}

    def words(self, kind: str) -> list[str]:
        """`nouns`, `adjectives`, RULER's `common` list (nouns, adjectives, verbs) or the SCOWL `extra` words."""
        if kind == "extra":
            with gzip.open(DATA_DIR / "scowl_words.txt.gz", "rt") as handle:
                return handle.read().split()
        if kind == "common":
            lists = self._wonderwords
            return sorted(set(lists["nouns"] + lists["adjectives"] + lists["verbs"]))
        return self._wonderwords[kind]

    def derived(self, key: tuple, make: Callable[[], Any]) -> Any:
        """Data made from the shipped lists and counted once per process, then shared by every sample (the
        distractor lines' pools)."""
        if key not in self._derived:
            self._derived[key] = make()
        return self._derived[key]

    def qa(self, name: str) -> QADataset:
        if name not in self._qa:
            if name not in DEFAULT_QA_SOURCES:
                raise RulerError(f"unknown QA dataset {name!r}: choose from {', '.join(DEFAULT_QA_SOURCES)}")
            self._qa[name] = load_qa(name, self._qa_sources[name])
        return self._qa[name]

    def describe(self, needs_essay: bool, qa_names: Iterable[str]) -> dict[str, str]:
        """Content hashes of the data a dataset used, for its manifest."""
        described = {"essay": f"{self.essay.name}:{self.essay.sha256[:16]}"} if needs_essay else {}
        for name in qa_names:
            dataset = self.qa(name)
            described[name] = f"{dataset.source}:{dataset.sha256[:16]}"
        return described
