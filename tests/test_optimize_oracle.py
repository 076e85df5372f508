"""The oracle bound: max over unit u of Σ wᵢ |tᵢ·u|³, checked against problems whose optimum is known
(analytically, or by brute force over a dense grid of the sphere) and against properties any upper bound
must have."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from optimize_helpers import BagOfWordsEmbedder, family_suite

from harness.errors import ConfigError
from harness.metric import sharpen_slope, weighted_scs
from harness.optimize import MeanScsObjective
from harness.optimize.oracle import oracle_bound, oracle_for_prompts


def constant_scores(truths, weights, directions):
    """f(u) for each row u of `directions`: the metric's batched form, weighted by the rows' shares."""
    return weighted_scs(np.atleast_2d(directions), truths, weights)


def unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_orthonormal_truths_have_their_optimum_at_the_heaviest_one():
    # f(u) = Σ wᵢ |uᵢ|³ on the sphere is convex in sᵢ = uᵢ²: its maximum is a vertex, max wᵢ. The mean truth
    # direction (the only start here) is not optimal: the optimiser has to move away from it.
    weights = np.array([0.25, 0.4, 0.35])
    bound = oracle_bound(np.eye(3), weights, n_random=0, n_best_truths=0)
    assert bound.n_starts == 2  # the mean direction and the top eigenvector
    assert bound.value == pytest.approx(0.4, abs=1e-9)
    assert np.allclose(bound.direction, [0, 1, 0], atol=1e-5)
    assert bound.mean_direction_value < 0.4 - 0.05


def fibonacci_sphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    polar = np.arccos(1 - 2 * i / n)
    azimuth = np.pi * (1 + 5 ** 0.5) * i
    return np.stack([np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)], axis=1)


def brute_force(truths, weights, n=50_000):
    """The best grid point of a dense spherical grid (spacing ~0.016 rad), refined by a finer grid around
    it (spacing ~0.001 rad)."""
    grid = fibonacci_sphere(n)
    best = grid[np.argmax(constant_scores(truths, weights, grid))]
    local = unit(best + 0.03 * fibonacci_sphere(20_000))
    scores = constant_scores(truths, weights, local)
    return float(scores.max()), local[np.argmax(scores)]


def test_truths_clustered_around_a_known_direction():
    rng = np.random.default_rng(0)
    centre = unit([0.3, -0.5, 0.8])
    truths = unit(centre + 0.35 * rng.standard_normal((300, 3)))
    weights = rng.integers(1, 4, size=300).astype(float)
    bound = oracle_bound(truths, weights, seed=1)
    value, direction = brute_force(truths, weights / weights.sum())
    assert bound.value >= value - 1e-9  # never below the best grid point
    assert bound.value == pytest.approx(value, abs=2e-5)
    assert abs(float(bound.direction @ direction)) > 0.9999  # f is even: the grid may find -u
    assert np.degrees(np.arccos(min(1.0, bound.direction @ centre))) < 5  # the cluster's direction
    assert (truths @ bound.direction).mean() > 0  # reported on the truths' side


def test_a_two_cluster_problem_finds_the_heavier_cluster():
    # two opposite-ish clusters of unequal weight: local maxima near each; the global one is the heavier
    rng = np.random.default_rng(3)
    a, b = unit([1, 0, 0]), unit([0, 0.6, 0.8])
    truths = np.vstack([unit(a + 0.1 * rng.standard_normal((60, 3))), unit(b + 0.1 * rng.standard_normal((40, 3)))])
    bound = oracle_bound(truths, seed=0)
    value, _ = brute_force(truths, np.full(100, 0.01))
    assert bound.value == pytest.approx(value, abs=2e-5) and bound.direction @ a > 0.95


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 12), st.integers(2, 6)),
              elements=st.floats(-1, 1, allow_nan=False, allow_infinity=False)),
       st.integers(0, 2**31 - 1))
def test_the_bound_is_an_upper_bound_at_a_stationary_point(raw, seed):
    truths = raw[np.linalg.norm(raw, axis=1) > 1e-3]
    if len(truths) == 0:
        return
    truths = unit(truths)
    weights = np.random.default_rng(seed).random(len(truths)) + 0.1
    weights /= weights.sum()
    bound = oracle_bound(truths, weights, seed=seed % 1000)
    assert np.isclose(np.linalg.norm(bound.direction), 1.0)
    assert bound.value <= 1.0 + 1e-9
    probes = np.vstack([truths, weights @ truths if np.linalg.norm(weights @ truths) > 0 else truths[:1],
                        np.random.default_rng(seed).standard_normal((50, truths.shape[1]))])
    assert bound.value >= constant_scores(truths, weights, probes).max() - 1e-9
    # first-order optimality on the sphere: the gradient is radial
    dots = truths @ bound.direction
    gradient = truths.T @ (weights * sharpen_slope(dots))
    tangent = gradient - (gradient @ bound.direction) * bound.direction
    assert np.linalg.norm(tangent) < 1e-4
    assert bound.value == pytest.approx(float(constant_scores(truths, weights, bound.direction)[0]))


def test_extra_starts_keep_the_bound_above_known_vectors():
    truths = unit(np.random.default_rng(0).standard_normal((30, 8)))
    probe = unit(np.random.default_rng(1).standard_normal(8))
    bound = oracle_bound(truths, extra_starts=[probe], n_random=0, n_best_truths=0)
    assert bound.value >= float(constant_scores(truths, np.full(30, 1 / 30), probe)[0])


def test_bad_input_is_refused():
    with pytest.raises(ConfigError, match="at least one"):
        oracle_bound(np.zeros((0, 3)))
    with pytest.raises(ConfigError, match="weights"):
        oracle_bound(np.eye(3), np.array([1.0, -1.0, 0.5]))


def test_no_string_beats_the_oracle_of_its_rows():
    suite = family_suite()
    embedder = BagOfWordsEmbedder()
    bound = oracle_for_prompts(suite.prompts, embedder)
    objective = MeanScsObjective(suite.prompts, embedder, max_tokens=None)
    strings = list(dict.fromkeys(suite.prompts)) + ["Rewrite the text.", "Make it a formal poem please."]
    assert objective.score(strings).max() <= bound.value + 1e-9
    assert bound.n_rows == len(suite) and bound.n_distinct == len(set(suite.prompts))
    # the rows' weights count: the same prompts, one repeated, move the bound toward it
    heavy = oracle_for_prompts(suite.prompts + [suite.prompts[0]] * 40, embedder)
    assert heavy.score(embedder.embed([suite.prompts[0]])[0]) > bound.score(embedder.embed([suite.prompts[0]])[0])
