"""Statistics of scores: bootstrap intervals, the paired regression test, and what a suite can detect.

Suites are small (50-1,300 rows), so "candidate A beats B by 0.004" is only worth reporting with an
interval around it, and a gate over several suites needs a p-value per suite and a correction across
them. Everything here is a pure function of plain arrays, in the spirit of ``scipy.stats.bootstrap``:
randomness is explicit (``seed``) and results are plain data.

One resampler serves every bootstrap in the project (:func:`resample_means`). Its unit is a *cell*: a
row, or a whole group of rows when rows are clustered (several prompts derived from one source are alike,
so resampling rows would understate the uncertainty). A cell carries its sum and its size, and a
resample's mean is sum(drawn sums) / sum(drawn sizes). Resamples are index draws and a gather, vectorised
over resamples in memory-bounded chunks: no Python loop over resamples, and one set of draws serves
several statistic columns at once (calibration resamples the same rows for every probe; with many
columns the draws are counted once per cell and multiplied, one BLAS call).

Intervals are studentized (bootstrap-t) by default, or BCa or percentile: bench/coverage.py measured the
studentized one closest to its nominal 95% on real, skewed per-row SCS, and quotes what it measured in
:func:`small_sample_warning`. :func:`bootstrap_intervals` gives many samples' intervals from one set of
draws, with the same finishing code, for such coverage studies.

The regression gate (DESIGN.md) reads :func:`paired_bootstrap_test`: the paired interval and one-sided
p-values from the same resamples, so that "p < 0.025" and "the 95% interval lies below −tolerance" are
one statement; :func:`holm_adjust` controls the false-alarm rate over a run's suites. What a suite can
detect is said by :func:`minimum_detectable_effect`, :func:`design_effect`, :func:`win_tie_loss` and
:func:`small_sample_warning`. bench/gate_power.py measures the gate's A/A rate and power.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "DEFAULT_METHOD", "METHODS", "ConfidenceInterval", "PairedDelta", "WinTieLoss", "bootstrap_intervals",
    "bootstrap_mean", "design_effect", "factorize_groups",
    "holm_adjust", "minimum_detectable_effect", "paired_bootstrap_delta", "paired_bootstrap_test",
    "resample_means", "small_sample_warning", "standard_error_of_mean", "win_tie_loss", "MEASURED_COVERAGE",
    "measured_coverage",
]

Seed = int | np.random.Generator | np.random.SeedSequence

#: Interval methods; "studentized" (bootstrap-t) is the default: bench/coverage.py measured it closest to its
#: nominal 95% on real, skewed per-row SCS at the shipped suite sizes (see :func:`small_sample_warning`).
METHODS = ("studentized", "bca", "percentile")
DEFAULT_METHOD = "studentized"
_METHODS = METHODS
_MATMUL_COLUMNS = 4  # from this many columns on, draw counts @ columns beats gathering each column
_CHUNK_BYTES = 8 * 2**20  # bounds the working memory of one chunk of resamples; larger chunks are no faster
_NORMAL = NormalDist()
#: Below these sizes CLT and bootstrap intervals under-cover (Bowyer et al. 2025).
MIN_ROWS, MIN_GROUPS = 200, 30
#: Per-row |Δ| at or below this is a tie: float32 embeddings make cos³ of equal texts differ by ~1e-7.
TIE_EPSILON = 1e-6


@dataclass(frozen=True)
class ConfidenceInterval:
    """A bootstrap confidence interval, as plain data.

    ``estimate`` is the statistic on the full sample (a mean, or a mean difference); ``standard_error``
    is the standard deviation of the bootstrap distribution. ``n_groups`` is the number of clusters when
    rows were resampled by group, else ``None``.
    """

    estimate: float
    low: float
    high: float
    confidence: float
    method: str
    n_resamples: int
    n: int
    n_groups: int | None
    standard_error: float

    def contains(self, x: float) -> bool:
        """Whether ``x`` lies in the closed interval ``[low, high]``."""
        return bool(self.low <= x <= self.high)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of builtin floats/ints/str (no numpy scalars)."""
        out = asdict(self)
        for key in ("estimate", "low", "high", "confidence", "standard_error"):
            out[key] = float(out[key])
        out["n_resamples"], out["n"] = int(self.n_resamples), int(self.n)
        out["n_groups"] = None if self.n_groups is None else int(self.n_groups)
        out["method"] = str(self.method)
        return out


@dataclass(frozen=True)
class PairedDelta:
    """The paired interval of mean(candidate − baseline) and the gate's one-sided p-values, from ONE bootstrap.

    ``p_regression`` tests H0: Δ ≥ −tolerance ("not worse by more than the tolerance"); ``p_improvement``
    tests H0: Δ ≤ +tolerance. They invert the same resamples as ``interval``, so at a = (1 − confidence)/2:
    ``p_regression < a`` exactly when ``interval.high < −tolerance``, and ``p_improvement < a`` exactly when
    ``interval.low > tolerance`` (up to float rounding at the boundary). A p-value of 0 means "below
    1/n_resamples". Over several suites, adjust the p-values with :func:`holm_adjust` and compare with a.
    """

    interval: ConfidenceInterval
    tolerance: float
    p_regression: float
    p_improvement: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the interval's fields nested under ``interval``."""
        return {"interval": self.interval.to_dict(), "tolerance": float(self.tolerance),
                "p_regression": float(self.p_regression), "p_improvement": float(self.p_improvement)}


@dataclass(frozen=True)
class WinTieLoss:
    """Rows where the candidate scored higher (win), within ``epsilon`` (tie), or lower (loss) than the baseline."""

    wins: int
    ties: int
    losses: int
    epsilon: float

    def to_dict(self) -> dict[str, Any]:
        return {"wins": self.wins, "ties": self.ties, "losses": self.losses, "epsilon": float(self.epsilon)}


# ---------------------------------------------------------------------------
# the resampler


def factorize_groups(groups: ArrayLike | Sequence[Any], n: int) -> tuple[np.ndarray, int]:
    """Group codes 0..G−1 for ``n`` rows, numbered in order of first appearance, and G.

    First appearance (not sorted label order) makes the cells, and so the resamples, independent of what
    the labels are: relabelling groups by any bijection gives identical intervals. Every bootstrap in the
    project numbers groups through this one function.
    """
    if isinstance(groups, np.ndarray) and groups.ndim != 1:
        raise ValueError(f"groups must be 1-D, got shape {groups.shape}")
    if isinstance(groups, np.ndarray) and groups.dtype.kind in "iub" and groups.size == n:
        # integer labels (codes from a bench or a DataFrame): the same numbering, without a Python loop
        unique, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
        rank = np.empty(unique.size, np.intp)
        rank[np.argsort(first)] = np.arange(unique.size)
        return rank[inverse.ravel()], int(unique.size)
    labels = groups.tolist() if isinstance(groups, np.ndarray) else list(groups)
    if len(labels) != n:
        raise ValueError(f"groups has {len(labels)} labels for {n} rows")
    index: dict[Any, int] = {}
    codes = np.fromiter((index.setdefault(g, len(index)) for g in labels), np.intp, n)
    return codes, len(index)


def resample_means(values: ArrayLike, *, groups: ArrayLike | Sequence[Any] | None = None,
                   n_resamples: int = 10_000, seed: Seed = 0) -> np.ndarray:
    """Bootstrap distribution of the mean of each column of ``values``: shape (n_resamples,) or (n_resamples, k).

    ``values`` is (rows,) or (rows, k): the k columns are resampled with the SAME row (or group) draws, as
    paired statistics need. With ``groups``, whole groups are drawn. ``seed`` is an int, a SeedSequence or
    a Generator (which is advanced, so that successive calls differ).
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim not in (1, 2) or x.shape[0] == 0:
        raise ValueError(f"values must be (rows,) or (rows, k) with at least one row, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("values must be finite")
    columns = x.reshape(x.shape[0], -1)
    estimate = columns.mean(axis=0)
    dev, sizes = _cells(columns - estimate, groups)
    n_resamples = _check_resamples(n_resamples)
    out = estimate + _resample_deviations(dev, sizes, n_resamples, _generator(seed))
    return out.reshape(n_resamples) if x.ndim == 1 else out


def _cells(dev: np.ndarray, groups: ArrayLike | Sequence[Any] | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-cell sums of the (rows, k) deviations and per-cell sizes (``None``: one row per cell)."""
    if groups is None:
        return dev, None
    codes, n_groups = factorize_groups(groups, dev.shape[0])
    sums = np.stack([np.bincount(codes, weights=c, minlength=n_groups) for c in dev.T], axis=1)
    return sums, np.bincount(codes, minlength=n_groups).astype(np.float64)


def _resample_deviations(dev: np.ndarray, sizes: np.ndarray | None, n_resamples: int,
                         rng: np.random.Generator) -> np.ndarray:
    """``theta*_b − estimate`` for each resample b and column: (n_resamples, k).

    ``dev`` (cells, k) holds each cell's sum of (value − estimate); working relative to the estimate keeps
    full precision, and makes a resample that reproduces the estimate come out as (almost) exactly 0.
    """
    m, k = dev.shape
    columns = np.ascontiguousarray(dev.T)  # gathering from 1-D columns is ~1.5x faster than from (m, k) rows
    snap = 4 * m * np.finfo(float).eps * np.abs(dev).max(axis=0)
    index_dtype = np.uint16 if m <= 2**16 else np.uint32  # narrower draws are faster; both exact (Lemire)
    # Per resample: its draws, numpy's intp copy of them for the gather, one gathered column (and sizes).
    row_bytes = m * (np.dtype(index_dtype).itemsize + 16 + (0 if sizes is None else 8))
    chunk = max(1, _CHUNK_BYTES // row_bytes)
    out = np.empty((n_resamples, k))
    for lo in range(0, n_resamples, chunk):
        hi = min(lo + chunk, n_resamples)
        draws = rng.integers(0, m, size=(hi - lo, m), dtype=index_dtype)
        if k >= _MATMUL_COLUMNS:  # many columns (studentized, batches): count each cell's draws once, then BLAS
            counts = np.bincount((draws + np.arange(0, (hi - lo) * m, m)[:, None]).ravel(),
                                 minlength=(hi - lo) * m).reshape(hi - lo, m).astype(np.float64)
            out[lo:hi] = counts @ dev
        else:
            for j, column in enumerate(columns):
                out[lo:hi, j] = column[draws].sum(axis=1)
        # Rounding leaves ~m·eps·max|dev| where the exact sum is 0 (e.g. the identity resample); BCa counts
        # ties with the estimate, which matter for small discrete samples, so snap those to 0.
        out[lo:hi][np.abs(out[lo:hi]) <= snap] = 0.0
        out[lo:hi] /= float(m) if sizes is None else sizes[draws].sum(axis=1)[:, None]
    return out


# ---------------------------------------------------------------------------
# intervals


def bootstrap_mean(values: ArrayLike, *, groups: ArrayLike | Sequence[Any] | None = None, confidence: float = 0.95,
                   n_resamples: int = 10_000, method: str = DEFAULT_METHOD, seed: Seed = 0) -> ConfidenceInterval:
    """Bootstrap confidence interval for the mean of ``values``.

    With ``groups`` (one hashable label per row) whole groups are resampled with replacement (cluster
    bootstrap): use it when rows within a group are correlated, since row resampling would then
    understate the uncertainty.

    ``method`` is ``"bca"`` (bias-corrected and accelerated, Efron 1987; the acceleration comes from the
    leave-one-row-out, or leave-one-group-out, jackknife) or ``"percentile"``. ``seed`` is an int, a
    ``SeedSequence`` or a ``Generator`` (which is advanced).

    Degenerate inputs (one row, one group, or identical cell means) give ``low == high == estimate`` and
    ``standard_error == 0``.
    """
    return _bootstrap(_as_scores(values, "values"), groups, confidence, n_resamples, method, seed)[0]


def paired_bootstrap_delta(candidate: ArrayLike, baseline: ArrayLike, *,
                           groups: ArrayLike | Sequence[Any] | None = None, confidence: float = 0.95,
                           n_resamples: int = 10_000, method: str = DEFAULT_METHOD, seed: Seed = 0) -> ConfidenceInterval:
    """Bootstrap confidence interval for ``mean(candidate − baseline)``.

    Both arrays score the same rows in the same order, and rows are resampled jointly: pairing removes
    the between-row variance that the two systems share, which is usually most of it, so this interval
    is much narrower than two independent intervals. Other arguments are as for :func:`bootstrap_mean`.
    Same arguments give the same interval as :func:`paired_bootstrap_test`.
    """
    return _bootstrap(_paired_deltas(candidate, baseline), groups, confidence, n_resamples, method, seed)[0]


def paired_bootstrap_test(candidate: ArrayLike, baseline: ArrayLike, *, tolerance: float,
                          groups: ArrayLike | Sequence[Any] | None = None, confidence: float = 0.95,
                          n_resamples: int = 10_000, method: str = DEFAULT_METHOD, seed: Seed = 0) -> PairedDelta:
    """The paired interval of :func:`paired_bootstrap_delta` plus the gate's one-sided p-values (see
    :class:`PairedDelta`), all from one set of resamples, so that a p-value and its interval never disagree.

    The p-value inverts the interval: p_regression is the α at which the upper end of the two-sided
    (1 − 2α) interval would touch −tolerance. With BCa that inversion goes through the BCa level
    adjustment (the BCa "confidence level" of Efron & Tibshirani 1993, §14.3).
    """
    tolerance = float(tolerance)
    if not math.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
    interval, dist = _bootstrap(_paired_deltas(candidate, baseline), groups, confidence, n_resamples, method, seed)
    if dist is None:  # a point interval: the test is decided without resampling noise
        return PairedDelta(interval, tolerance, float(interval.estimate >= -tolerance),
                           float(interval.estimate <= tolerance))
    return PairedDelta(interval, tolerance, *dist.p_values(interval.estimate, tolerance))


def _bootstrap(x: np.ndarray, groups: ArrayLike | Sequence[Any] | None, confidence: float, n_resamples: int,
               method: str, seed: Seed) -> tuple[ConfidenceInterval, _Inversion | None]:
    """The interval, and what inverting it for p-values needs (None when the interval is a point)."""
    confidence, n_resamples, method = _check_options(confidence, n_resamples, method)
    rng = _generator(seed)
    sample = _Sample.of(x, groups)
    if sample.point is not None:
        return sample.point_interval(confidence, method, n_resamples), None
    if method == "studentized":
        resampled = _resample_deviations(sample.studentized_columns(), None, n_resamples, rng)
    else:
        resampled = _resample_deviations(sample.dev[:, None], sample.sizes, n_resamples, rng)[:, 0]
    return _finish(sample, resampled, confidence, method)


# ---------------------------------------------------------------------------
# one sample's cells, the finishing step of every method, the studentized interval, and many samples at once


@dataclass(frozen=True)
class _Sample:
    """What every interval method needs of one sample: its cells (rows, or groups) as deviation sums
    from the estimate and sizes, and the range of its cell means (every resample mean lies in it)."""

    estimate: float
    dev: np.ndarray  # (cells,) sum of (value − estimate) per cell
    sizes: np.ndarray | None  # (cells,) rows per cell; None: one row per cell
    n: int
    lo_support: float
    hi_support: float
    point: float | None  # set when every resample has the same mean: the interval is this point

    @classmethod
    def of(cls, x: np.ndarray, groups: ArrayLike | Sequence[Any] | None) -> _Sample:
        estimate = float(np.mean(x))
        dev, sizes = _cells((x - estimate)[:, None], groups)
        cell_means = x if sizes is None else dev[:, 0] / sizes + estimate
        lo, hi = float(cell_means.min()), float(cell_means.max())
        point = float(x[0]) if x.min() == x.max() else (lo if lo == hi else None)
        return cls(estimate, dev[:, 0], sizes, x.size, lo, hi, point)

    @property
    def n_groups(self) -> int | None:
        return None if self.sizes is None else int(self.sizes.size)

    def standard_error(self) -> float:
        """The (cluster-robust) standard error of the mean, as :func:`standard_error_of_mean` computes it."""
        cells = self.dev.size
        return math.sqrt(cells / (cells - 1) * float(np.sum(self.dev**2))) / self.n

    def studentized_columns(self) -> np.ndarray:
        """(cells, 5): D, m, D², D·m, m² per cell (D: deviation sum, m: size). Their sums over a resample's
        cells give its mean and its own cluster-robust standard error (see :func:`_studentized_draws`).
        Without groups m = 1, so (cells, 2): D, D² (half the resampling work)."""
        if self.sizes is None:
            return np.stack([self.dev, self.dev**2], axis=1)
        return np.stack([self.dev, self.sizes, self.dev**2, self.dev * self.sizes, self.sizes**2], axis=1)

    def point_interval(self, confidence: float, method: str, n_resamples: int) -> ConfidenceInterval:
        p = float(self.point)
        return ConfidenceInterval(p, p, p, confidence, method, n_resamples, self.n, self.n_groups, 0.0)


def _studentized_draws(columns_mean: np.ndarray, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """(θ* − estimate, t*) per resample from the resampled means of :meth:`_Sample.studentized_columns`.

    With δ = ΣD*/Σm*, the resample's residual sum of squares is Σ(D − m·δ)² = ΣD² − 2δ·ΣDm + δ²·Σm², and its
    standard error is √(G/(G−1) · that) / Σm* (G cells), the same formula as the sample's own. A resample
    of one repeated cell has no spread: its t* is ±inf (0 when δ = 0), kept finite for interpolation.
    """
    if columns_mean.shape[1] == 2:  # one row per cell: m = 1
        d, d2 = (columns_mean[:, j] * cells for j in range(2))
        m = m2 = np.full_like(d, float(cells))
        dm = d
    else:
        d, m, d2, dm, m2 = (columns_mean[:, j] * cells for j in range(5))
    delta = d / m
    rss = np.maximum(d2 - 2.0 * delta * dm + delta**2 * m2, 0.0)
    se = np.sqrt(cells / (cells - 1) * rss) / m
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, delta / np.where(se > 0, se, 1.0), np.sign(delta) * _T_LIMIT)
    return delta, np.clip(t, -_T_LIMIT, _T_LIMIT)


def _sorted_quantile(sorted_values: np.ndarray, q: float) -> float:
    """``np.quantile(sorted_values, q)`` (linear interpolation) of an already sorted array, without its
    per-call overhead (thousands of intervals per second in coverage studies)."""
    position = q * (sorted_values.size - 1)
    i = min(int(position), sorted_values.size - 2) if sorted_values.size > 1 else 0
    if sorted_values.size == 1:
        return float(sorted_values[0])
    lo, hi = float(sorted_values[i]), float(sorted_values[i + 1])
    return lo + (hi - lo) * (position - i) if lo != hi else lo


_T_LIMIT = 1e12  # |t*| beyond this only comes from a resample without spread; the interval is clipped anyway


@dataclass(frozen=True)
class _Inversion:
    """What turns one bootstrap's resamples into the gate's one-sided p-values (see :class:`PairedDelta`)."""

    sorted_draws: np.ndarray  # θ* − estimate (percentile, BCa) or t* (studentized), ascending
    z0: float = 0.0
    accel: float = 0.0
    se: float | None = None  # studentized: the sample's standard error
    support: tuple[float, float] = (-math.inf, math.inf)

    def p_values(self, estimate: float, tolerance: float) -> tuple[float, float]:
        """(p_regression, p_improvement): the α at which the (1 − 2α) interval's upper (lower) end touches
        −tolerance (+tolerance)."""
        if self.se is None:
            below = _quantile_level(self.sorted_draws, -tolerance - estimate, "left")
            above = _quantile_level(self.sorted_draws, tolerance - estimate, "right")
            return 1.0 - _nominal_level(below, self.z0, self.accel), _nominal_level(above, self.z0, self.accel)
        # Studentized: high = estimate − se·Q_t(α) < −tol exactly when α > level_right((estimate + tol)/se).
        # The interval is clipped to the cell means' range, so where that range decides, the p-value does.
        lo, hi = self.support
        p_reg = (0.0 if hi < -tolerance else 1.0 if lo >= -tolerance
                 else _quantile_level(self.sorted_draws, (estimate + tolerance) / self.se, "right"))
        p_imp = (0.0 if lo > tolerance else 1.0 if hi <= tolerance
                 else 1.0 - _quantile_level(self.sorted_draws, (estimate - tolerance) / self.se, "left"))
        return p_reg, p_imp


def _finish(sample: _Sample, resampled: np.ndarray, confidence: float,
            method: str) -> tuple[ConfidenceInterval, _Inversion]:
    """The interval of ``method`` from one sample's resamples: θ* − estimate (B,) for percentile and BCa,
    the resampled means of the studentized columns (B, 2 or 5) for studentized. Percentile is BCa with z0 =
    acceleration = 0; studentized is [θ − se·Q_t(1 − α/2), θ − se·Q_t(α/2)] (the bootstrap-t of Efron &
    Tibshirani 1993, ch. 12), whose t* carries the skew of the rows into the interval."""
    alpha = 1.0 - confidence
    support = (sample.lo_support, sample.hi_support)
    if method == "studentized":
        deltas, t = _studentized_draws(resampled, sample.dev.size)
        se = sample.standard_error()
        sorted_t = np.sort(t)
        t_low, t_high = _sorted_quantile(sorted_t, alpha / 2), _sorted_quantile(sorted_t, 1.0 - alpha / 2)
        low, high = sample.estimate - se * t_high, sample.estimate - se * t_low
        inversion = _Inversion(sorted_t, se=se, support=support)
    else:
        deltas = np.sort(resampled)
        z0, accel = (0.0, 0.0) if method == "percentile" else (_bias_correction(deltas),
                                                               _acceleration(sample.dev, sample.sizes, sample.n))
        levels = [_adjusted_level(a, z0, accel) for a in (alpha / 2, 1.0 - alpha / 2)]
        low, high = (sample.estimate + _sorted_quantile(deltas, level) for level in levels)
        inversion = _Inversion(deltas, z0, accel)
    # Every resample mean is a weighted mean of cell means, so the exact bootstrap distribution lies in
    # [min, max] of them: clip rounding (and, for studentized, the rare t* of a resample without spread).
    low, high = (min(max(float(v), support[0]), support[1]) for v in (low, high))
    se_boot = float(np.std(deltas, ddof=1)) if deltas.size > 1 else 0.0
    interval = ConfidenceInterval(sample.estimate, low, high, confidence, method, int(resampled.shape[0]),
                                  sample.n, sample.n_groups, se_boot)
    return interval, inversion


def bootstrap_intervals(samples: Sequence[ArrayLike] | np.ndarray, *,
                        groups: Sequence[ArrayLike | Sequence[Any]] | None = None, tolerance: float | None = None,
                        confidence: float = 0.95, n_resamples: int = 10_000, method: str = DEFAULT_METHOD,
                        seed: Seed = 0) -> list[ConfidenceInterval] | list[PairedDelta]:
    """The intervals of many samples at once: what :func:`bootstrap_mean` gives each sample (a 1-D array;
    a 2-D array is a list of rows), or with ``tolerance``, what :func:`paired_bootstrap_test` gives each
    sample of paired differences. For coverage studies (bench/coverage.py), where thousands of samples make per-sample calls
    too slow.

    All samples share ONE set of resample draws (each sample's interval is still a valid bootstrap of
    that sample; only the Monte-Carlo noise of the draws is shared), so the resampling of all of them is
    one matrix product. ``groups[i]`` labels the rows of sample i; every sample must have the same number
    of cells (rows, or groups when grouped). Finishing each interval is the same code as the one-sample functions.
    """
    confidence, n_resamples, method = _check_options(confidence, n_resamples, method)
    rows = [_as_scores(row, f"samples[{i}]") for i, row in enumerate(samples)]
    if not rows:
        raise ValueError("samples is empty: need at least one sample")
    if groups is not None and len(groups) != len(rows):
        raise ValueError(f"groups has {len(groups)} label lists for {len(rows)} samples")
    if tolerance is not None and (not math.isfinite(tolerance) or tolerance < 0):
        raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
    parts = [_Sample.of(row, None if groups is None else groups[i]) for i, row in enumerate(rows)]
    cells = {p.dev.size for p in parts}
    if len(cells) != 1:
        raise ValueError(f"every sample must have the same number of cells (rows or groups), got {sorted(cells)}")
    live = [i for i, p in enumerate(parts) if p.point is None]
    width = 5 if method == "studentized" and groups is not None else 2
    resampled = None
    if live:
        columns = [parts[i].studentized_columns() if method == "studentized"
                   else np.stack([parts[i].dev, np.ones_like(parts[i].dev) if parts[i].sizes is None
                                  else parts[i].sizes], axis=1) for i in live]
        resampled = _resample_deviations(np.concatenate(columns, axis=1), None, n_resamples, _generator(seed))
    out: list[Any] = []
    position = {i: j for j, i in enumerate(live)}
    for i, part in enumerate(parts):
        if part.point is not None:
            interval, inversion = part.point_interval(confidence, method, n_resamples), None
        else:
            block = resampled[:, position[i] * width:(position[i] + 1) * width]
            draws = block if method == "studentized" else block[:, 0] / block[:, 1]
            interval, inversion = _finish(part, draws, confidence, method)
        if tolerance is None:
            out.append(interval)
        elif inversion is None:
            out.append(PairedDelta(interval, float(tolerance), float(interval.estimate >= -tolerance),
                                   float(interval.estimate <= tolerance)))
        else:
            out.append(PairedDelta(interval, float(tolerance), *inversion.p_values(interval.estimate, tolerance)))
    return out


def _acceleration(dev: np.ndarray, sizes: np.ndarray | None, n: int) -> float:
    """BCa acceleration from the leave-one-cell-out jackknife (cell: row, or group), in O(cells).

    Leaving out cell g gives ``theta_(g) − estimate = −dev_g / (n − size_g)`` (the deviations sum to
    zero), so no loop over cells is needed.
    """
    jack = -dev / (n - (1.0 if sizes is None else sizes))
    d = jack.mean() - jack
    scale = np.abs(d).max()
    if scale == 0.0 or not np.isfinite(scale):  # one cell: no jackknife
        return 0.0
    d = d / scale  # keep cubes away from over/underflow
    return float(np.sum(d**3) / (6.0 * np.sum(d**2) ** 1.5))


def _bias_correction(sorted_deltas: np.ndarray) -> float:
    """BCa z0 from the mid-rank share of resamples below the estimate (ties count one half, which matters
    for tiny discrete samples), clipped to [0.5/B, 1 − 0.5/B] so that it stays finite."""
    b = sorted_deltas.size
    below = np.searchsorted(sorted_deltas, 0.0, "left")
    ties = np.searchsorted(sorted_deltas, 0.0, "right") - below
    return _NORMAL.inv_cdf(min(max((below + 0.5 * ties) / b, 0.5 / b), 1.0 - 0.5 / b))


def _adjusted_level(alpha: float, z0: float, accel: float) -> float:
    """The quantile level BCa uses for nominal level ``alpha`` (Efron 1987); ``alpha`` itself for percentile."""
    if z0 == 0.0 and accel == 0.0:
        return alpha
    w = z0 + _NORMAL.inv_cdf(alpha)
    den = 1.0 - accel * w
    if den <= 0.0:  # only for extreme acceleration: the limit of the adjusted level is 0 or 1
        return 1.0 if w > 0 else 0.0
    return _NORMAL.cdf(z0 + w / den)


def _nominal_level(level: float, z0: float, accel: float) -> float:
    """Inverse of :func:`_adjusted_level`: the nominal level whose BCa-adjusted level is ``level``.

    From Φ⁻¹(level) − z0 = w / (1 − a·w) with w = z0 + Φ⁻¹(nominal): w = u / (1 + a·u), u = Φ⁻¹(level) − z0.
    Where 1 + a·u <= 0 the adjustment never reaches ``level`` (its range is cut by the acceleration).
    """
    if z0 == 0.0 and accel == 0.0:
        return level
    if level <= 0.0 or level >= 1.0:
        return min(max(level, 0.0), 1.0)
    u = _NORMAL.inv_cdf(level) - z0
    den = 1.0 + accel * u
    if den <= 0.0:
        return 0.0 if u < 0 else 1.0
    return _NORMAL.cdf(u / den - z0)


def _quantile_level(sorted_values: np.ndarray, t: float, side: str) -> float:
    """The level q at which ``np.quantile(sorted_values, q)`` (linear interpolation) crosses ``t``.

    side="left": inf{q : Q(q) >= t}, so Q(q) < t exactly when q < level. side="right": sup{q : Q(q) <= t},
    so Q(q) > t exactly when q > level. Q is continuous and non-decreasing, which makes both exact.
    """
    b = sorted_values.size
    k = int(np.searchsorted(sorted_values, t, side))  # values < t (left) or <= t (right)
    if k == 0:
        return 0.0
    if k == b:
        return 1.0
    lo, hi = sorted_values[k - 1], sorted_values[k]
    return float((k - 1 + (t - lo) / (hi - lo)) / (b - 1))


# ---------------------------------------------------------------------------
# the gate over several suites, and what a suite can detect


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order: reject suite i when adjusted[i] < α.

    A gate that runs one test per suite at level α fails an unchanged candidate somewhere with
    probability up to 1 − (1 − α)^m over m suites. Holm (1979) keeps that family-wise false-alarm rate at
    α under any dependence between suites, and rejects at least whatever Bonferroni rejects. Sorted
    ascending, p_(j) becomes max over i <= j of min(1, (m − i)·p_(i)) (i from 0): monotone in the raw
    order, never below the raw p-value, at most 1.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"p_values must be a flat list, got shape {p.shape}")
    bad = np.flatnonzero(~((p >= 0.0) & (p <= 1.0)))
    if bad.size:
        raise ValueError(f"p_values[{bad[0]}] is {p[bad[0]]}; p-values must be in [0, 1]")
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    adjusted = np.empty(m)
    adjusted[order] = stepped
    return adjusted.tolist()


def standard_error_of_mean(values: ArrayLike, *, groups: ArrayLike | Sequence[Any] | None = None) -> float:
    """Standard error of the mean, cluster-robust when rows have groups; NaN with fewer than 2 cells.

    Without groups: s/√n. With groups (G clusters of sizes n_g and sums S_g, N rows): the ratio
    estimator's sandwich variance G/(G−1) · Σ_g (S_g − n_g·mean)² / N², which reduces to s²/n when every
    group is a single row. Analytic, so MDE and design effect need no resampling.
    """
    x = _as_scores(values, "values")
    dev, sizes = _cells((x - x.mean())[:, None], groups)
    cells = dev.shape[0]
    if cells < 2:
        return float("nan")
    return math.sqrt(cells / (cells - 1) * float(np.sum(dev[:, 0] ** 2))) / x.size


def minimum_detectable_effect(candidate: ArrayLike, baseline: ArrayLike, *,
                              groups: ArrayLike | Sequence[Any] | None = None, tolerance: float = 0.0,
                              alpha: float = 0.025, power: float = 0.8) -> float:
    """The smallest true drop (a positive number) that the gate flags with probability ``power``.

    The gate flags a regression when the two-sided 95% paired interval lies entirely below −tolerance,
    a one-sided test at ``alpha`` = 0.025 of H0: Δ >= −tolerance. Under a normal approximation with the
    paired, cluster-robust standard error SE of mean(candidate − baseline) observed here, a true Δ is
    flagged with probability ``power`` when −Δ >= tolerance + (z_{1−alpha} + z_{power})·SE
    (2.80·SE at the defaults). It says what this suite can detect: a smaller drop may pass unnoticed.
    NaN when SE is undefined (fewer than two rows or groups).
    """
    if not 0.0 < alpha < 1.0 or not 0.0 < power < 1.0:
        raise ValueError(f"alpha and power must be in (0, 1), got {alpha!r} and {power!r}")
    se = standard_error_of_mean(_paired_deltas(candidate, baseline), groups=groups)
    return float(tolerance) + (_NORMAL.inv_cdf(1.0 - alpha) + _NORMAL.inv_cdf(power)) * se


def design_effect(values: ArrayLike, groups: ArrayLike | Sequence[Any] | None) -> float:
    """Variance of the clustered mean over the variance of the mean of as many independent rows (Kish).

    A design effect of 3 means the suite carries the information of a third as many independent rows:
    rows of a group are alike. 1.0 without groups, when every group is one row, or when all values are
    equal (both variances are 0); NaN with fewer than two groups.
    """
    x = _as_scores(values, "values")
    if groups is None or x.min() == x.max():
        return 1.0
    return standard_error_of_mean(x, groups=groups) ** 2 / standard_error_of_mean(x) ** 2


def win_tie_loss(candidate: ArrayLike, baseline: ArrayLike, *, epsilon: float = TIE_EPSILON) -> WinTieLoss:
    """Count rows the candidate wins, ties (|Δ| <= epsilon) and loses against the baseline.

    A mean Δ hides whether a candidate is a little better everywhere or much better on a few rows; the
    counts show which. The default epsilon (1e-6) absorbs float32 embedding noise in cos³ (~1e-7) and is
    far below any per-row difference that matters.
    """
    if not math.isfinite(epsilon) or epsilon < 0:
        raise ValueError(f"epsilon must be a finite number >= 0, got {epsilon!r}")
    d = _paired_deltas(candidate, baseline)
    wins, losses = int(np.count_nonzero(d > epsilon)), int(np.count_nonzero(d < -epsilon))
    return WinTieLoss(wins, d.size - wins - losses, losses, float(epsilon))


#: Coverage of the default (studentized) 95% interval measured by bench/coverage.py on real per-row scores
#: (MiniLM SCS of constant prompts on 4,483 public rows, sentence-t5 scores, the shipped suites' rows):
#: (lowest, highest) over those populations and over the mean, the paired Δ and their clustered versions,
#: 1,000 samples per cell (MC error ≤ 0.01). Keyed by the suite size (rows, or groups) it was measured at.
MEASURED_COVERAGE: dict[int, tuple[float, float]] = {
    14: (0.893, 0.972), 32: (0.809, 0.962), 64: (0.863, 0.958), 136: (0.881, 0.966), 300: (0.899, 0.963),
    1_000: (0.938, 0.957),
}


def measured_coverage(size: int) -> tuple[float, float] | None:
    """The measured (lowest, highest) coverage of the default 95% interval at the largest measured size
    not above ``size`` (None below the smallest): what a suite of this size can expect (bench/coverage.py)."""
    known = [n for n in MEASURED_COVERAGE if n <= size]
    return MEASURED_COVERAGE[max(known)] if known else None


def small_sample_warning(n_rows: int, n_groups: int | None = None) -> str | None:
    """A warning when a suite is too small for its interval to be trusted at face value, else None.

    Bowyer, Aitchison & Ivanova (2025, "Don't use the CLT in LLM evals with fewer than a few hundred
    datapoints", ICML position paper) show CLT and bootstrap intervals under-cover below a few hundred
    rows; a cluster bootstrap's sample size is its number of groups, and below ~30 groups it under-covers
    too (Cameron, Gelbach & Miller 2008). The warning quotes the coverage bench/coverage.py measured at
    this size on real, skewed per-row scores (:func:`measured_coverage`), so the reader knows how much.
    """
    problems = []
    if n_rows < MIN_ROWS:
        problems.append(f"{n_rows} rows (< {MIN_ROWS})")
    if n_groups is not None and n_groups < MIN_GROUPS:
        problems.append(f"{n_groups} groups (< {MIN_GROUPS})")
    if not problems:
        return None
    measured = measured_coverage(n_rows if n_groups is None else n_groups)
    how_much = ("" if measured is None else
                f": on real skewed scores a 95% interval at this size covered the true mean {measured[0]:.0%}–"
                f"{measured[1]:.0%} of the time (bench/coverage.py)")
    return (f"small suite: {' and '.join(problems)}; bootstrap intervals under-cover at this size "
            f"(Bowyer et al. 2025){how_much}, so read them as optimistic")


# ---------------------------------------------------------------------------
# validation


def _as_scores(values: ArrayLike, name: str) -> np.ndarray:
    """``values`` as a 1-D finite float64 array, or a ValueError saying why not."""
    try:
        x = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric scores: {exc}") from None
    if x.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name} is empty: need at least one score")
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{name}[{i}] is {float(x[i])}; scores must be finite "
                         f"({bad.size} non-finite value(s), first at index {i})")
    return x


def _paired_deltas(candidate: ArrayLike, baseline: ArrayLike) -> np.ndarray:
    """candidate − baseline, row by row, after checking both score the same rows."""
    cand, base = _as_scores(candidate, "candidate"), _as_scores(baseline, "baseline")
    if cand.shape != base.shape:
        raise ValueError(f"candidate and baseline must score the same rows: got {cand.size} and {base.size} values")
    with np.errstate(over="ignore"):
        delta = cand - base
    if not np.isfinite(delta).all():
        i = int(np.flatnonzero(~np.isfinite(delta))[0])
        raise ValueError(f"candidate[{i}] - baseline[{i}] overflows float64")
    return delta


def _check_resamples(n_resamples: int) -> int:
    try:
        n_resamples = operator.index(n_resamples)
    except TypeError:
        raise ValueError(f"n_resamples must be an integer, got {n_resamples!r}") from None
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    return n_resamples


def _check_options(confidence: float, n_resamples: int, method: str) -> tuple[float, int, str]:
    """Validated (confidence, n_resamples, method); "BCa" (scipy's spelling) is accepted."""
    try:
        confidence = float(confidence)
    except (TypeError, ValueError):
        raise ValueError(f"confidence must be a number in (0, 1), got {confidence!r}") from None
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if not isinstance(method, str) or method.lower() not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    return confidence, _check_resamples(n_resamples), method.lower()


def _generator(seed: Seed) -> np.random.Generator:
    """A Generator from an int or SeedSequence; a Generator is used (and advanced) as it is."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, np.random.SeedSequence):
        return np.random.default_rng(seed)
    try:
        return np.random.default_rng(operator.index(seed))
    except TypeError:
        raise ValueError(f"seed must be an int, SeedSequence or Generator, got {type(seed).__name__}") from None
