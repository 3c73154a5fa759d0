"""Token counts for generators: batched, memoised for fixed lists, and cached on disk for whole corpora.

The essay corpus is tokenized once per tokenizer (keyed by its fingerprint and the corpus hash); afterwards every
sample's haystack size is a prefix-sum lookup."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ruler.files import write_atomic
from ruler.tokenizers import Tokenizer, cache_dir

#: texts tokenized together when counting them in context (bounds the token offsets held at once)
BATCH = 512


class TokenCounter:
    """Implements `generators.base.Counter` over the model's tokenizer."""

    def __init__(self, tokenizer: Tokenizer, root: Path | None = None) -> None:
        self.tokenizer = tokenizer
        self._root = (root or cache_dir()) / "counts" / tokenizer.fingerprint[:32]
        self._memo: dict[str, np.ndarray] = {}
        self._corpora: dict[tuple[int, str], tuple[Sequence[str], np.ndarray]] = {}

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        return self.tokenizer.count_batch(texts) if texts else []

    def costs(self, key: str, texts: Callable[[], list[str]], persist: bool = False) -> np.ndarray:
        return self._memoised(key, lambda: np.asarray(self.count_batch(texts()), dtype=np.int64), persist)

    def costs_between(self, key: str, texts: Callable[[], list[str]], joint: str) -> np.ndarray:
        """Tokens starting in each text where each stands between two `joint`s and among the others, from
        tokenizations of a batch at a time with a neighbour on either side (the list taken as a circle; kept on
        disk): a document's count between its label and the next, merges at both ends included."""
        def batch(items: Sequence[str], start: int, stop: int) -> np.ndarray:
            lead, group = items[start - 1] + joint, items[start:stop]
            starts = len(lead) + np.concatenate([[0], np.cumsum([len(text) + len(joint) for text in group])[:-1]])
            ends = starts + np.fromiter(map(len, group), dtype=np.int64, count=len(group))
            tokens = self.tokenizer.token_starts(lead + joint.join(group) + joint + items[stop % len(items)])
            return (np.searchsorted(tokens, ends) - np.searchsorted(tokens, starts)).astype(np.int64)

        def count() -> np.ndarray:
            items = texts()
            parts = [batch(items, start, min(start + BATCH, len(items))) for start in range(0, len(items), BATCH)]
            return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

        return self._memoised(f"in context:{joint}:{key}", count, persist=True)

    def _memoised(self, key: str, compute: Callable[[], np.ndarray], persist: bool) -> np.ndarray:
        """Counts computed once per key in this process (and kept on disk if `persist`)."""
        if key not in self._memo:
            self._memo[key] = self._stored(key, compute) if persist else compute()
        return self._memo[key]

    def corpus_costs(self, units: Sequence[str], sep: str) -> np.ndarray:
        """Keyed by content; a corpus object seen before is looked up without hashing it again."""
        seen = self._corpora.get((id(units), sep))
        if seen is None or seen[0] is not units:
            key = "corpus:" + hashlib.sha256((sep + "\0" + "\0".join(units)).encode()).hexdigest()
            seen = self._corpora[(id(units), sep)] = (units, self._stored(key, lambda: self._in_context(units, sep)))
        return seen[1]

    def _in_context(self, units: Sequence[str], sep: str) -> np.ndarray:
        """Tokenize the units joined, between the period's last unit and its first again (so every unit has its
        neighbours, as when the haystack repeats), and give each token to the unit where it starts, the separator
        before a unit counting as the unit's: exact, merges across boundaries included."""
        lead = units[-1] + sep
        text = lead + sep.join(units) + sep + units[0]
        lengths = np.fromiter((len(unit) + len(sep) for unit in units), dtype=np.int64, count=len(units))
        boundaries = len(lead) - len(sep) + np.concatenate([[0], np.cumsum(lengths)])
        cum = np.searchsorted(self.tokenizer.token_starts(text), boundaries, side="left").astype(np.int64)
        return cum - cum[0]

    def _stored(self, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        path = self._root / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".npy")
        if path.is_file():
            return np.load(path)
        values = compute()
        buffer = io.BytesIO()
        np.save(buffer, values)
        write_atomic(path, buffer.getvalue())
        return values
