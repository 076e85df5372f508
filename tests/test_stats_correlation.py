"""harness.stats' rank correlation, robust lines and percentile intervals, against scipy on random inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import rankdata, siegelslopes, spearmanr

from harness.stats import (
    loo_residuals,
    percentile_interval,
    robust_sd,
    row_ranks,
    row_spearman,
    siegel_line,
    spearman,
)

PROPERTY = settings(max_examples=50, deadline=None, database=None, derandomize=True)


@PROPERTY
@given(st.lists(st.lists(st.integers(0, 4), min_size=5, max_size=5), min_size=1, max_size=6))
def test_row_ranks_are_scipys_average_ranks(rows):
    a = np.array(rows, dtype=float)  # small integers: many ties
    np.testing.assert_array_equal(row_ranks(a), rankdata(a, axis=1))


@PROPERTY
@given(st.integers(3, 12).flatmap(lambda k: st.tuples(st.lists(st.integers(0, 6), min_size=k, max_size=k),
                                                      st.lists(st.floats(-1, 1), min_size=k, max_size=k))))
def test_spearman_is_scipys_or_none_when_there_is_no_ranking(pair):
    a, b = (np.array(v, dtype=float) for v in pair)
    rho = spearman(a, b)
    if np.unique(a).size < 2 or np.unique(b).size < 2:
        assert rho is None
    else:
        assert rho == pytest.approx(float(spearmanr(a, b).statistic), abs=1e-12)
        # the vectorised form gives the same number in every row
        np.testing.assert_allclose(row_spearman(np.tile(a, (3, 1)), np.tile(b, (3, 1))), rho, atol=1e-12)


def test_spearman_needs_three_items_and_equal_lengths():
    assert spearman([1.0, 2.0], [2.0, 1.0]) is None
    with pytest.raises(ValueError, match="same length"):
        spearman([1.0, 2.0, 3.0], [1.0, 2.0])


@PROPERTY
@given(st.lists(st.tuples(st.integers(0, 50), st.floats(-1, 1)), min_size=3, max_size=12, unique_by=lambda t: t[0]))
def test_the_vectorised_repeated_median_is_scipys_siegelslopes(points):
    x = np.array([p[0] / 50 for p in points])
    y = np.array([p[1] for p in points])
    expected = siegelslopes(y, x)
    intercept, slope = siegel_line(x, y)
    assert slope == pytest.approx(expected.slope, abs=1e-9) and intercept == pytest.approx(expected.intercept, abs=1e-9)


def test_loo_residuals_single_out_the_point_off_the_line():
    x = np.linspace(0, 1, 9)
    y = 0.2 + 0.5 * x
    y[4] += 0.3
    residuals = loo_residuals(x, y)
    assert residuals[4] == pytest.approx(0.3) and np.allclose(np.delete(residuals, 4), 0.0, atol=1e-12)
    assert robust_sd(residuals) == 0.0  # one outlier in nine moves the MAD not at all


@PROPERTY
@given(st.lists(st.floats(-5, 5), min_size=2, max_size=40), st.sampled_from([0.8, 0.9, 0.95]))
def test_percentile_interval_is_the_central_quantiles(values, confidence):
    low, high = percentile_interval(values, confidence)
    alpha = (1 - confidence) / 2
    assert (low, high) == (np.quantile(values, alpha), np.quantile(values, 1 - alpha))
    inside = np.mean((np.array(values) >= low) & (np.array(values) <= high))
    assert low <= high and inside >= confidence - 2 / len(values)
