"""Robust lines: Siegel's repeated medians, which tolerate up to half the points being wrong, its
leave-one-out residuals, and the MAD scale that calls a residual an outlier.

`repeated_median_lines` is vectorised over rows of (B, k) arrays, so the bootstrap resamples of a
leaderboard model cost one array operation rather than one scipy call each.
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import ArrayLike

#: 1.4826·MAD estimates a normal distribution's standard deviation
MAD_TO_SD = 1.4826


def repeated_median_lines(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Siegel's repeated-medians line for each row of (B, k) arrays: (intercepts, slopes), each (B,).

    Per point i, the median slope to every point of different x; the line's slope is the median of those;
    its intercept the median of y − slope·x (scipy.stats.siegelslopes' "hierarchical" method, which the
    tests check it equals). A row whose x are all equal gets a flat line at median(y).
    """
    x, y = np.atleast_2d(np.asarray(x, dtype=float)), np.atleast_2d(np.asarray(y, dtype=float))
    dx = x[:, None, :] - x[:, :, None]
    dy = y[:, None, :] - y[:, :, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        slopes = np.where(dx != 0, dy / np.where(dx != 0, dx, 1.0), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: points with no other x
        slope = np.nanmedian(np.nanmedian(slopes, axis=2), axis=1)
    slope = np.where(np.isfinite(slope), slope, 0.0)
    return np.median(y - slope[:, None] * x, axis=1), slope


def siegel_line(x: ArrayLike, y: ArrayLike) -> tuple[float, float]:
    """(intercept, slope) of Siegel's repeated-medians line through the points (x, y)."""
    intercept, slope = repeated_median_lines(np.asarray(x, dtype=float)[None], np.asarray(y, dtype=float)[None])
    return float(intercept[0]), float(slope[0])


def loo_residuals(x: ArrayLike, y: ArrayLike) -> np.ndarray:
    """Each point's residual y − line(x) under the robust line fitted without it."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    out = np.empty(x.size)
    for j in range(x.size):
        keep = np.arange(x.size) != j
        intercept, slope = siegel_line(x[keep], y[keep])
        out[j] = y[j] - (intercept + slope * x[j])
    return out


def robust_sd(residuals: ArrayLike) -> float:
    """MAD_TO_SD · median |residual|: the residuals' spread, blind to the outliers it is used to find."""
    return MAD_TO_SD * float(np.median(np.abs(np.asarray(residuals, dtype=float))))
