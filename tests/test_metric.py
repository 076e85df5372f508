"""SCS: range, symmetry, identity, sign handling, and agreement with a direct formula."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from harness.metric import row_cosines, scs, scs_rows

finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False, width=32)
pairs = st.integers(1, 8).flatmap(lambda n: st.integers(1, 6).flatmap(
    lambda d: st.tuples(arrays(np.float32, (n, d), elements=finite), arrays(np.float32, (n, d), elements=finite))))


@given(pairs)
def test_range_and_symmetry(pair):
    a, b = pair
    rows = scs_rows(a, b)
    assert np.all(rows >= 0) and np.all(rows <= 1)
    np.testing.assert_allclose(rows, scs_rows(b, a))
    signed = scs_rows(a, b, signed=True)
    assert np.all(signed >= -1) and np.all(signed <= 1)
    np.testing.assert_allclose(np.abs(signed), rows)


@given(arrays(np.float32, (5, 4), elements=finite))
def test_identical_texts_score_one(a):
    nonzero = np.linalg.norm(a.astype(np.float64), axis=1) > 1e-3
    rows = scs_rows(a, a)
    np.testing.assert_allclose(rows[nonzero], 1.0, atol=1e-9)


def test_matches_direct_formula_and_power():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(50, 16)), rng.normal(size=(50, 16))
    direct = [abs(np.dot(x, y) / np.linalg.norm(x) / np.linalg.norm(y)) ** 3 for x, y in zip(a, b)]
    np.testing.assert_allclose(scs_rows(a, b), direct, rtol=1e-10)
    assert abs(scs(a, b) - np.mean(direct)) < 1e-12
    np.testing.assert_allclose(scs_rows(a, -a, signed=True), -1.0)
    np.testing.assert_allclose(scs_rows(a, -a), 1.0)


def test_zero_vector_scores_zero_not_nan():
    a = np.zeros((2, 3))
    b = np.ones((2, 3))
    assert np.all(row_cosines(a, b) == 0) and np.all(scs_rows(a, b) == 0)
