"""evaluate(candidate, suite, embedder) -> Result: the one place a score is computed.

The flow is one way: predict (cached by the candidate kinds that cost money) → embed predictions and
truths through the store → per-row SCS → bootstrap CI. Empty predictions score 0 and are listed, because
Kaggle's scorer rejects a submission with any; a Result with empty predictions is never "complete".
Every Result also lists the rows Kaggle's scorer would read differently from the embedder
(`ScorerParity`: special-token strings, predictions over its 128 tokens), from one tokenizer pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from harness.candidates.base import Candidate
from harness.candidates.cache import predict_with_cache
from harness.data import Suite
from harness.embedders import Embedder, scorer_parity_of
from harness.embedding_cache import embed_texts
from harness.errors import LearnedFromSuiteError
from harness.metric import scs_rows
from harness.run import DEFAULT_BOOTSTRAP, NAMED, BootstrapSettings, RunRecord, RunSpec, SpecView
from harness.stats import ConfidenceInterval, bootstrap_mean
from harness.store import Store
from harness.verdict import Comparison, PredictedScore, ScorerParity, St5Estimate


@dataclass
class Result(SpecView):
    """One candidate scored on one suite with one embedder: the run's identity (`spec`) and its rows."""

    spec: RunSpec
    ids: list[str]
    predictions: list[str]
    truths: list[str]
    groups: list[str] | None
    scores: np.ndarray
    interval: ConfidenceInterval
    empty_prediction_ids: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    #: rows Kaggle's scorer would read differently from `embedder` (None: not checked)
    scorer_parity: ScorerParity | None = None

    @property
    def mean(self) -> float:
        return float(self.scores.mean())

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def complete(self) -> bool:
        return not self.empty_prediction_ids

    def scores_by_id(self) -> dict[str, float]:
        return {i: float(s) for i, s in zip(self.ids, self.scores)}

    def to_run_record(self, *, session: str = "", baseline: Comparison | None = None,
                      predicted_lb: PredictedScore | None = None,
                      st5_estimate: St5Estimate | None = None) -> RunRecord:
        """The store's row for this result (the one place a RunRecord is built from a Result): the same
        identity, the summary of the rows, and the verdicts."""
        return RunRecord(spec=self.spec, n=self.n, mean=self.mean, ci_low=self.interval.low,
                         ci_high=self.interval.high, n_empty=len(self.empty_prediction_ids),
                         seconds=sum(self.timings.values()), baseline=baseline, session=session,
                         scorer_parity=self.scorer_parity, predicted_lb=predicted_lb, st5_estimate=st5_estimate)


def predict_rows(candidate: Candidate, suite: Suite, store: Store | None, *,
                 on_progress: Callable[[int, int], None] | None = None) -> list[str]:
    """The candidate's answer to every row of `suite`, in order: preflight first (a broken endpoint or model
    stops before any row), then the prediction cache. Scoring and `prh predict` both answer rows here, so a
    submission is written by exactly the code that was scored. A missing or non-text answer is "" (the
    callers report empty answers by id)."""
    preflight = getattr(candidate, "preflight", None)
    if preflight is not None:
        preflight()
    predictions = predict_with_cache(candidate, suite.samples, store, on_progress=on_progress)
    if len(predictions) != len(suite):
        raise RuntimeError(f"candidate '{candidate.name}' returned {len(predictions)} predictions for {len(suite)} rows")
    return [p if isinstance(p, str) else "" for p in predictions]


def evaluate(
    candidate: Candidate,
    suite: Suite,
    embedder: Embedder,
    *,
    store: Store | None = None,
    bootstrap: BootstrapSettings = DEFAULT_BOOTSTRAP,
    signed: bool = False,
    suite_kind: str = NAMED,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> Result:
    """Score `candidate` on `suite`. `on_progress(stage, done, total)` reports long work. `suite_kind` says
    whether the suite is one of the suites file's (NAMED) or an ad-hoc data file (FILE): part of the run's
    identity, since ad-hoc runs are never ranked with named ones."""
    timings: dict[str, float] = {}
    learned_from = set(getattr(candidate, "train_suites", ()) or ())
    if suite.name in learned_from:
        raise LearnedFromSuiteError(f"candidate '{candidate.name}' learned from suite '{suite.name}' (its train suites: "
                          f"{', '.join(sorted(learned_from))}); scoring it there would measure memorisation")
    started = time.perf_counter()
    predict_progress = (lambda done, total: on_progress("predict", done, total)) if on_progress else None
    predictions = predict_rows(candidate, suite, store, on_progress=predict_progress)
    timings["predict"] = time.perf_counter() - started

    empty = [s.id for s, p in zip(suite.samples, predictions) if not p.strip()]
    started = time.perf_counter()
    parity = scorer_parity_of(embedder, suite.ids, predictions)
    timings["parity"] = time.perf_counter() - started
    truths = suite.prompts
    started = time.perf_counter()
    texts = [p for p in predictions if p.strip()] + truths
    progress = (lambda done, total: on_progress("embed", done, total)) if on_progress else None
    vectors = embed_texts(texts, embedder, store, on_progress=progress)
    timings["embed"] = time.perf_counter() - started

    started = time.perf_counter()
    n_answered = len(texts) - len(truths)
    truth_vectors = vectors[n_answered:]
    prediction_vectors = np.zeros_like(truth_vectors)  # empty answers: zero vector → score 0
    answered = np.array([bool(p.strip()) for p in predictions])
    prediction_vectors[answered] = vectors[:n_answered]
    scores = scs_rows(prediction_vectors, truth_vectors, signed=signed)
    interval = bootstrap_mean(scores, groups=suite.groups, confidence=bootstrap.confidence,
                              n_resamples=bootstrap.n_resamples, method=bootstrap.method, seed=bootstrap.seed)
    timings["score"] = time.perf_counter() - started
    spec = RunSpec(candidate=candidate.name, candidate_fingerprint=candidate.fingerprint, suite=suite.name,
                   suite_fingerprint=suite.fingerprint, embedder=embedder.name,
                   embedder_fingerprint=embedder.fingerprint, comparable_with_kaggle=embedder.comparable_with_kaggle,
                   candidate_spec=getattr(candidate, "spec", candidate.name), suite_kind=suite_kind, signed=signed,
                   bootstrap=replace(bootstrap, method=interval.method, confidence=interval.confidence))
    return Result(spec=spec, ids=suite.ids, predictions=predictions, truths=truths, groups=suite.groups,
                  scores=scores, interval=interval, empty_prediction_ids=empty, timings=timings,
                  scorer_parity=parity)
