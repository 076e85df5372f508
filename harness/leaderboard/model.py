"""The leaderboard model: local mean score → predicted leaderboard score, with its honest error.

Fitted per (suite, embedder) on probes (submissions with known leaderboard scores):

- **Map** f: `linear` (least squares, the default), `robust` (Siegel's repeated medians) or `isotonic`
  (monotone, a step function interpolated between probes; flat outside their range).
- **Set-aside** first (harness.leaderboard.usable_probes): probes the embedder cannot judge are left out, each
  with its rule and reason.
- **Honest accuracy** is leave-one-probe-out (LOO): each fitted probe is predicted by the whole procedure
  (the residual rule included) run without it; MAE, max error and Spearman over those predictions. The
  probes set aside are predicted the same way and reported apart (`loo_mae_all` covers every scored
  probe): they show what the model would get wrong on submissions like them. The reference is
  `loo_mae_constant`, predicting each probe by the others' mean score: a map that does not beat it carries
  no information (and its LOO Spearman then tends to −1, the known artefact of leaving one out of a mean).
- **Never falling**: a line whose slope comes out negative is replaced by the flat line at the probes'
  mean score (a higher local score of one submission never means a lower leaderboard score; a falling
  fit only says the embedder does not rank these probes, and would rank candidates backwards).
- **Interval**: each resample draws the suite's rows (the project's one resampler,
  `harness.stats.resample_means`: the same rows for every probe and the candidate, so a hard draw moves
  them together), draws the probes with replacement, adds N(0, noise²) to their leaderboard scores, refits
  the map, predicts, and adds N(0, noise²) for the candidate's own leaderboard noise. The percentile
  interval covers the suite's sampling, which probes we happen to have, and the leaderboard's noise.
- **Refusal** below `MIN_PROBES` fitted probes; **extrapolating** outside the fitted probes' local range.

Pure functions of arrays; scipy is imported only inside the functions that need it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from harness.errors import ConfigError
from harness.leaderboard.usable_probes import SetAside, residual_rule
from harness.stats import percentile_interval, repeated_median_lines, resample_means, spearman

MAPS = ("linear", "robust", "isotonic")
MIN_PROBES = 4
#: sd of the public leaderboard's noise (about ±0.02 as a 95% range; its public part was ~195 rows)
LEADERBOARD_NOISE_SD = 0.01


@dataclass(frozen=True)
class ScoreMap:
    """A fitted map from local mean score to leaderboard score.

    `linear` and `robust` are lines (intercept, slope); `isotonic` is the monotone fit at the probes'
    distinct local scores (knots), linearly interpolated between them and flat beyond them."""

    kind: str
    intercept: float | None = None
    slope: float | None = None
    knots_x: tuple[float, ...] = ()
    knots_y: tuple[float, ...] = ()

    def predict(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        if self.kind == "isotonic":
            return np.interp(x, self.knots_x, self.knots_y)
        return self.intercept + self.slope * x

    def describe(self) -> str:
        if self.kind == "isotonic":
            return f"isotonic over {len(self.knots_x)} knots"
        return f"{self.kind}: LB = {self.intercept:.4f} + {self.slope:.4f} × local"

    def to_dict(self) -> dict:
        data = {"kind": self.kind}
        if self.kind == "isotonic":
            data.update(knots_x=[round(v, 6) for v in self.knots_x], knots_y=[round(v, 6) for v in self.knots_y])
        else:
            data.update(intercept=round(self.intercept, 6), slope=round(self.slope, 6))
        return data

    @classmethod
    def from_dict(cls, data) -> ScoreMap:
        if data.get("kind") not in MAPS:
            raise ValueError(f"unknown map kind {data.get('kind')!r}; expected one of {', '.join(MAPS)}")
        if data["kind"] == "isotonic":
            return cls("isotonic", knots_x=tuple(map(float, data["knots_x"])),
                       knots_y=tuple(map(float, data["knots_y"])))
        return cls(data["kind"], intercept=float(data["intercept"]), slope=float(data["slope"]))


def check_map(kind: str) -> str:
    if kind not in MAPS:
        raise ConfigError(f"unknown leaderboard map {kind!r}; expected one of {', '.join(MAPS)}")
    return kind


def fit_map(kind: str, x, y, weights=None) -> ScoreMap:
    """Fit `kind` to probes at local scores `x` with leaderboard scores `y` (optional integer-like weights:
    how often a probe was drawn). A constant `x` gives a flat map at the mean of `y`."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)
    keep = w > 0
    x, y, w = x[keep], y[keep], w[keep]
    if kind == "linear":
        intercept, slope = _weighted_line(x[None], y[None], w[None])
        return ScoreMap("linear", float(intercept[0]), float(slope[0]))
    if kind == "robust":
        intercept, slope = _rising(*repeated_median_lines(np.repeat(x, np.rint(w).astype(int))[None],
                                                          np.repeat(y, np.rint(w).astype(int))[None]),
                                   np.repeat(y, np.rint(w).astype(int))[None], robust=True)
        return ScoreMap("robust", float(intercept[0]), float(slope[0]))
    if kind == "isotonic":
        from scipy.optimize import isotonic_regression

        knots, inverse = np.unique(x, return_inverse=True)
        wsum = np.bincount(inverse, weights=w)
        ymean = np.bincount(inverse, weights=w * y) / wsum
        fitted = isotonic_regression(ymean, weights=wsum, increasing=True).x
        return ScoreMap("isotonic", knots_x=tuple(knots.tolist()), knots_y=tuple(np.asarray(fitted).tolist()))
    raise ConfigError(f"unknown leaderboard map {kind!r}; expected one of {', '.join(MAPS)}")


def _rising(intercept: np.ndarray, slope: np.ndarray, y: np.ndarray, *, robust: bool = False,
            w: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Lines that fall are replaced by the flat line at the probes' mean (median when robust) score.

    A higher local score of the same submission never means a lower leaderboard score: a falling fit says
    the embedder does not rank these probes, and predicting from it would rank candidates backwards. The
    flat line predicts the probes' typical score for everything, which its LOO error then reports."""
    flat = np.median(y, axis=1) if robust else (w * y).sum(axis=1) / w.sum(axis=1)
    falling = slope < 0
    return np.where(falling, flat, intercept), np.where(falling, 0.0, slope)


def _weighted_line(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least-squares (intercept, slope) for each row of (B, k) arrays, vectorised over rows,
    never falling (see `_rising`). A row whose drawn x values are all equal gets slope 0."""
    total = w.sum(axis=1, keepdims=True)
    mx = (w * x).sum(axis=1, keepdims=True) / total
    my = (w * y).sum(axis=1, keepdims=True) / total
    sxx = (w * (x - mx) ** 2).sum(axis=1)
    sxy = (w * (x - mx) * (y - my)).sum(axis=1)
    scale = np.maximum((w * x * x).sum(axis=1), 1e-300)
    slope = np.where(sxx > 1e-12 * scale, sxy / np.where(sxx > 0, sxx, 1.0), 0.0)
    return _rising(my[:, 0] - slope * mx[:, 0], slope, y, w=w)


#: the isotonic map is refitted per resample by scipy (a call each): its intervals use at most this many
ISOTONIC_RESAMPLES = 250


def predict_draws(kind: str, x_draws: np.ndarray, y: np.ndarray, c_draws: np.ndarray, *, leaderboard_noise: float,
                  rng: np.random.Generator) -> np.ndarray:
    """Predicted leaderboard scores, one per resample and candidate column: (B, m).

    `x_draws` (B, k) are the probes' resampled local means, `c_draws` (B, m) the candidates' (same rows);
    each resample also draws the probes with replacement and adds leaderboard noise to their scores and to
    the prediction. Lines (least squares, repeated medians) are fitted for all resamples at once; the
    isotonic map is refitted per resample with scipy, on the first ISOTONIC_RESAMPLES resamples.
    """
    if kind == "isotonic":
        x_draws, c_draws = x_draws[:ISOTONIC_RESAMPLES], c_draws[:ISOTONIC_RESAMPLES]
    n_draws, k = x_draws.shape
    drawn = rng.integers(0, k, size=(n_draws, k))
    noisy = y[None, :] + (rng.normal(0.0, leaderboard_noise, size=(n_draws, k)) if leaderboard_noise else 0.0)
    xs, ys = np.take_along_axis(x_draws, drawn, axis=1), np.take_along_axis(noisy, drawn, axis=1)
    if kind == "linear":
        intercept, slope = _weighted_line(xs, ys, np.ones_like(xs))
        predicted = intercept[:, None] + slope[:, None] * c_draws
    elif kind == "robust":
        intercept, slope = _rising(*repeated_median_lines(xs, ys), ys, robust=True)
        predicted = intercept[:, None] + slope[:, None] * c_draws
    else:
        predicted = np.empty_like(c_draws)
        for b in range(n_draws):
            predicted[b] = fit_map(kind, xs[b], ys[b]).predict(c_draws[b])
    if leaderboard_noise:
        predicted = predicted + rng.normal(0.0, leaderboard_noise, size=predicted.shape)
    return predicted


@dataclass(frozen=True)
class FitSettings:
    """How a leaderboard model is fitted and how wide its intervals are (stored in the model file, and the
    model part of a calibration's settings)."""

    map: str = "linear"
    #: sd of the normal noise on a leaderboard score (each resample adds it to the probes' scores and to the
    #: prediction; the residual rule never calls a probe an outlier within 3 of it)
    leaderboard_noise: float = LEADERBOARD_NOISE_SD
    n_resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0
    residual_rule: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ProbeFit:
    """One probe in a fitted model: its numbers, whether it was fitted, and its leave-one-out prediction.

    A model file stores it as it is. `kind` and `submission` say what to score again when predicting
    (`model_file.model_from_fit` ties them to the book), and `row_scores` keeps the per-row scores by row
    id of a fitted probe whose answers differ by row (templates, candidates): scoring them again would
    embed every row's answer (or need a file that may be gone); constants are re-scored with one
    embedding call instead."""

    probe: str
    leaderboard_score: float
    local_mean: float
    fitted: bool
    predicted: float
    low: float
    high: float
    extrapolating: bool = False
    rule: str = ""
    reason: str = ""
    kind: str = "constant"
    submission: str = ""
    row_scores: dict[str, float] | None = None

    @property
    def error(self) -> float:
        return self.predicted - self.leaderboard_score


@dataclass(frozen=True)
class LeaderboardFit:
    """A fitted leaderboard model: the map, every probe's leave-one-out prediction, the probes set aside,
    and the honest (LOO) error. `model_file.LeaderboardModel` ties it to a suite, an embedder and a book."""

    map: ScoreMap
    probes: tuple[ProbeFit, ...]
    set_aside: tuple[SetAside, ...]
    x_range: tuple[float, float]
    settings: FitSettings
    loo_mae: float
    loo_max_error: float
    loo_spearman: float | None
    loo_mae_all: float
    n_rows: int
    #: LOO MAE of predicting each fitted probe by the others' mean leaderboard score, the map's reference:
    #: a map that does not beat it carries no information about the leaderboard
    loo_mae_constant: float = float("nan")

    @property
    def fitted(self) -> list[ProbeFit]:
        return [p for p in self.probes if p.fitted]

    def describe(self) -> str:
        """'linear map on 9 probes, LOO MAE 0.031 (max 0.070, Spearman +0.62; the probes' mean alone: 0.05)'"""
        spearman = "n/a" if self.loo_spearman is None else f"{self.loo_spearman:+.2f}"
        return (f"{self.map.kind} map on {len(self.fitted)} probes, LOO MAE {self.loo_mae:.3f} "
                f"(max {self.loo_max_error:.3f}, Spearman {spearman}; the probes' mean alone: "
                f"{self.loo_mae_constant:.3f})")

    def loo_table(self) -> list[dict]:
        """The CLI contract's `loo`: {probe, leaderboard_score, predicted, low, high} per fitted probe."""
        return [{"probe": p.probe, "leaderboard_score": p.leaderboard_score, "predicted": round(p.predicted, 6),
                 "low": round(p.low, 6), "high": round(p.high, 6), "local_mean": round(p.local_mean, 6),
                 "extrapolating": p.extrapolating} for p in self.fitted]


def _select(names: Sequence[str], x: np.ndarray, y: np.ndarray, settings: FitSettings) -> list[SetAside]:
    return residual_rule(names, x, y, leaderboard_noise=settings.leaderboard_noise) if settings.residual_rule else []


def fit_leaderboard(names: Sequence[str], scores: np.ndarray, leaderboard: Sequence[float], *,
                    pre_set_aside: Sequence[SetAside] = (), groups: Sequence | None = None,
                    settings: FitSettings = FitSettings()) -> LeaderboardFit:
    """Fit the leaderboard model on probes scored on one suite.

    Args:
        names: the probes (columns of `scores`), every one with a leaderboard score.
        scores: per-row local scores, (rows, probes).
        leaderboard: the probes' leaderboard scores.
        pre_set_aside: probes already set aside by the answer rules (they are still predicted, apart).
        groups: one label per row: resample whole groups.
    Raises ConfigError when fewer than MIN_PROBES probes remain to fit, saying which were set aside and why.
    """
    check_map(settings.map)
    scores = np.asarray(scores, dtype=float)
    y = np.asarray(leaderboard, dtype=float)
    names = list(names)
    if scores.ndim != 2 or scores.shape[1] != len(names) or y.size != len(names):
        raise ValueError(f"scores must be (rows, {len(names)}) with one leaderboard score per probe")
    x = scores.mean(axis=0)
    aside = {s.probe: s for s in pre_set_aside if s.probe in names}
    candidates = [i for i, n in enumerate(names) if n not in aside]
    for s in _select([names[i] for i in candidates], x[candidates], y[candidates], settings):
        aside[s.probe] = s
    kept = [i for i in candidates if names[i] not in aside]
    if len(kept) < MIN_PROBES:
        why = "; ".join(f"{s.probe}: {s.reason}" for s in aside.values()) or "none set aside"
        raise ConfigError(f"a leaderboard model needs at least {MIN_PROBES} probes it can judge, got {len(kept)} "
                          f"of {len(names)} scored ({why}); add probes to the book (prh probes add)")
    final = fit_map(settings.map, x[kept], y[kept])
    lo, hi = float(x[kept].min()), float(x[kept].max())

    rng = np.random.default_rng(settings.seed)
    draws = resample_means(scores, groups=groups, n_resamples=settings.n_resamples, seed=rng)
    draws = draws.reshape(settings.n_resamples, -1)
    fits: list[ProbeFit] = []
    for j, name in enumerate(names):
        if j in kept:
            others = [i for i in kept if i != j]
            dropped = {s.probe for s in _select([names[i] for i in others], x[others], y[others], settings)}
            others = [i for i in others if names[i] not in dropped] or [i for i in kept if i != j]
        else:
            others = kept
        point = float(fit_map(settings.map, x[others], y[others]).predict(x[j]))
        predicted = predict_draws(settings.map, draws[:, others], y[others], draws[:, [j]],
                                  leaderboard_noise=settings.leaderboard_noise, rng=rng)
        low, high = percentile_interval(predicted[:, 0], settings.confidence)
        rule = aside.get(name)
        fits.append(ProbeFit(name, float(y[j]), float(x[j]), j in kept, point, float(low), float(high),
                             bool(x[j] < x[others].min() or x[j] > x[others].max()),
                             rule.rule if rule else "", rule.reason if rule else ""))
    fitted = [f for f in fits if f.fitted]
    errors = np.array([abs(f.error) for f in fitted])
    return LeaderboardFit(
        map=final, probes=tuple(fits), set_aside=tuple(aside[n] for n in names if n in aside), x_range=(lo, hi),
        settings=settings, loo_mae=float(errors.mean()), loo_max_error=float(errors.max()),
        loo_spearman=spearman([f.predicted for f in fitted], [f.leaderboard_score for f in fitted]),
        loo_mae_all=float(np.mean([abs(f.error) for f in fits])), n_rows=scores.shape[0],
        loo_mae_constant=float(np.mean([abs((y[kept].sum() - y[j]) / (len(kept) - 1) - y[j]) for j in kept])))


@dataclass(frozen=True)
class Prediction:
    """A predicted leaderboard score with its interval, for one candidate."""

    estimate: float
    low: float
    high: float
    local_mean: float
    extrapolating: bool
    notes: tuple[str, ...] = field(default_factory=tuple)


def predict(map_: ScoreMap, probe_scores: np.ndarray, leaderboard: Sequence[float], candidate_scores: np.ndarray,
            *, x_range: tuple[float, float], groups: Sequence | None = None,
            settings: FitSettings = FitSettings()) -> Prediction:
    """Predict a candidate's leaderboard score from its per-row local scores on the suite the fitted probes
    were scored on (`probe_scores`, rows × fitted probes). The estimate is the stored map's; the interval
    resamples rows (paired with the probes), probes and leaderboard noise (see the module docstring)."""
    probe_scores = np.asarray(probe_scores, dtype=float)
    candidate_scores = np.asarray(candidate_scores, dtype=float).reshape(-1, 1)
    if probe_scores.shape[0] != candidate_scores.shape[0]:
        raise ValueError("the candidate and the probes must be scored on the same rows")
    rng = np.random.default_rng(settings.seed)
    draws = resample_means(np.column_stack([probe_scores, candidate_scores]), groups=groups,
                           n_resamples=settings.n_resamples, seed=rng)
    draws = draws.reshape(settings.n_resamples, -1)
    k = probe_scores.shape[1]
    predicted = predict_draws(map_.kind, draws[:, :k], np.asarray(leaderboard, dtype=float), draws[:, k:],
                              leaderboard_noise=settings.leaderboard_noise, rng=rng)
    low, high = percentile_interval(predicted[:, 0], settings.confidence)
    local = float(candidate_scores.mean())
    estimate = float(map_.predict(local))
    extrapolating = not x_range[0] <= local <= x_range[1]
    notes = ()
    if extrapolating:
        notes = (f"extrapolating: local mean {local:.4f} is outside the fitted probes' range "
                 f"[{x_range[0]:.4f}, {x_range[1]:.4f}]",)
    return Prediction(estimate, float(low), float(high), local, extrapolating, notes)
