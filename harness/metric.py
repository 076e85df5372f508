"""Sharpened cosine similarity (SCS), the competition's metric.

Per row: |cos(prediction, truth)| ** 3 (the absolute value is what the Kaggle scorer effectively did;
`signed=True` keeps the sign, so an anti-aligned answer scores negative). The suite score is the mean.
Pure functions on arrays: nothing here embeds, loads or prints.
"""

from __future__ import annotations

import numpy as np

SHARPENING_POWER = 3


def row_cosines(predictions: np.ndarray, truths: np.ndarray) -> np.ndarray:
    """Cosine of each prediction row with the truth row of the same index.

    Rows are normalised here (not trusted to be unit length), and a zero vector has cosine 0 with
    anything rather than NaN.
    """
    a = np.asarray(predictions, dtype=np.float64)
    b = np.asarray(truths, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"expected two matrices of the same shape (n, d), got {a.shape} and {b.shape}")
    dots = np.einsum("ij,ij->i", a, b)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosines = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), 0.0)
    return np.clip(cosines, -1.0, 1.0)


def scs_rows(predictions: np.ndarray, truths: np.ndarray, *, signed: bool = False,
             power: int = SHARPENING_POWER) -> np.ndarray:
    """Per-row sharpened cosine similarity: |cos|**power, or sign(cos)*|cos|**power when `signed`."""
    cosines = row_cosines(predictions, truths)
    sharpened = np.abs(cosines) ** power
    return np.sign(cosines) * sharpened if signed else sharpened


def scs(predictions: np.ndarray, truths: np.ndarray, *, signed: bool = False,
        power: int = SHARPENING_POWER) -> float:
    """Mean sharpened cosine similarity over rows (the number on the leaderboard)."""
    return float(np.mean(scs_rows(predictions, truths, signed=signed, power=power)))
