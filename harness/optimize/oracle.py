"""The oracle bound: the best mean SCS any constant answer can reach on a set of rows.

Every constant prediction is scored through its embedding, a unit vector u, so no string can beat

    max over unit u of  f(u) = Σᵢ wᵢ |tᵢ · u|³        (tᵢ: unit truth embeddings, wᵢ: row shares)

whatever the search. The competition's winners measured it (about 0.72 under sentence-t5 with L-BFGS,
against 0.69-0.70 for the best strings): the gap between a found prompt and this number is the headroom a
better search could still win, the gap between the bound and 1 is what only row-dependent answers can.

f is convex on Rᵈ, so on the sphere it has several local maxima. We maximise f(v / |v|) over v ∈ Rᵈ
with scipy's L-BFGS (the normalised parametrisation keeps every iterate on the sphere) from several
starts: the weighted mean truth direction, the top eigenvector of Σ wᵢ tᵢtᵢᵀ, the truths that score best
as answers themselves, seeded random directions, and any vectors the caller adds (the embeddings of the
prompts being compared, so the bound is never below a string's own score even if every start above
stopped at a worse local maximum). Each start is first moved by the fixed-point step
u ← ∇f(u) / |∇f(u)|, which cannot decrease a convex f, 3-homogeneous like this one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.embedders import Embedder
from harness.embedding_cache import embed_texts
from harness.errors import ConfigError
from harness.metric import sharpen, sharpen_slope, unit_rows, weighted_scs
from harness.store import Store


@dataclass(frozen=True)
class OracleBound:
    """The best constant's mean SCS on some rows, and its direction (sign chosen so the truths lie on
    the positive side on average)."""

    value: float
    direction: np.ndarray
    n_rows: int
    n_distinct: int
    n_starts: int
    #: f at the weighted mean truth direction: the usual "mean embedding" answer, for comparison
    mean_direction_value: float

    def score(self, vector: np.ndarray) -> float:
        """Cosine of `vector` with the oracle direction."""
        vector = np.asarray(vector, dtype=np.float64)
        return float(vector @ self.direction / max(np.linalg.norm(vector), 1e-300))


def oracle_bound(truths: np.ndarray, weights: np.ndarray | None = None, *,
                 extra_starts: Sequence[np.ndarray] = (), n_random: int = 4, n_best_truths: int = 4,
                 seed: int = 0, max_iterations: int = 2000) -> OracleBound:
    """max over unit u of Σ wᵢ |tᵢ·u|³ (see the module docstring).

    Args:
        truths: unit truth embeddings, one row per (distinct) truth.
        weights: each row's share of the rows (default: equal); normalised to sum to 1.
        extra_starts: more starting vectors (e.g. embeddings of the prompts compared with the bound).
        n_random, n_best_truths: how many seeded random directions and best-scoring truths to start from.
        seed: seeds the random starts.
    """
    from scipy.optimize import minimize

    truths = np.asarray(truths, dtype=np.float64)
    if truths.ndim != 2 or truths.shape[0] == 0:
        raise ConfigError("the oracle bound needs at least one truth embedding (a 2-D array with rows)")
    truths = unit_rows(truths)
    n, d = truths.shape
    weights = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, dtype=np.float64)
    if weights.shape != (n,) or (weights < 0).any() or weights.sum() <= 0:
        raise ConfigError(f"weights must be {n} non-negative numbers with a positive sum")
    weights = weights / weights.sum()

    def negative_and_gradient(v: np.ndarray) -> tuple[float, np.ndarray]:
        norm = np.linalg.norm(v)
        u = v / norm
        dots = truths @ u
        value = float(sharpen(dots) @ weights)
        gradient_u = truths.T @ (weights * sharpen_slope(dots))
        gradient_v = (gradient_u - (gradient_u @ u) * u) / norm  # the radial part changes nothing
        return -value, -gradient_v

    starts = _starts(truths, weights, extra_starts, n_random, n_best_truths, seed)
    best_value, best_u = -1.0, starts[0]
    for start in starts:
        u = _fixed_point(truths, weights, start)
        result = minimize(negative_and_gradient, u, jac=True, method="L-BFGS-B",
                          options={"maxiter": max_iterations, "gtol": 1e-12, "ftol": 1e-15})
        for candidate in (result.x, u):  # L-BFGS never ends below its start, but keep the better anyway
            candidate = candidate / np.linalg.norm(candidate)
            value = float(weighted_scs(candidate[None], truths, weights)[0])
            if value > best_value:
                best_value, best_u = value, candidate
    if (truths @ best_u) @ weights < 0:
        best_u = -best_u  # f is even: report the side the truths are on
    mean = weights @ truths
    mean_value = float(weighted_scs(mean[None], truths, weights)[0]) if np.linalg.norm(mean) > 0 else 0.0
    return OracleBound(value=best_value, direction=best_u, n_rows=n, n_distinct=n, n_starts=len(starts),
                       mean_direction_value=mean_value)


def _starts(truths: np.ndarray, weights: np.ndarray, extra: Sequence[np.ndarray], n_random: int,
            n_best_truths: int, seed: int) -> list[np.ndarray]:
    n, d = truths.shape
    starts = [weights @ truths]
    _, vectors = np.linalg.eigh((truths * weights[:, None]).T @ truths)
    starts.append(vectors[:, -1])
    if n_best_truths > 0:
        # f at each truth costs an n×n product: fine for the few thousand distinct prompts of a split
        chunk_scores = np.concatenate([weighted_scs(truths[i:i + 2048], truths, weights)
                                       for i in range(0, n, 2048)])
        starts.extend(truths[np.argsort(-chunk_scores, kind="stable")[:n_best_truths]])
    starts.extend(np.random.default_rng(seed).standard_normal((n_random, d)))
    starts.extend(np.asarray(v, dtype=np.float64).reshape(d) for v in extra)
    return [s / np.linalg.norm(s) for s in starts if np.linalg.norm(s) > 0]


def _fixed_point(truths: np.ndarray, weights: np.ndarray, u: np.ndarray, steps: int = 50) -> np.ndarray:
    """u ← ∇f(u)/|∇f(u)| a few times: monotone for a convex, homogeneous f (f(y) ≥ f(u) + ∇f(u)·(y − u)
    and ∇f(u)·y = |∇f(u)| ≥ ∇f(u)·u)."""
    for _ in range(steps):
        gradient = truths.T @ (weights * sharpen_slope(truths @ u))
        norm = np.linalg.norm(gradient)
        if norm == 0:
            break
        step = gradient / norm
        if np.allclose(step, u, atol=1e-12):
            return step
        u = step
    return u


def distinct_truths(prompts: Sequence[str], embedder: Embedder, store: Store | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Unit embeddings of the distinct `prompts` and each one's share of the rows (as the objective)."""
    if not prompts:
        raise ConfigError("the oracle bound needs at least one row")
    counts: dict[str, int] = {}
    for prompt in prompts:
        counts[prompt] = counts.get(prompt, 0) + 1
    vectors = unit_rows(embed_texts(list(counts), embedder, store))
    return vectors, np.array(list(counts.values()), dtype=np.float64) / len(prompts)


def oracle_for_prompts(prompts: Sequence[str], embedder: Embedder, store: Store | None = None, *,
                       extra_starts: Sequence[np.ndarray] = (), seed: int = 0) -> OracleBound:
    """The oracle bound of a split given its true prompts (one per row)."""
    truths, weights = distinct_truths(prompts, embedder, store)
    bound = oracle_bound(truths, weights, extra_starts=extra_starts, seed=seed)
    return OracleBound(value=bound.value, direction=bound.direction, n_rows=len(prompts),
                       n_distinct=bound.n_distinct, n_starts=bound.n_starts,
                       mean_direction_value=bound.mean_direction_value)
