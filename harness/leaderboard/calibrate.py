"""Calibration of one (suite, embedder): how well its local scores predict the leaderboard.

For each (suite, embedder), every usable probe of the book (harness.leaderboard.book) is scored on the
suite (harness.leaderboard.scores: all constant probes in one embedding call), then:

- the **correlation** across probes of their local mean SCS with their leaderboard scores: Spearman (does
  the suite rank them right?) and Pearson, each with a bootstrap interval; and the mean offset local −
  leaderboard (meaningful only for the Kaggle scorer's embedder; other embedders have their own scale);
- the **leaderboard model** (harness.leaderboard.model): the probes this embedder cannot judge set aside
  with their reasons, a map fitted on the rest, and its leave-one-probe-out error.

The correlation interval answers "how sure are we, given that the suite is a sample and the leaderboard is
noisy?": each resample draws the suite's rows (whole groups when it has groups) with replacement,
recomputes every probe's mean on those rows (paired: the same rows for all probes), and adds
N(0, leaderboard_noise²) to each leaderboard score (the public leaderboard moves about ±0.02 by noise
alone: sd 0.01 by default). It uses the project's one resampler (harness.stats), vectorised over resamples.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from harness.candidates.base import Candidate
from harness.data import Suite
from harness.embedders import Embedder, EmbedderChoice
from harness.errors import ConfigError, ModelUnavailableError
from harness.leaderboard.book import Probe, ProbeBook
from harness.leaderboard.model import (
    LEADERBOARD_NOISE_SD,
    MIN_PROBES,
    FitSettings,
    LeaderboardFit,
    fit_leaderboard,
)
from harness.leaderboard.model_file import LeaderboardModel, model_from_fit
from harness.leaderboard.scores import score_probes
from harness.leaderboard.usable_probes import SetAside, answer_rules, embedder_vocabulary, vocabulary_share
from harness.stats import percentile_interval, resample_means, row_pearson, row_spearman
from harness.store import Store


@dataclass(frozen=True)
class Correlation:
    """A correlation across probes with its bootstrap interval; `defined` is the share of resamples in
    which it was defined (all-equal means in a resample have no ranking)."""

    estimate: float
    low: float
    high: float
    confidence: float
    defined: float


@dataclass(frozen=True)
class ProbeMean:
    """One scored probe on the suite, as the calibration report shows it: its local mean with a percentile
    interval over the row resamples (its place in the fitted model, if any, is a `model.ProbeFit`)."""

    probe: str
    leaderboard_score: float
    mean: float
    ci_low: float
    ci_high: float
    n_empty: int
    vocabulary_share: float | None = None


@dataclass(frozen=True)
class CalibrationRow:
    """The probes on one suite with one embedder: correlations, and the leaderboard model fitted there
    (`model`, or why none could be: `refused`)."""

    suite: str
    suite_fingerprint: str
    n_rows: int
    n_groups: int | None
    embedder: str
    embedder_fingerprint: str
    comparable_with_kaggle: bool
    probes: tuple[ProbeMean, ...]
    spearman: Correlation
    pearson: Correlation
    mean_offset: float
    mean_abs_offset: float
    refused: str | None = None
    excluded: tuple[dict, ...] = ()
    seconds: float = 0.0
    embedding_calls: int = 0
    model: LeaderboardModel | None = None

    @property
    def fit(self) -> LeaderboardFit | None:
        """The fitted model's fit (its map, LOO error and probes), or None when it was refused."""
        return None if self.model is None else self.model.fit

    def to_dict(self) -> dict:
        """The CLI contract: `loo` ({probe, leaderboard_score, predicted, low, high} per fitted probe),
        `loo_mae`, `loo_max_error`, `loo_spearman`, `model` (the fitted map), `set_aside` (probe, rule,
        reason), plus the correlations, every probe's scores, the book's exclusions and the seconds."""
        data = {k: v for k, v in asdict(self).items() if k not in ("model", "probes")}
        data["probes"] = [asdict(p) for p in self.probes]
        fit = self.fit
        data.update(loo=fit.loo_table() if fit else [], loo_mae=fit.loo_mae if fit else None,
                    loo_max_error=fit.loo_max_error if fit else None, loo_spearman=fit.loo_spearman if fit else None,
                    loo_mae_all=fit.loo_mae_all if fit else None,
                    loo_mae_constant=fit.loo_mae_constant if fit else None,
                    model=({**fit.map.to_dict(), "x_range": list(fit.x_range), "n_probes": len(fit.fitted),
                            "settings": fit.settings.to_dict(), "describe": fit.map.describe()} if fit else None),
                    set_aside=[s.to_dict() | {"predicted": round(p.predicted, 6), "leaderboard_score": p.leaderboard_score}
                               for s in (fit.set_aside if fit else ()) for p in fit.probes if p.probe == s.probe],
                    excluded=list(self.excluded))
        return data


@dataclass(frozen=True)
class CalibrationSettings:
    """A calibration's settings: the leaderboard model's (`fit`: map, leaderboard noise, its resamples,
    confidence, seed, residual rule), the resamples of the correlation intervals, and which leaderboard
    score is the target. Confidence, noise and seed are the model's, used for the correlations too."""

    fit: FitSettings = FitSettings()
    correlation_resamples: int = 2000
    target: str = "public"


def correlation_bootstrap(scores: np.ndarray, leaderboard: Sequence[float], *, groups: Sequence | None = None,
                          n_resamples: int = 2000, confidence: float = 0.95,
                          leaderboard_noise: float = LEADERBOARD_NOISE_SD, seed: int = 0) -> tuple[Correlation, Correlation]:
    """(Spearman, Pearson) of the probes' mean scores against `leaderboard`, with percentile intervals.

    Args:
        scores: per-row scores, shape (rows, probes): column j is probe j's score on each row.
        leaderboard: the probes' leaderboard scores.
        groups: one label per row: resample whole groups (rows of a group are alike).
        leaderboard_noise: sd of the normal noise added to the leaderboard scores in each resample.

    The rows are drawn by the project's one resampler (`harness.stats.resample_means`), the same draws
    for every probe; the leaderboard noise then comes from the same seeded generator.
    """
    x = np.asarray(scores, dtype=np.float64)
    y = np.asarray(leaderboard, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != y.size:
        raise ValueError(f"scores must be (rows, probes) with {y.size} probes, got shape {x.shape}")
    if y.size < MIN_PROBES:
        raise ConfigError(f"a correlation needs at least {MIN_PROBES} probes, got {y.size}")
    if not 0 < confidence < 1 or n_resamples < 1 or leaderboard_noise < 0:
        raise ValueError("need 0 < confidence < 1, n_resamples >= 1 and leaderboard_noise >= 0")
    rng = np.random.default_rng(seed)
    means = resample_means(x, groups=groups, n_resamples=n_resamples, seed=rng)
    noisy = y + (rng.normal(0.0, leaderboard_noise, size=means.shape) if leaderboard_noise else np.zeros(means.shape))
    point = x.mean(axis=0)[None]
    return (_interval(row_spearman(point, y[None])[0], row_spearman(means, noisy), confidence),
            _interval(row_pearson(point, y[None])[0], row_pearson(means, noisy), confidence))


def _interval(estimate: float, resampled: np.ndarray, confidence: float) -> Correlation:
    defined = resampled[np.isfinite(resampled)]
    if defined.size == 0:
        return Correlation(float(estimate), float("nan"), float("nan"), confidence, 0.0)
    low, high = percentile_interval(defined, confidence)
    return Correlation(float(estimate), float(low), float(high), confidence, defined.size / resampled.size)


def calibrate_suite(book: ProbeBook | Sequence[Probe], suite: Suite, embedder: Embedder, *,
                    store: Store | None = None, resolve: Callable[[str], Candidate] | None = None,
                    settings: CalibrationSettings = CalibrationSettings(), label: str = "") -> CalibrationRow:
    """Score the book's usable probes on `suite` and fit the leaderboard model (see the module docstring).

    Fewer than MIN_PROBES usable probes is an error; a model that cannot be fitted (too many set aside)
    is reported in `refused`, the correlations still are.
    """
    started = time.perf_counter()
    probes = list(book)
    excluded = [{"probe": p.name, "reason": p.unusable_reason(settings.target)} for p in probes
                if p.unusable_reason(settings.target)]
    usable = [p for p in probes if not p.unusable_reason(settings.target)]
    if len(usable) < MIN_PROBES:
        raise ConfigError(f"calibration needs at least {MIN_PROBES} probes with a {settings.target} leaderboard "
                          f"score that can be rerun, got {len(usable)}"
                          + (f" ({len(excluded)} left out: " + "; ".join(f"{e['probe']}: {e['reason']}"
                                                                          for e in excluded) + ")" if excluded else ""))
    scored = score_probes(usable, suite, embedder, store=store, resolve=resolve)
    leaderboard = np.array([p.score(settings.target) for p in usable])
    spearman, pearson = correlation_bootstrap(
        scored.scores, leaderboard, groups=suite.groups, n_resamples=settings.correlation_resamples,
        confidence=settings.fit.confidence, leaderboard_noise=settings.fit.leaderboard_noise, seed=settings.fit.seed)
    vocabulary = None if embedder.comparable_with_kaggle else embedder_vocabulary(embedder)
    declared: list[SetAside] = []
    shares: list[float | None] = []
    for p, answers in zip(usable, scored.answers):
        shares.append(None if vocabulary is None else vocabulary_share(answers, vocabulary))
        rule = answer_rules(p.name, answers, comparable_with_kaggle=embedder.comparable_with_kaggle,
                            vocabulary=vocabulary)
        if rule is not None:
            declared.append(rule)
    fit, refused = None, None
    try:
        fit = fit_leaderboard([p.name for p in usable], scored.scores, leaderboard, pre_set_aside=declared,
                              groups=suite.groups, settings=settings.fit)
    except ConfigError as error:
        refused = str(error)
    draws = resample_means(scored.scores, groups=suite.groups, n_resamples=min(settings.correlation_resamples, 2000),
                           seed=settings.fit.seed).reshape(-1, len(usable))
    lows, highs = percentile_interval(draws, settings.fit.confidence)
    means = scored.means
    n_groups = len(set(suite.groups)) if suite.groups else None
    model = None
    if fit is not None:
        model = model_from_fit(
            fit, suite=suite.name, suite_fingerprint=suite.fingerprint, embedder=embedder.name,
            embedder_fingerprint=embedder.fingerprint, comparable_with_kaggle=embedder.comparable_with_kaggle,
            target=settings.target, probe_book=str(getattr(book, "path", "")), probe_book_hash=getattr(book, "hash", ""),
            submissions={p.name: (p.kind, p.submission) for p in usable}, label=label, excluded=excluded,
            row_scores={p.name: dict(zip(suite.ids, scored.scores[:, j])) for j, p in enumerate(usable)
                        if p.kind != "constant"})
    return CalibrationRow(
        suite=suite.name, suite_fingerprint=suite.fingerprint, n_rows=len(suite), n_groups=n_groups,
        embedder=embedder.name, embedder_fingerprint=embedder.fingerprint,
        comparable_with_kaggle=embedder.comparable_with_kaggle,
        probes=tuple(ProbeMean(p.name, float(y), float(m), float(lo), float(hi), e, share)
                     for p, y, m, lo, hi, e, share in zip(usable, leaderboard, means, lows, highs, scored.n_empty, shares)),
        spearman=spearman, pearson=pearson, mean_offset=float(np.mean(means - leaderboard)),
        mean_abs_offset=float(np.mean(np.abs(means - leaderboard))), refused=refused,
        excluded=tuple(excluded), seconds=time.perf_counter() - started, embedding_calls=scored.embedding_calls,
        model=model)


def available_embedders(specs: Sequence[str], build: Callable[[str], EmbedderChoice]) -> tuple[list[Embedder], list[str]]:
    """The embedders of `specs` that exist on this machine, and a note for each that does not (a
    calibration over "every embedder available" must say which ones it could not use, and why). `build`
    makes one from a spec: the Workspace's `embedder`, so an embedder given to the Workspace is used."""
    found, notes = [], []
    for spec in specs:
        try:
            embedder = build(spec).embedder  # "auto" falling back is reported by name below
        except ModelUnavailableError as error:
            notes.append(f"embedder '{spec}' skipped: {str(error).split('. ')[0]}")
            continue
        if any(e.fingerprint == embedder.fingerprint for e in found):
            continue
        found.append(embedder)
    return found, notes


def rank_rows(rows: Sequence[CalibrationRow]) -> list[CalibrationRow]:
    """Best predictor first: a fitted model with the smallest leave-one-probe-out error, then highest
    Spearman, then Pearson, then (Kaggle-comparable first) smallest offset."""
    def key(row: CalibrationRow):
        def number(value: float | None) -> float:
            return value if value is not None and np.isfinite(value) else -2.0
        return (row.fit is None, row.fit.loo_mae if row.fit else 0.0, -number(row.spearman.estimate),
                -number(row.pearson.estimate), not row.comparable_with_kaggle, row.mean_abs_offset)
    return sorted(rows, key=key)
