"""A scored result's predicted leaderboard score, through the stored leaderboard model.

- `predicted_lb`: where `baselines/<embedder>/<suite>.leaderboard.json` exists and was fitted on this
  suite and this embedder build, the candidate's per-row scores go through the stored map; the constant
  probes it was fitted on are scored again on the same rows (one embedding call, then from the store) and
  the row-dependent ones are read from the file, so that the interval resamples the same rows for the
  probes and the candidate. The result is
  information beside the local score, labelled with the model's leave-one-probe-out error; the gate
  stays the paired test on local rows.
- `model_note`: why a result has none.
- `st5_estimate`: where `baselines/<embedder>/st5_scale.json` exists for this embedder build, the mean on
  Kaggle's scale with its interval, or the reason it is out of the map's domain (`scale`).
The "not judged" verdict for answers the embedder cannot see is `usable_probes.not_judged`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from harness.candidates.base import Candidate
from harness.data import Suite
from harness.embedders import Embedder
from harness.evaluation import Result
from harness.leaderboard.book import Probe
from harness.leaderboard.model import predict
from harness.leaderboard.model_file import load_model, model_path
from harness.leaderboard.scores import score_probes
from harness.leaderboard.usable_probes import describe_hits, scorer_specific_hits
from harness.store import Store
from harness.verdict import PredictedScore, St5Estimate

#: probe means recomputed at prediction time must equal the stored ones (float32 embeddings: ~1e-7)
MEAN_TOLERANCE = 1e-4


def model_note(baselines_dir: str | Path, result: Result) -> str:
    """Why a result has no predicted leaderboard score (for `prh score --json`)."""
    model = load_model(baselines_dir, result.embedder, result.suite)
    if model is None:
        return (f"no leaderboard model for suite '{result.suite}' under embedder '{result.embedder}' "
                f"({model_path(baselines_dir, result.embedder, result.suite)}); fit one with "
                "prh calibrate --write-model")
    return model.mismatch(result.suite_fingerprint, result.embedder_fingerprint) or ""


def predicted_lb(baselines_dir: str | Path, result: Result, suite: Suite, embedder: Embedder, *,
                 store: Store | None = None, resolve: Callable[[str], Candidate] | None = None,
                 declared: Sequence[str] = ()) -> PredictedScore | None:
    """The predicted leaderboard score of `result`, or None when no usable model exists (see `model_note`)."""
    model = load_model(baselines_dir, result.embedder, result.suite)
    if model is None or model.mismatch(result.suite_fingerprint, result.embedder_fingerprint):
        return None
    fit = model.fit
    fitted = fit.fitted
    rescored = [p for p in fitted if p.row_scores is None]
    scored = score_probes([Probe(p.probe, p.submission, p.leaderboard_score, kind=p.kind) for p in rescored], suite,
                          embedder, store=store, resolve=resolve)
    columns = dict(zip((p.probe for p in rescored), scored.scores.T))
    for p in fitted:
        if p.row_scores is not None:
            if set(p.row_scores) != set(result.ids):
                return None  # rows changed (the fingerprint check catches this first)
            columns[p.probe] = np.array([p.row_scores[i] for i in result.ids])
    scores = np.column_stack([columns[p.probe] for p in fitted])
    drift = max(abs(float(scores[:, j].mean()) - p.local_mean) for j, p in enumerate(fitted))
    if drift > MEAN_TOLERANCE:
        return None  # the probes no longer score what the model says: a stale model predicts nothing
    prediction = predict(fit.map, scores, [p.leaderboard_score for p in fitted], result.scores,
                         x_range=fit.x_range, groups=result.groups, settings=fit.settings)
    notes = [model.label, *prediction.notes]
    if not result.comparable_with_kaggle:
        hits = scorer_specific_hits(result.predictions, declared)
        if hits:
            notes.append(f"its answers contain {describe_hits(hits, result.n)}, which {result.embedder} cannot "
                         "judge: probes like that were set aside, so this prediction is outside what the model "
                         "was validated on")
    return PredictedScore(
        estimate=prediction.estimate, low=prediction.low, high=prediction.high,
        model=f"{model.describe()}; {model_path(baselines_dir, model.embedder, model.suite)}",
        probe_book=f"{model.probe_book} ({model.probe_book_hash})", n_probes=len(fitted), loo_mae=fit.loo_mae,
        loo_max_error=fit.loo_max_error, loo_spearman=fit.loo_spearman, extrapolating=prediction.extrapolating,
        set_aside=tuple(f"{s.probe}: {s.reason}" for s in fit.set_aside), note="; ".join(n for n in notes if n),
        loo_mae_mean_alone=fit.loo_mae_constant)


def st5_estimate(baselines_dir: str | Path, result: Result, embedder: Embedder, *, store: Store | None = None,
                 declared: Sequence[str] = ()) -> St5Estimate | None:
    """The result's mean estimated on Kaggle's scale through the embedder's st5 scale map
    (`baselines/<embedder>/st5_scale.json`), or None when the embedder has no usable map. Out of the map's
    domain the estimate is None and `in_domain` false, with the reason (`scale.domain_problem`)."""
    from harness.embedding_cache import embed_texts
    from harness.leaderboard.scale import domain_problem, estimate_mean
    from harness.leaderboard.scale_file import load_scale_map, scale_path

    if result.comparable_with_kaggle:
        return None  # already on Kaggle's scale
    scale = load_scale_map(baselines_dir, result.embedder)
    if scale is None or scale.mismatch(result.embedder_fingerprint):
        return None
    source = f"{scale.describe()}; {scale_path(baselines_dir, result.embedder)}"
    answered = [p for p in result.predictions if p.strip()]
    vectors = embed_texts(answered + result.truths, embedder, store)  # both in the store since evaluate()
    problem = domain_problem(scale, result.scores, result.predictions, vectors[:len(answered)],
                             vectors[len(answered):], truths=result.truths, declared=declared)
    if problem is not None:
        return St5Estimate(None, None, None, False, f"no estimate on Kaggle's scale: {problem}", source)
    interval = estimate_mean(scale, result.scores, groups=result.groups)
    note = (f"estimate of the sentence-t5-base (Kaggle) mean from {result.embedder}'s per-row scores, not a "
            f"measurement: ±{interval.shift_sd:.3f} shift between generators (cross-file validation) and "
            f"±{interval.sampling_se:.3f} row sampling (1 sd each)")
    return St5Estimate(interval.estimate, interval.low, interval.high, True, note, source)
