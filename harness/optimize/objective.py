"""The mean-prompt objective: mean SCS of one constant prediction against a fixed set of true prompts.

With unit-normalised truth embeddings T (u×d, one row per *distinct* prompt, weighted by how many rows
hold it) and a candidate embedding c, mean SCS = Σ w_u |T_u · c|³: T is embedded once, and a batch of
candidates is scored by one matrix product. Candidate strings are embedded in batches through
`harness.embedding_cache.embed_texts`, so each unique string is embedded once ever (a rerun, or a second
search on the same embedder, reads them from the store), and a string met twice in one run is scored
from memory without even a store lookup.

The numbers equal what `harness.evaluate` computes for a constant candidate on the same rows (tested),
so a search optimises exactly the metric it is reported with.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from harness.embedders import Embedder
from harness.embedding_cache import embed_texts
from harness.errors import ConfigError
from harness.store import Store

#: A rejected candidate (over the length cap) scores this, so it can never win.
REJECTED = float("-inf")

TokenCounter = Callable[[Sequence[str]], list[int]]


def token_counter(embedder: Embedder) -> TokenCounter:
    """How many tokens the embedder's own tokenizer makes of each text (special tokens included), so the
    length cap is the one the embedder truncates at. Embedders without a tokenizer (test stubs) may give
    a `count_tokens(texts)` method; otherwise whitespace words + 2 are counted."""
    own = getattr(embedder, "count_tokens", None)
    if callable(own):
        return own
    load = getattr(embedder, "load", None)
    tokenizer = getattr(load(), "tokenizer", None) if callable(load) else None
    if tokenizer is not None:
        def count(texts: Sequence[str]) -> list[int]:
            if not texts:
                return []
            return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=True)["input_ids"]]
        return count
    return lambda texts: [len(text.split()) + 2 for text in texts]


class MeanScsObjective:
    """Scores constant prompts against `truths` (the train split's prompts; never the held-out ones).

    Args:
        truths: the true prompts, one per row (duplicates count once per row, as in the metric).
        embedder: what embeds truths and candidates; the objective is only comparable within it.
        store: the embedding cache (None: embed without caching).
        max_tokens: candidates longer than this many embedder tokens are rejected unscored: the scorer
            truncates there (128 tokens for sentence-t5), so words past the cap only look like progress.
        signed: keep the cosine's sign (as `harness.metric.scs_rows(signed=True)`); default |cos|³.
    """

    def __init__(self, truths: Sequence[str], embedder: Embedder, store: Store | None = None, *,
                 max_tokens: int | None = 128, signed: bool = False) -> None:
        if not truths:
            raise ConfigError("the objective needs at least one true prompt (the train split is empty)")
        if max_tokens is not None and max_tokens < 1:
            raise ConfigError(f"max_tokens must be >= 1, got {max_tokens}")
        distinct: dict[str, int] = {}
        for truth in truths:
            distinct[truth] = distinct.get(truth, 0) + 1
        self.embedder = embedder
        self.store = store
        self.max_tokens = max_tokens
        self.signed = signed
        self.n_rows = len(truths)
        self._weights = np.array(list(distinct.values()), dtype=np.float64) / len(truths)
        self._truths = _unit_rows(embed_texts(list(distinct), embedder, store))
        self._count_tokens = token_counter(embedder) if max_tokens is not None else None
        self._memo: dict[str, float] = {}
        #: distinct candidate strings scored (embedded or read from the store); rejected ones not counted
        self.evaluations = 0
        #: candidates rejected by the length cap
        self.rejected = 0

    def score_vectors(self, vectors: np.ndarray) -> np.ndarray:
        """Mean SCS of each candidate vector (one row each) against the truths: one matrix product."""
        cosines = np.clip(_unit_rows(vectors) @ self._truths.T, -1.0, 1.0)
        sharpened = np.abs(cosines) ** 3
        if self.signed:
            sharpened *= np.sign(cosines)
        return sharpened @ self._weights

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """Mean train SCS of each text (REJECTED for texts over the length cap), embedding the new ones in
        one batch through the store."""
        new = [t for t in dict.fromkeys(texts) if t not in self._memo]
        if new and self._count_tokens is not None:
            lengths = self._count_tokens(new)
            for text, length in zip(new, lengths):
                if length > self.max_tokens:
                    self._memo[text] = REJECTED
                    self.rejected += 1
            new = [t for t in new if t not in self._memo]
        if new:
            scores = self.score_vectors(embed_texts(new, self.embedder, self.store, chunk_seconds=None))
            self._memo.update(zip(new, scores.tolist()))
            self.evaluations += len(new)
        return np.array([self._memo[t] for t in texts], dtype=np.float64)

    def seen(self, text: str) -> bool:
        """Whether `text` was scored (or rejected) already in this run."""
        return text in self._memo


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero: cosine 0 with anything, as in the metric)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
