"""Retrieval candidate: answer with the prompt of the most similar (original, rewritten) pair in a
train suite.

The harness's first non-trivial candidate that runs offline: it embeds the train suite with the packaged
embedder (cached in the store like every embedding) and, for each row, finds its nearest neighbours.
A row's representation (`query`):
- "rewritten": the rewritten text alone;
- "pair": original and rewritten embeddings side by side (cosine = the mean of both cosines);
- "delta": the normalised difference rewritten − original, i.e. the *change* the prompt caused.
Measured (bench/retrieval.py, 600 public Gemma rows whose prompts are absent from the 3,331 train rows,
MiniLM scale): rewritten k=3 0.112, delta k=3 0.110, pair k=3 0.084, against 0.048 for the 0.63 mean
prompt; "rewritten" with k=3 is the default (best and cheapest).
A neighbour identical to the row being answered (same original and rewritten text) is never used, so a
train suite that overlaps the scored one cannot leak answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from harness.candidates.base import CandidateContext
from harness.candidates.cache import input_hash
from harness.data import Sample, Suite, load_suite
from harness.embedders import Embedder
from harness.embedding_cache import embed_texts
from harness.errors import ConfigError
from harness.hashing import json_fingerprint
from harness.store import Store

QUERY_KINDS = ("rewritten", "pair", "delta")


class RetrievalCandidate:
    def __init__(self, name: str, train: Suite, embedder: Embedder, *, k: int = 3, query: str = "rewritten",
                 joiner: str = " ", store: Store | None = None, spec: str | None = None) -> None:
        if query not in QUERY_KINDS:
            raise ConfigError(f"candidate '{name}': query must be one of {', '.join(QUERY_KINDS)}, not {query!r}")
        if k < 1:
            raise ConfigError(f"candidate '{name}': k must be at least 1")
        self.name, self.spec = name, spec or name
        self.train, self.embedder, self.k, self.query, self.joiner, self.store = train, embedder, k, query, joiner, store
        self.train_suites = frozenset({train.name})
        self.fingerprint = json_fingerprint({"kind": "retrieval", "train": train.fingerprint, "k": k, "query": query,
                                             "joiner": joiner, "embedder": embedder.fingerprint})
        self._index: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"RetrievalCandidate(name={self.name!r}, train={self.train.name!r}, k={self.k}, query={self.query!r})"

    def _represent(self, samples: Sequence[Sample]) -> np.ndarray:
        rewritten = embed_texts([s.rewritten_text for s in samples], self.embedder, self.store)
        if self.query == "rewritten":
            return rewritten
        original = embed_texts([s.original_text for s in samples], self.embedder, self.store)
        if self.query == "pair":
            return np.hstack([original, rewritten]) / np.sqrt(2.0)
        delta = rewritten - original
        norms = np.linalg.norm(delta, axis=1, keepdims=True)
        return delta / np.where(norms > 0, norms, 1.0)

    def neighbours(self, samples: Sequence[Sample]) -> np.ndarray:
        """Indices into the train suite, shape (len(samples), k), nearest first."""
        if self._index is None:
            self._index = self._represent(self.train.samples)
        similarity = self._represent(samples) @ self._index.T
        train_keys = np.array([input_hash(s) for s in self.train.samples])
        for row, sample in enumerate(samples):  # never answer a row with itself
            similarity[row, train_keys == input_hash(sample)] = -np.inf
        k = min(self.k, len(self.train))
        top = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(similarity, top, axis=1).argsort(axis=1)[:, ::-1]
        return np.take_along_axis(top, order, axis=1)

    def predict(self, samples: Sequence[Sample]) -> list[str]:
        if not samples:
            return []
        prompts = [s.rewrite_prompt for s in self.train.samples]
        # identical prompts among the neighbours are said once
        return [self.joiner.join(dict.fromkeys(prompts[i] for i in row)) for row in self.neighbours(samples)]


def from_config(name: str, entry: Mapping[str, Any], context: CandidateContext) -> RetrievalCandidate:
    from harness.candidates.schema import RetrievalEntry, validate_entry, where

    place = where(context.source, name)
    settings = validate_entry(RetrievalEntry, entry, place)
    if settings.train_suite not in context.suites:
        raise ConfigError(f"{place}: train_suite '{settings.train_suite}' is not a known suite; "
                          f"known: {', '.join(context.suites) or '(none)'}")
    return RetrievalCandidate(name, load_suite(context.suites[settings.train_suite]),
                              context.build_embedder(settings.embedder), k=settings.k, query=settings.query,
                              joiner=settings.joiner, store=context.store)
