"""Sharpened cosine similarity (SCS), the competition's metric, and the only place its cube is written.

Per row: |cos(prediction, truth)| ** 3 (the absolute value is what the Kaggle scorer effectively did;
`signed=True` keeps the sign, so an anti-aligned answer scores negative). The suite score is the mean.

Three shapes of the same number, so that nobody writes the cube again:
- per row (`scs_rows`, `scs`): prediction i against truth i, what `harness.evaluation` reports;
- batched (`scs_matrix`, `weighted_scs`): every prediction against every truth, for constant answers
  (one vector scores every row: probes, mean-prompt searches, the oracle bound);
- one against many (`scs_against`): one prediction against each truth.
`sharpen` turns cosines into scores for callers that already hold cosines (numpy arrays or torch
tensors, differentiably), `sharpen_slope` is its derivative, and `torch_scs_matrix` is the batched form in
torch for searches that need gradients (torch is imported only there).

Pure functions on arrays: nothing here embeds, loads or prints.
"""

from __future__ import annotations

import numpy as np

SHARPENING_POWER = 3


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, float64; a zero row stays zero (cosine 0 with anything, never NaN)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


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


def cosine_matrix(predictions: np.ndarray, truths: np.ndarray) -> np.ndarray:
    """(m, n) cosines of each of m prediction rows with each of n truth rows (rows normalised here)."""
    a, b = np.atleast_2d(predictions), np.atleast_2d(truths)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"expected (m, d) predictions and (n, d) truths, got {a.shape} and {b.shape}")
    return np.clip(unit_rows(a) @ unit_rows(b).T, -1.0, 1.0)


def sharpen(cosines, *, signed: bool = False, power: int = SHARPENING_POWER):
    """Cosines → SCS: |cos|**power, or sign(cos)·|cos|**power when `signed`.

    Works on numpy arrays and on torch tensors alike (on a tensor it stays differentiable and where it
    is), so a search on an accelerator scores with the same function as the report."""
    sharpened = abs(cosines) ** power
    if signed:
        sharpened = sharpened * (np.sign(cosines) if isinstance(cosines, np.ndarray | float) else cosines.sign())
    return sharpened


def sharpen_slope(cosines: np.ndarray, *, power: int = SHARPENING_POWER) -> np.ndarray:
    """d sharpen(c, signed=False) / dc = power · |c|**(power − 1) · sign(c), for gradient searches."""
    cosines = np.asarray(cosines, dtype=np.float64)
    return power * np.abs(cosines) ** (power - 1) * np.sign(cosines)


def scs_rows(predictions: np.ndarray, truths: np.ndarray, *, signed: bool = False,
             power: int = SHARPENING_POWER) -> np.ndarray:
    """Per-row sharpened cosine similarity: |cos|**power, or sign(cos)*|cos|**power when `signed`."""
    return sharpen(row_cosines(predictions, truths), signed=signed, power=power)


def scs(predictions: np.ndarray, truths: np.ndarray, *, signed: bool = False,
        power: int = SHARPENING_POWER) -> float:
    """Mean sharpened cosine similarity over rows (the number on the leaderboard)."""
    return float(np.mean(scs_rows(predictions, truths, signed=signed, power=power)))


def scs_matrix(predictions: np.ndarray, truths: np.ndarray, *, signed: bool = False,
               power: int = SHARPENING_POWER) -> np.ndarray:
    """(m, n): the SCS of each of m predictions against each of n truths. Column j of row i equals
    `scs_rows` of prediction i answered on truth j's row."""
    return sharpen(cosine_matrix(predictions, truths), signed=signed, power=power)


def scs_against(prediction: np.ndarray, truths: np.ndarray, *, signed: bool = False,
                power: int = SHARPENING_POWER) -> np.ndarray:
    """(n,): the SCS of one prediction vector (a constant answer) against each of n truths."""
    prediction = np.asarray(prediction)
    if prediction.ndim != 1:
        raise ValueError(f"expected one prediction vector (d,), got shape {prediction.shape}")
    return scs_matrix(prediction[None], truths, signed=signed, power=power)[0]


def weighted_scs(predictions: np.ndarray, truths: np.ndarray, weights: np.ndarray | None = None, *,
                 signed: bool = False, power: int = SHARPENING_POWER) -> np.ndarray:
    """(m,): the mean SCS of each constant prediction over the truths' rows, truth j counting `weights[j]`
    (its share of the rows; default equal shares): a whole suite scored for m constant answers at once."""
    matrix = scs_matrix(predictions, truths, signed=signed, power=power)
    if weights is None:
        return matrix.mean(axis=1)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (matrix.shape[1],):
        raise ValueError(f"expected {matrix.shape[1]} weights (one per truth), got shape {weights.shape}")
    return matrix @ weights


def torch_scs_matrix(predictions, truths, *, signed: bool = False, power: int = SHARPENING_POWER):
    """`scs_matrix` in torch, differentiable in `predictions` (m × d tensor), on their device and dtype.
    `truths` (n × d) are taken as unit rows (normalise them once, outside the search loop); no clipping,
    which would zero the gradient of an exact match."""
    import torch

    cosines = torch.nn.functional.normalize(predictions, dim=1) @ truths.T
    return sharpen(cosines, signed=signed, power=power)
