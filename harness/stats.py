"""Bootstrap confidence intervals for mean scores and paired score differences.

Suites are small (50-1,300 rows), so "model A beats model B by 0.004" is only
worth reporting with an interval around it. This module resamples rows (or
whole groups of rows, when rows are clustered) and reports percentile or BCa
intervals as plain data, in the spirit of ``scipy.stats.bootstrap``.

How resampling is made fast
---------------------------
A resample of ``m`` cells (rows, or groups) is fully described by its count
vector ``c ~ Multinomial(m, uniform)``, and its statistic is linear in ``c``:
a block of resamples is a (count matrix) @ (cell values) product. Drawing
``m`` indices per resample costs ~10 random bits and a gather per draw;
instead the counts are drawn *Poissonized*:

1. every cell gets an independent ``Poisson(lam)`` count, ``lam < 1``: one
   16-bit random number gives the counts of 4 cells by table lookup (exact
   inversion; the ~1% of table slices that straddle an outcome boundary are
   refined with 37 more random bits);
2. given their total ``T``, iid Poisson counts are exactly ``Multinomial(T)``,
   so adding ``m - T`` uniform index draws gives an exact ``Multinomial(m)``
   row; a row with ``T > m`` is discarded and drawn with ``m`` index draws.

Rows are therefore exact multinomial resamples (up to float64 inversion, as
for numpy's own samplers), at ~4 cells per 16 random bits and one gather per
4 cells, with ``lam`` chosen so that index draws are only ~7% of the work.

Randomness, memory, reproducibility
-----------------------------------
Resamples are processed in blocks; block ``j`` uses its own PCG64 substream
(the seed's stream advanced by ``j * 2**64``). The block size follows from
``min(max_chunk_bytes, _BLOCK_BYTES)``, so every ``max_chunk_bytes >=
_BLOCK_BYTES`` (4 MiB; the default is 32 MiB) gives bit-identical results. A
smaller budget means smaller blocks and therefore a different, equally valid
and equally reproducible, set of resamples. Work inside a block is split into
cache-sized sub-chunks without affecting the random stream.

No BLAS matrix-vector products are used: OpenBLAS threads gemv and, on small
machines, some shapes stall for milliseconds (seen: 8 ms for 384 x 1300).
"""

from __future__ import annotations

import functools
import math
import operator
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import ndtr, ndtri

__all__ = ["ConfidenceInterval", "bootstrap_mean", "paired_bootstrap_delta"]

Seed = int | np.random.Generator | np.random.SeedSequence

_METHODS = ("percentile", "bca")
_BLOCK_BYTES = 4 * 2**20  # working set per block: big enough to amortise call overhead
_DRAW_BITS = 16  # random bits per table lookup
_CELLS_PER_DRAW = 4  # Poisson counts produced by one lookup
_MAX_COUNT = 20  # P(Poisson(<1) > 20) < 2**-60: beyond float64 inversion resolution
_CACHE_BYTES = 1024 * 2**10  # Poisson sub-chunk buffers: stay in L2
_DOT_SEGMENT = 8192  # cells per float32 dot (single-threaded, exact integer sums)


@dataclass(frozen=True)
class ConfidenceInterval:
    """A bootstrap confidence interval, as plain data.

    ``estimate`` is the statistic on the full sample (a mean, or a mean
    difference); ``standard_error`` is the standard deviation of the bootstrap
    distribution. ``n_groups`` is the number of clusters when rows were
    resampled by group, else ``None``.
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
        for key in ("n_resamples", "n"):
            out[key] = int(out[key])
        out["n_groups"] = None if self.n_groups is None else int(self.n_groups)
        out["method"] = str(self.method)
        return out


def bootstrap_mean(
    values: ArrayLike,
    *,
    groups: ArrayLike | None = None,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    method: str = "bca",
    seed: Seed = 0,
    max_chunk_bytes: int = 32 * 2**20,
) -> ConfidenceInterval:
    """Bootstrap confidence interval for the mean of ``values``.

    With ``groups`` (one hashable label per row) whole groups are resampled
    with replacement (cluster bootstrap), and a resample's statistic is
    (sum of values over drawn groups) / (number of rows over drawn groups).
    Use it when rows within a group are correlated (e.g. several prompts
    derived from one source text): row resampling would then understate the
    uncertainty.

    ``method`` is ``"bca"`` (bias-corrected and accelerated; acceleration from
    the analytic row or leave-one-group-out jackknife) or ``"percentile"``.
    ``seed`` is an int, a ``SeedSequence`` or a ``Generator`` (which is
    advanced by one draw). ``max_chunk_bytes`` bounds the working memory of
    one block of resamples (see the module docstring for how it interacts
    with reproducibility).

    Degenerate inputs (one row, one group, or a constant statistic across
    cells) give ``low == high == estimate`` and ``standard_error == 0``.
    """
    x = _as_scores(values, "values")
    return _bootstrap(
        x,
        groups,
        confidence=confidence,
        n_resamples=n_resamples,
        method=method,
        seed=seed,
        max_chunk_bytes=max_chunk_bytes,
    )


def paired_bootstrap_delta(
    candidate: ArrayLike,
    baseline: ArrayLike,
    *,
    groups: ArrayLike | None = None,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    method: str = "bca",
    seed: Seed = 0,
    max_chunk_bytes: int = 32 * 2**20,
) -> ConfidenceInterval:
    """Bootstrap confidence interval for ``mean(candidate - baseline)``.

    Both arrays score the same rows in the same order, and rows are resampled
    jointly: pairing removes the between-row variance that the two systems
    share, which is usually most of it, so this interval is much narrower
    than comparing two independent intervals. Other arguments are as for
    :func:`bootstrap_mean`.
    """
    cand = _as_scores(candidate, "candidate")
    base = _as_scores(baseline, "baseline")
    if cand.shape != base.shape:
        raise ValueError(
            f"candidate and baseline must score the same rows: got {cand.size} and {base.size} values"
        )
    with np.errstate(over="ignore"):
        delta = cand - base
    if not np.isfinite(delta).all():
        i = int(np.flatnonzero(~np.isfinite(delta))[0])
        raise ValueError(f"candidate[{i}] - baseline[{i}] overflows float64")
    return _bootstrap(
        delta,
        groups,
        confidence=confidence,
        n_resamples=n_resamples,
        method=method,
        seed=seed,
        max_chunk_bytes=max_chunk_bytes,
    )


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
        raise ValueError(
            f"{name}[{i}] is {float(x[i])}; scores must be finite "
            f"({bad.size} non-finite value(s), first at index {i})"
        )
    return x


def _check_options(
    confidence: float, n_resamples: int, method: str, max_chunk_bytes: int
) -> tuple[float, int, str]:
    """Validated (confidence, n_resamples, method); "BCa" (scipy's spelling) is accepted."""
    try:
        confidence = float(confidence)
    except (TypeError, ValueError):
        raise ValueError(f"confidence must be a number in (0, 1), got {confidence!r}") from None
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    try:
        n_resamples = operator.index(n_resamples)
    except TypeError:
        raise ValueError(f"n_resamples must be an integer, got {n_resamples!r}") from None
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not isinstance(method, str) or method.lower() not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    try:
        max_chunk_bytes = operator.index(max_chunk_bytes)
    except TypeError:
        raise ValueError(f"max_chunk_bytes must be an integer, got {max_chunk_bytes!r}") from None
    if max_chunk_bytes < 1:
        raise ValueError(f"max_chunk_bytes must be positive, got {max_chunk_bytes}")
    return confidence, n_resamples, method.lower()


def _root_seed(seed: Seed) -> np.random.SeedSequence:
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, np.random.Generator):
        # One draw from the caller's stream: same generator state, same result.
        return np.random.SeedSequence(seed.integers(2**63, size=4).tolist())
    try:
        return np.random.SeedSequence(operator.index(seed))
    except TypeError:
        raise ValueError(
            f"seed must be an int, SeedSequence or Generator, got {type(seed).__name__}"
        ) from None


def _factorize(groups: ArrayLike, n: int) -> tuple[np.ndarray, int]:
    """Group codes 0..G-1 in order of first appearance.

    First-appearance order (not sorted label order) makes the cells, and so the
    resamples, independent of what the labels are: relabelling groups by any
    bijection gives identical intervals.
    """
    if isinstance(groups, np.ndarray) and groups.ndim != 1:
        raise ValueError(f"groups must be 1-D, got shape {groups.shape}")
    if isinstance(groups, np.ndarray) and groups.dtype != object:
        if groups.size != n:
            raise ValueError(f"groups has {groups.size} labels for {n} rows")
        _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
        rank = np.empty(first.size, dtype=np.intp)
        rank[np.argsort(first, kind="stable")] = np.arange(first.size)
        return rank[inverse.reshape(-1)], int(first.size)
    labels = list(groups.tolist() if isinstance(groups, np.ndarray) else groups)
    if len(labels) != n:
        raise ValueError(f"groups has {len(labels)} labels for {n} rows")
    index: dict[Any, int] = {}
    codes = np.fromiter((index.setdefault(g, len(index)) for g in labels), np.intp, n)
    return codes, len(index)


# ---------------------------------------------------------------------------
# the bootstrap


def _bootstrap(
    x: np.ndarray,
    groups: ArrayLike | None,
    *,
    confidence: float,
    n_resamples: int,
    method: str,
    seed: Seed,
    max_chunk_bytes: int,
) -> ConfidenceInterval:
    confidence, n_resamples, method = _check_options(confidence, n_resamples, method, max_chunk_bytes)
    root = _root_seed(seed)
    n = x.size
    if groups is None:
        n_groups = None
        sizes = None
        cell_means = x
    else:
        codes, n_groups = _factorize(groups, n)
        sizes = np.bincount(codes, minlength=n_groups).astype(np.float64)
        cell_means = np.bincount(codes, weights=x, minlength=n_groups) / sizes

    def result(estimate: float, low: float, high: float, se: float) -> ConfidenceInterval:
        return ConfidenceInterval(
            estimate=float(estimate),
            low=float(low),
            high=float(high),
            confidence=confidence,
            method=method,
            n_resamples=n_resamples,
            n=n,
            n_groups=n_groups,
            standard_error=float(se),
        )

    # Degenerate: every resample has the same statistic, so the interval is a point.
    if x.min() == x.max():
        return result(x[0], x[0], x[0], 0.0)
    lo_support, hi_support = float(cell_means.min()), float(cell_means.max())
    if lo_support == hi_support:  # one group, or identical group means
        return result(lo_support, lo_support, lo_support, 0.0)

    estimate = float(np.mean(x))
    dev = x - estimate if groups is None else np.bincount(codes, weights=x - estimate)
    # delta[b] = theta*_b - estimate; kept relative to the estimate for precision.
    delta = _resample_deviations(dev, sizes, n, n_resamples, root, max_chunk_bytes)

    alpha = 1.0 - confidence
    if method == "percentile":
        levels = np.array([alpha / 2, 1 - alpha / 2])
    else:
        levels = _bca_levels(delta, _jackknife_acceleration(dev, sizes, n), alpha)
    low, high = estimate + np.quantile(delta, levels)
    # Every resample statistic is a weighted mean of cell means, so the exact
    # bootstrap distribution lives in [min, max] of them; clip float32 rounding.
    low = min(max(low, lo_support), hi_support)
    high = min(max(high, lo_support), hi_support)
    se = float(np.std(delta, ddof=1)) if n_resamples > 1 else 0.0
    return result(estimate, low, high, se)


def _jackknife_acceleration(dev: np.ndarray, sizes: np.ndarray | None, n: int) -> float:
    """BCa acceleration from the leave-one-cell-out jackknife, in O(cells).

    Leaving out cell g gives ``theta_(g) - estimate = -dev_g / (n - size_g)``
    (the deviations sum to zero), so no loop over cells is needed.
    """
    rest = n - (1.0 if sizes is None else sizes)
    jack = -dev / rest
    d = jack.mean() - jack
    scale = np.abs(d).max()
    if scale == 0.0:
        return 0.0
    d = d / scale  # keep cubes away from over/underflow
    return float(np.sum(d**3) / (6.0 * np.sum(d**2) ** 1.5))


def _bca_levels(delta: np.ndarray, accel: float, alpha: float) -> np.ndarray:
    """Quantile levels of the BCa interval (Efron 1987), as in scipy.

    z0 uses the mid-rank share of resamples below the estimate (ties count one
    half, which matters for tiny discrete samples), clipped to
    [0.5/B, 1 - 0.5/B] so it stays finite.
    """
    b = delta.size
    share = (np.count_nonzero(delta < 0) + 0.5 * np.count_nonzero(delta == 0)) / b
    z0 = ndtri(min(max(share, 0.5 / b), 1 - 0.5 / b))
    zz = z0 + ndtri(np.array([alpha / 2, 1 - alpha / 2]))
    den = 1.0 - accel * zz
    # den <= 0 only for extreme accel; the limit of the adjusted level is 0 or 1.
    adjusted = np.where(den > 0, z0 + zz / np.where(den > 0, den, 1.0), np.copysign(np.inf, zz))
    return ndtr(adjusted)


# ---------------------------------------------------------------------------
# resampling engine


@dataclass(frozen=True)
class _PoissonTable:
    """Exact inversion sampler for 4 iid Poisson(lam) counts from 16 random bits.

    Outcomes (4-tuples of counts) are ordered by decreasing probability and
    laid on [0, 1) by their CDF. Of the 2**16 equal slices of [0, 1), those
    inside a single outcome are "clean": ``counts[r]`` resolves them. The ~1%
    that straddle a CDF boundary are "hard" and numbered last (``r >=
    n_clean``); a hard draw gets a 37-bit position inside its slice, resolved
    by a 256-way sub-table or, when the sub-slice straddles a boundary too, by
    searching the CDF. Net effect: inversion of the CDF at 2**-53 resolution,
    as for numpy's own float-based samplers.
    """

    counts: np.ndarray  # (2**16, 4) float32; rows >= n_clean are zero
    n_clean: int
    hard_slices: np.ndarray  # (n_hard,) float64: slice index of hard draw n_clean + h
    sub_outcomes: np.ndarray  # (n_hard * 256,) intp: outcome per sub-slice, -1 if straddling
    bounds: np.ndarray  # inner CDF boundaries, ascending
    outcomes: np.ndarray  # (n_outcomes, 4) float32

    @functools.cached_property
    def outcomes_c(self) -> np.ndarray:
        """``outcomes`` with each row (4 float32) viewed as one complex128."""
        return self.outcomes.view(np.complex128).reshape(-1)


_SUB_BITS = 8
_POS_BITS = 37  # 16 slice bits + 37 position bits = a 53-bit uniform


@functools.cache
def _poisson_table(level: int) -> _PoissonTable:
    """The sampler for lam = 1 - 2**-level (~20 ms to build, then cached)."""
    lam = 1.0 - 2.0**-level
    k = np.arange(_MAX_COUNT + 1)
    pmf = np.exp(-lam + k * math.log(lam) - np.array([math.lgamma(i + 1.0) for i in k]))
    joint = functools.reduce(np.multiply.outer, [pmf] * _CELLS_PER_DRAW).ravel()
    keep = np.flatnonzero(joint > 2.0**-90)  # the rest is ~1e-24 in total
    keep = keep[np.argsort(-joint[keep], kind="stable")]
    cdf = np.cumsum(joint[keep])
    bounds = cdf[:-1] / cdf[-1]
    shape = (_MAX_COUNT + 1,) * _CELLS_PER_DRAW
    outcomes = np.stack(np.unravel_index(keep, shape), axis=1).astype(np.float32)

    def resolve(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Outcome of each interval [lo, hi), or -1 if it straddles a boundary."""
        first = np.searchsorted(bounds, lo, side="right")
        return np.where(first == np.searchsorted(bounds, hi, side="left"), first, -1)

    slices = 2**_DRAW_BITS
    edges = np.arange(slices + 1) / slices
    outcome = resolve(edges[:-1], edges[1:])
    clean = outcome >= 0
    n_clean = int(clean.sum())
    counts = np.zeros((slices, _CELLS_PER_DRAW), dtype=np.float32)
    counts[:n_clean] = outcomes[outcome[clean]]
    hard = np.flatnonzero(~clean).astype(np.float64)
    sub = (hard[:, None] + np.arange(2**_SUB_BITS + 1) / 2**_SUB_BITS) / slices
    return _PoissonTable(
        counts=counts,
        n_clean=n_clean,
        hard_slices=hard,
        sub_outcomes=resolve(sub[:, :-1], sub[:, 1:]).reshape(-1),
        bounds=bounds,
        outcomes=outcomes,
    )


def _index_draws(m: int, level: int) -> float:
    """Expected index draws per resample at lam = 1 - 2**-level.

    They are the deficit m - T plus all m cells of rejected rows (T > m);
    uses the normal approximation T ~ N(lam m, lam m).
    """
    mean = (1.0 - 2.0**-level) * m
    sd = math.sqrt(mean)
    z = (m - mean) / sd
    p_over = 0.5 * math.erfc(z / math.sqrt(2.0))
    shortfall = (m - mean) * (1.0 - p_over) + sd * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    return shortfall + m * p_over


def _poisson_level(m: int) -> int:
    """Choose lam = 1 - 2**-level for m cells (0 means: no Poisson stage).

    Index draws cost several times more per cell than Poisson lookups, so pick
    the level that minimises their expected number.
    """
    if m < 64:
        return 0
    return min(range(1, 40), key=lambda level: _index_draws(m, level))


@dataclass
class _Cells:
    """The resampling units (rows, or groups) in the layout the engine uses.

    ``col`` holds one float32 column per linear statistic needed from a
    resample's counts: scaled deviation sums, a 1 marking real (non-padding)
    cells, and, for groups, the row counts. Padding makes the cell count a
    multiple of 4 (one table lookup = 4 cells); padding cells have all-zero
    columns so whatever counts they draw are ignored.
    """

    m: int
    col: list[np.ndarray]  # p contiguous (m4,) float32 columns
    q: int  # index draws are codes in [0, q*m); cell = code // q
    draw_cols: list[np.ndarray]  # deviations (and sizes), float64, each repeated q times

    @property
    def shape(self) -> tuple[int, int]:
        """(padded cell count m4, number of columns p)."""
        return self.col[0].size, len(self.col)


def _uniform_codes(bitgen: np.random.BitGenerator, m: int, q: int, size: int) -> np.ndarray:
    """``size`` iid uniform integers in [0, q*m): code // q is a uniform cell.

    Exact (rejection, no modulo bias). For m <= 2**16, q = 2**16 // m and each
    draw is 16 raw bits, kept when below q*m (at most half are rejected, ~1%
    for m = 1,300); returning the code rather than code // q lets callers look
    values up in q-fold repeated tables. Cheaper than ``Generator.integers``.
    """
    if q == 1:
        return np.random.Generator(bitgen).integers(0, m, size=size, dtype=np.uint32)
    limit = q * m
    parts: list[np.ndarray] = []
    got = 0
    while got < size:
        want = size - got
        n = int(want * 2**16 / limit + 4 * math.sqrt(want) + 16)
        r = bitgen.random_raw(-(-n // 4)).view(np.uint16)
        parts.append((r[r < limit] if limit < 2**16 else r)[:want])
        got += parts[-1].size
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _segment_sums(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Sums of consecutive segments of ``values[:-1]`` with the given lengths.

    ``values`` carries one trailing 0 so every start is in range for reduceat,
    which returns ``values[start]`` (not 0) for empty segments: masked below.
    """
    starts = np.cumsum(lengths) - lengths
    sums = np.add.reduceat(values, starts)
    sums[lengths == 0] = 0.0
    return sums


def _index_draw_sums(bitgen: np.random.BitGenerator, cells: _Cells, missing: np.ndarray) -> list[np.ndarray]:
    """Per row, sums of each draw column over ``missing[row]`` uniform cells."""
    codes = _uniform_codes(bitgen, cells.m, cells.q, int(missing.sum()))
    values = np.zeros(codes.size + 1)
    sums = []
    for table in cells.draw_cols:
        table.take(codes, out=values[:-1])
        sums.append(_segment_sums(values, missing))
    return sums


def _row_dots(a: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Row-wise dot products ``a @ v`` in float64, without BLAS gemv.

    OpenBLAS threads gemv from ~10k elements and, on small machines, some
    shapes stall for milliseconds (seen: 8 ms for 384 x 1300). Per-row dots
    over column segments of <= 8192 cells stay single-threaded, and the short
    float32 accumulations keep integer sums (the Poisson totals) exact.
    """
    out = np.zeros(a.shape[0])
    for lo in range(0, a.shape[1], _DOT_SEGMENT):
        out += _vecdot(a[:, lo : lo + _DOT_SEGMENT], v[lo : lo + _DOT_SEGMENT])
    return out


def _vecdot(a: np.ndarray, v: np.ndarray) -> np.ndarray:
    if hasattr(np, "vecdot"):  # numpy >= 2.0
        return np.vecdot(a, v)
    return np.einsum("ij,j->i", a, v)


def _resolve_hard(bitgen: np.random.BitGenerator, table: _PoissonTable, slices: np.ndarray) -> np.ndarray:
    """Outcomes of hard lookups (16-bit draws >= n_clean), as complex128 rows.

    Each gets a 37-bit position inside its slice: the 256-way sub-table
    resolves it unless that sub-slice also straddles a boundary, in which case
    the CDF is searched at the full 53-bit position.
    """
    h = slices.astype(np.intp) - table.n_clean
    pos = (bitgen.random_raw(h.size) >> np.uint64(64 - _POS_BITS)).astype(np.float64)
    pos *= 2.0**-_POS_BITS  # exact: slice + pos fits in 53 bits
    outcome = table.sub_outcomes.take(h * 2**_SUB_BITS + (pos * 2**_SUB_BITS).astype(np.intp))
    still = np.flatnonzero(outcome < 0)
    if still.size:
        u = (table.hard_slices[h[still]] + pos[still]) * 2.0**-_DRAW_BITS
        outcome[still] = np.searchsorted(table.bounds, u, side="right")
    return table.outcomes_c.take(outcome)


def _poisson_sums(
    bitgen: np.random.BitGenerator, table: _PoissonTable, cells: _Cells, k: int, sub_rows: int
) -> np.ndarray:
    """``counts @ cells.col`` for k rows of iid Poisson counts: (k, p) float64.

    The block's lookups (and then its hard-lookup refinements) are drawn
    first; table gathers and dot products then run over cache-sized
    sub-chunks, whose size therefore does not affect the result.
    """
    m4, p = cells.shape
    per_row = m4 // _CELLS_PER_DRAW
    n_draws = k * per_row
    r = bitgen.random_raw(-(-n_draws // 4)).view(np.uint16)[:n_draws]
    hard_at = np.flatnonzero(r >= table.n_clean)
    hard = _resolve_hard(bitgen, table, r[hard_at])
    sub = min(k, sub_rows)
    # Where each sub-chunk's hard lookups start in hard_at.
    first_hard = np.searchsorted(hard_at, np.arange(0, k + sub, sub) * per_row)
    counts_buf = np.empty(sub * m4, dtype=np.float32)
    idx_buf = np.empty(sub * per_row, dtype=np.intp)
    sums = np.empty((k, p))
    for j, lo in enumerate(range(0, k, sub)):
        rows = min(sub, k - lo)
        idx = idx_buf[: rows * per_row]
        np.copyto(idx, r[lo * per_row : (lo + rows) * per_row], casting="unsafe")
        counts = counts_buf[: rows * m4]
        # take() would convert indices to intp anyway; mode="wrap" skips its
        # bounds-error path (indices are < 2**16 by construction).
        table.counts.take(idx, axis=0, out=counts.reshape(-1, _CELLS_PER_DRAW), mode="wrap")
        # Overwrite hard lookups with their resolved counts, one 16-byte
        # element (4 float32 counts) each: 1-D fancy assignment is fast.
        a, b = first_hard[j], first_hard[j + 1]
        counts.view(np.complex128)[hard_at[a:b] - lo * per_row] = hard[a:b]
        for c in range(p):
            sums[lo : lo + rows, c] = _row_dots(counts.reshape(rows, m4), cells.col[c])
    return sums


class _Plan(NamedTuple):
    """How resamples of m cells are processed (see :func:`_plan`)."""

    level: int  # lam = 1 - 2**-level for the Poisson stage; 0: index draws only
    rows: int  # resamples per block (one random substream each)
    sub_rows: int  # resamples per cache-sized sub-chunk of the Poisson stage
    block_bytes: int  # estimated working memory of one block


def _plan(m: int, n_resamples: int, max_chunk_bytes: int) -> _Plan:
    """Block sizes for resampling m cells within ``max_chunk_bytes``.

    Per resample a block holds its 16-bit lookups and hard-lookup records
    (~1 B/cell) and its index draws (code, value, segment bookkeeping: 24 B
    each); the sub-chunk buffers add 8 B of indices + 16 B of counts per
    lookup (6 B/cell). Only ``rows`` affects the random stream, and it depends
    on ``max_chunk_bytes`` only below ``_BLOCK_BYTES``.
    """
    level = _poisson_level(m)
    m4 = -(-m // _CELLS_PER_DRAW) * _CELLS_PER_DRAW
    if level:
        row_bytes = int(24 * (_index_draws(m, level) + 16) + m4 + 64)
        sub_rows = max(1, min(_CACHE_BYTES, max_chunk_bytes // 2) // (6 * m4))
        fixed = sub_rows * 6 * m4
    else:
        row_bytes, sub_rows, fixed = 24 * m + 64, 0, 0
    budget = min(max_chunk_bytes, _BLOCK_BYTES) - fixed
    if budget < row_bytes:
        raise ValueError(
            f"max_chunk_bytes={max_chunk_bytes} is too small for resamples of "
            f"{m} cells: need at least {fixed + row_bytes} bytes"
        )
    rows = min(n_resamples, budget // row_bytes)
    return _Plan(level, rows, sub_rows, fixed + rows * row_bytes)


def _worker_count() -> int:
    """Threads for resampling: the cores this process may use (PRH_BOOTSTRAP_THREADS overrides)."""
    if os.environ.get("PRH_BOOTSTRAP_THREADS"):
        return max(1, int(os.environ["PRH_BOOTSTRAP_THREADS"]))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def _resample_deviations(
    dev: np.ndarray,
    sizes: np.ndarray | None,
    n: int,
    n_resamples: int,
    root: np.random.SeedSequence,
    max_chunk_bytes: int,
) -> np.ndarray:
    """``theta*_b - estimate`` for each resample b of the cells.

    ``dev[g]`` is cell g's sum of (value - estimate); ``sizes[g]`` its row
    count (``None``: one row per cell, so every resample has n rows).
    """
    m = dev.size
    m4 = -(-m // _CELLS_PER_DRAW) * _CELLS_PER_DRAW
    # Scale deviations into [-1, 1] by a power of two (exact) so float32 keeps
    # full relative precision whatever the magnitude of the scores.
    scale = math.ldexp(1.0, int(np.frexp(np.abs(dev).max())[1]))
    unit = dev / scale
    columns = [unit, np.ones(m)] + ([] if sizes is None else [sizes])
    col = [np.pad(c, (0, m4 - m)).astype(np.float32) for c in columns]
    q = 2**16 // m if m <= 2**16 else 1
    draw_cols = [np.repeat(c, q) for c in [unit] + ([] if sizes is None else [sizes])]
    cells = _Cells(m=m, col=col, q=q, draw_cols=draw_cols)

    plan = _plan(m, n_resamples, max_chunk_bytes)
    level, rows, sub_rows = plan.level, plan.rows, plan.sub_rows

    # Tolerance for exact ties, in units of scaled deviation sums: float32
    # rounding of a sum of ~m terms in [-1, 1] stays ~100x below it, while the
    # step between distinct sums for discrete scores (score gap / scale) is far
    # above it for suite sizes here. Near-ties of continuous scores caught by
    # it fall evenly on both sides, so counting them as ties leaves z0 unbiased.
    tie_tol = m * 2.0**-20
    table = _poisson_table(level) if level else None
    start_state = np.random.PCG64(root).state
    out = np.empty(n_resamples, dtype=np.float64)

    def run_block(block: int) -> None:
        lo = block * rows
        k = min(rows, n_resamples - lo)
        bitgen = np.random.PCG64()
        bitgen.state = start_state
        bitgen.advance(block << 64)  # disjoint substream per block
        if table is None:
            sums = np.zeros((k, len(col)))
        else:
            sums = _poisson_sums(bitgen, table, cells, k, sub_rows)
            # A row whose Poisson total overshoots m is rejected and drawn
            # entirely by index draws instead: both paths give exact
            # Multinomial(m) rows, so the mixture does too.
            sums[sums[:, 1] > m] = 0.0
        # The m - T missing draws are plain uniform index draws.
        missing = m - sums[:, 1].astype(np.intp)
        extra = _index_draw_sums(bitgen, cells, missing)
        num = sums[:, 0] + extra[0]
        # A resample whose statistic equals the estimate (its deviation sum
        # is 0, e.g. the identity resample, or common with discrete scores)
        # comes out as float32 noise instead; BCa counts ties, so snap them.
        num[np.abs(num) <= tie_tol] = 0.0
        if sizes is None:
            out[lo : lo + k] = num * (scale / n)
        else:
            out[lo : lo + k] = num * scale / (sums[:, 2] + extra[1])

    n_blocks = -(-n_resamples // rows)
    workers = min(n_blocks, _worker_count())
    if workers <= 1:
        for block in range(n_blocks):
            run_block(block)
    else:
        # Blocks own disjoint substreams and disjoint slices of `out`, so running them on several
        # cores (numpy releases the GIL in the heavy calls) gives bit-identical results.
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(run_block, range(n_blocks)))
    return out
