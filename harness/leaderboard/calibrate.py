"""Which local suite (and embedder) ranks submissions the way the public leaderboard does?

For each (suite, embedder), every probe (a submission with a known leaderboard score) is scored on the
suite through `harness.evaluate`, and the probes' local mean SCS are compared with their leaderboard
scores: Spearman (does the suite rank them right?) and Pearson (linearly?) correlation, each with a
bootstrap interval, and the mean offset local − leaderboard (meaningful only for the Kaggle scorer's
embedder; other embedders have their own scale).

The interval answers "how sure are we, given that the suite is a sample and the leaderboard is noisy?":
each resample draws the suite's rows (whole groups when it has groups) with replacement, recomputes every
probe's mean on those rows (paired: the same rows for all probes), and adds N(0, leaderboard_noise²) to
each leaderboard score (the public leaderboard moves about ±0.02 by noise alone: sd 0.01 by default).
It uses the project's one resampler (harness.stats), vectorised over resamples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from harness.data import Suite
from harness.embedders import Embedder
from harness.errors import ConfigError, ModelUnavailableError
from harness.evaluate import BootstrapSettings, evaluate
from harness.leaderboard.probes import Probe
from harness.stats import resample_means
from harness.store import Store

#: sd of the public leaderboard's noise (about ±0.02 as a 95% range).
LEADERBOARD_NOISE_SD = 0.01
MIN_PROBES = 3


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
class ProbeScore:
    probe: str
    leaderboard_score: float
    mean: float
    ci_low: float
    ci_high: float
    n_empty: int


@dataclass(frozen=True)
class CalibrationRow:
    """The probes on one suite with one embedder, and how well that predicts the leaderboard."""

    suite: str
    n_rows: int
    n_groups: int | None
    embedder: str
    embedder_fingerprint: str
    comparable_with_kaggle: bool
    probes: tuple[ProbeScore, ...]
    spearman: Correlation
    pearson: Correlation
    mean_offset: float
    mean_abs_offset: float

    def to_dict(self) -> dict:
        data = asdict(self)
        data["probes"] = [asdict(p) for p in self.probes]
        return data


@dataclass(frozen=True)
class CalibrationSettings:
    """Resampling of the correlation intervals, and of each probe's own CI (cheap: it informs only)."""

    n_resamples: int = 2000
    confidence: float = 0.95
    leaderboard_noise: float = LEADERBOARD_NOISE_SD
    seed: int = 0
    probe_bootstrap: BootstrapSettings = field(default_factory=lambda: BootstrapSettings(n_resamples=2000,
                                                                                           method="percentile"))


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
    return (_interval(_row_pearson(_row_ranks(point), _row_ranks(y[None]))[0],
                      _row_pearson(_row_ranks(means), _row_ranks(noisy)), confidence),
            _interval(_row_pearson(point, y[None])[0], _row_pearson(means, noisy), confidence))


def _row_ranks(a: np.ndarray) -> np.ndarray:
    """Average ranks (1-based, ties share their mean rank, as scipy's rankdata) within each row of `a`.

    O(probes²) per row by comparison, which is nothing for a few dozen probes and needs no scipy."""
    a = np.asarray(a, dtype=np.float64)
    below = (a[:, None, :] < a[:, :, None]).sum(axis=2)
    equal = (a[:, None, :] == a[:, :, None]).sum(axis=2)
    return below + (equal + 1) / 2.0


def _row_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of `a` with the same row of `b`; NaN where either is constant."""
    a = np.asarray(a, dtype=np.float64)
    b = np.broadcast_to(np.asarray(b, dtype=np.float64), a.shape)
    ac = a - a.mean(axis=1, keepdims=True)
    bc = b - b.mean(axis=1, keepdims=True)
    denominator = np.sqrt((ac * ac).sum(axis=1) * (bc * bc).sum(axis=1))
    scale = np.maximum(np.abs(a).max(axis=1), 1e-300) * np.maximum(np.abs(b).max(axis=1), 1e-300)
    defined = denominator > 1e-12 * scale  # float noise on all-equal rows is not a ranking
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(defined, (ac * bc).sum(axis=1) / np.where(defined, denominator, 1.0), np.nan)
    return np.clip(r, -1.0, 1.0)


def _interval(estimate: float, resampled: np.ndarray, confidence: float) -> Correlation:
    defined = resampled[np.isfinite(resampled)]
    if defined.size == 0:
        return Correlation(float(estimate), float("nan"), float("nan"), confidence, 0.0)
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(defined, [alpha, 1.0 - alpha])
    return Correlation(float(estimate), float(low), float(high), confidence, defined.size / resampled.size)


def calibrate_suite(probes: Sequence[Probe], suite: Suite, embedder: Embedder, *, store: Store | None = None,
                    settings: CalibrationSettings = CalibrationSettings()) -> CalibrationRow:
    """Score every probe on `suite` and correlate the means with the leaderboard scores."""
    if len(probes) < MIN_PROBES:
        raise ConfigError(f"calibration needs at least {MIN_PROBES} probes with leaderboard scores, got {len(probes)}")
    results = [evaluate(p.candidate(), suite, embedder, store=store, bootstrap=settings.probe_bootstrap)
               for p in probes]
    leaderboard = np.array([p.leaderboard_score for p in probes])
    spearman, pearson = correlation_bootstrap(
        np.stack([r.scores for r in results], axis=1), leaderboard, groups=suite.groups,
        n_resamples=settings.n_resamples, confidence=settings.confidence,
        leaderboard_noise=settings.leaderboard_noise, seed=settings.seed)
    means = np.array([r.mean for r in results])
    return CalibrationRow(
        suite=suite.name, n_rows=len(suite), n_groups=results[0].interval.n_groups, embedder=embedder.name,
        embedder_fingerprint=embedder.fingerprint, comparable_with_kaggle=embedder.comparable_with_kaggle,
        probes=tuple(ProbeScore(p.name, p.leaderboard_score, r.mean, r.interval.low, r.interval.high,
                                len(r.empty_prediction_ids)) for p, r in zip(probes, results)),
        spearman=spearman, pearson=pearson, mean_offset=float(np.mean(means - leaderboard)),
        mean_abs_offset=float(np.mean(np.abs(means - leaderboard))))


def available_embedders(specs: Sequence[str], **kwargs) -> tuple[list[Embedder], list[str]]:
    """The embedders of `specs` that exist on this machine, and a note for each that does not (a
    calibration over "every embedder available" must say which ones it could not use, and why)."""
    from harness.embedders import choose_embedder

    found, notes = [], []
    for spec in specs:
        try:
            embedder = choose_embedder(spec, **kwargs).embedder  # "auto" falling back is reported by name below
        except ModelUnavailableError as error:
            notes.append(f"embedder '{spec}' skipped: {str(error).split('. ')[0]}")
            continue
        if any(e.fingerprint == embedder.fingerprint for e in found):
            continue
        found.append(embedder)
    return found, notes


def rank_rows(rows: Sequence[CalibrationRow]) -> list[CalibrationRow]:
    """Best predictor first: highest Spearman, then Pearson, then (Kaggle-comparable first) smallest offset."""
    def key(row: CalibrationRow):
        def number(value: float) -> float:
            return value if np.isfinite(value) else -2.0
        return (-number(row.spearman.estimate), -number(row.pearson.estimate), not row.comparable_with_kaggle,
                row.mean_abs_offset)
    return sorted(rows, key=key)
