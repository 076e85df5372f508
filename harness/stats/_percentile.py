"""Percentile intervals read off draws that were made elsewhere (a model's resampled predictions, a
correlation over resamples): the same quantiles the bootstrap's percentile method takes."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def percentile_interval(draws: ArrayLike, confidence: float, *, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(low, high): the (1 − confidence)/2 and (1 + confidence)/2 quantiles of `draws` along `axis`."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(np.asarray(draws, dtype=np.float64), [alpha, 1.0 - alpha], axis=axis)
    return low, high
