"""Rank correlation across a few dozen items (probes), vectorised over bootstrap resamples.

Spearman's ρ is Pearson's r of average ranks. Ranks are counted by comparison, O(items²) per row, which
is nothing for a few dozen probes and needs no scipy: the calibration's correlation intervals rank every
resample in one array operation, and a single ρ (`spearman`) is the same computation on one row.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def row_ranks(a: ArrayLike) -> np.ndarray:
    """Average ranks (1-based; ties share their mean rank, as scipy's rankdata) within each row of `a`."""
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    below = (a[:, None, :] < a[:, :, None]).sum(axis=2)
    equal = (a[:, None, :] == a[:, :, None]).sum(axis=2)
    return below + (equal + 1) / 2.0


def row_pearson(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Pearson correlation of each row of `a` with the same row of `b` (or with `b` itself, broadcast);
    NaN where either row is constant (float noise on all-equal rows is not a ranking)."""
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.broadcast_to(np.asarray(b, dtype=np.float64), a.shape)
    ac = a - a.mean(axis=1, keepdims=True)
    bc = b - b.mean(axis=1, keepdims=True)
    denominator = np.sqrt((ac * ac).sum(axis=1) * (bc * bc).sum(axis=1))
    scale = np.maximum(np.abs(a).max(axis=1), 1e-300) * np.maximum(np.abs(b).max(axis=1), 1e-300)
    defined = denominator > 1e-12 * scale
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(defined, (ac * bc).sum(axis=1) / np.where(defined, denominator, 1.0), np.nan)
    return np.clip(r, -1.0, 1.0)


def row_spearman(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Spearman's ρ of each row of `a` with the same row of `b`; NaN where either row is constant."""
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    return row_pearson(row_ranks(a), row_ranks(np.broadcast_to(np.asarray(b, dtype=np.float64), a.shape)))


def spearman(a: ArrayLike, b: ArrayLike) -> float | None:
    """Spearman's ρ of two equally long sequences, or None when it says nothing: fewer than 3 items, or
    either sequence constant (no ranking to compare)."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.size != b.size:
        raise ValueError(f"spearman needs two sequences of the same length, got {a.size} and {b.size}")
    if a.size < 3:
        return None
    rho = float(row_spearman(a, b)[0])
    return None if np.isnan(rho) else rho
