"""Probes scored on a suite: one per-row score column per probe, computed as cheaply as the kinds allow.

Constant probes answer one string for every row, so their scores need one vector per probe, not one per
row: every constant probe of a calibration is embedded in ONE embedding call (through the store, so a
second calibration embeds nothing), and the per-row scores are that vector's SCS against each row's
truth (harness.metric's batched form). Template and candidate probes go through `harness.evaluation` like
any candidate (their answers differ by row).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from harness.candidates.base import Candidate
from harness.data import Suite
from harness.embedders import Embedder
from harness.embedding_cache import embed_texts
from harness.evaluation import BootstrapSettings, evaluate
from harness.leaderboard.book import Probe
from harness.metric import scs_matrix
from harness.store import Store

#: evaluate()'s own interval is not used here (the calibration resamples all probes together)
_NO_INTERVAL = BootstrapSettings(n_resamples=1, method="percentile")


@dataclass(frozen=True)
class ProbeScores:
    """Per-row scores of probes on one suite: `scores[:, j]` is probe `names[j]`'s score on each row;
    `answers[j]` what it answered (one string for a constant, one per row otherwise)."""

    names: tuple[str, ...]
    scores: np.ndarray
    answers: tuple[tuple[str, ...], ...]
    n_empty: tuple[int, ...]
    seconds: float
    embedding_calls: int

    @property
    def means(self) -> np.ndarray:
        return self.scores.mean(axis=0)


class _CountingEmbedder:
    """The embedder, counting its calls (the constants of a calibration must cost at most one)."""

    def __init__(self, embedder: Embedder) -> None:
        self.inner = embedder
        self.name, self.fingerprint = embedder.name, embedder.fingerprint
        self.comparable_with_kaggle = embedder.comparable_with_kaggle
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        return self.inner.embed(texts)


def constant_scores(texts: Sequence[str], suite: Suite, embedder: Embedder, store: Store | None) -> tuple[np.ndarray, int]:
    """(rows × texts) SCS of each constant text against each row's truth, and how many embedding calls the
    constants cost (1 when any was new, else 0: they came from the store). Truths are embedded (or read)
    through the store as evaluate() does."""
    truths = embed_texts(suite.prompts, embedder, store).astype(np.float64)
    counting = _CountingEmbedder(embedder)
    vectors = embed_texts(list(texts), counting, store, chunk_seconds=None).astype(np.float64)
    # SCS is symmetric; truths first gives (rows × texts) in the product order the stored models were
    # fitted with, bit for bit (a transposed product may round differently)
    return scs_matrix(truths, vectors), counting.calls


def score_probes(probes: Sequence[Probe], suite: Suite, embedder: Embedder, *, store: Store | None = None,
                 resolve: Callable[[str], Candidate] | None = None) -> ProbeScores:
    """Score every probe on `suite` (see the module docstring); `resolve` builds candidate-spec probes."""
    started = time.perf_counter()
    n = len(suite)
    columns: list[np.ndarray | None] = [None] * len(probes)
    answers: list[tuple[str, ...]] = [()] * len(probes)
    empty = [0] * len(probes)
    constant = [i for i, p in enumerate(probes) if p.kind == "constant"]
    calls = 0
    if constant:
        matrix, calls = constant_scores([probes[i].submission for i in constant], suite, embedder, store)
        for column, i in enumerate(constant):
            columns[i] = matrix[:, column]
            answers[i] = (probes[i].submission,)
    for i, probe in enumerate(probes):
        if columns[i] is not None:
            continue
        result = evaluate(probe.candidate(resolve), suite, embedder, store=store, bootstrap=_NO_INTERVAL)
        columns[i] = np.asarray(result.scores, dtype=np.float64)
        answers[i] = tuple(result.predictions)
        empty[i] = len(result.empty_prediction_ids)
    scores = np.column_stack(columns) if columns else np.zeros((n, 0))
    return ProbeScores(tuple(p.name for p in probes), scores, tuple(answers), tuple(empty),
                       time.perf_counter() - started, calls)
