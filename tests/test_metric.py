"""SCS: range, symmetry, identity, sign handling, agreement with a direct formula, and the batched, one-
against-many and torch forms agreeing with the per-row metric."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from harness.metric import (
    row_cosines,
    scs,
    scs_against,
    scs_matrix,
    scs_rows,
    sharpen,
    sharpen_slope,
    torch_scs_matrix,
    weighted_scs,
)

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


# --- the batched and one-against-many forms agree with the per-row metric

matrices = st.integers(1, 5).flatmap(lambda m: st.integers(1, 6).flatmap(lambda n: st.integers(1, 5).flatmap(
    lambda d: st.tuples(arrays(np.float32, (m, d), elements=finite), arrays(np.float32, (n, d), elements=finite)))))


@given(matrices, st.booleans())
def test_scs_matrix_is_the_per_row_metric_of_every_pair(pair, signed):
    predictions, truths = pair
    matrix = scs_matrix(predictions, truths, signed=signed)
    assert matrix.shape == (len(predictions), len(truths))
    for i, prediction in enumerate(predictions):
        # prediction i answered on every row: the per-row metric against each truth
        expected = scs_rows(np.repeat(prediction[None], len(truths), axis=0), truths, signed=signed)
        np.testing.assert_allclose(matrix[i], expected, atol=1e-12)
        np.testing.assert_allclose(scs_against(prediction, truths, signed=signed), expected, atol=1e-12)


@given(matrices, st.lists(st.integers(1, 4), min_size=6, max_size=6))
def test_weighted_scs_is_the_suite_mean_of_a_constant_answer(pair, counts):
    # truths held by several rows count once per row: weights are row shares
    predictions, truths = pair
    counts = np.array(counts[:len(truths)])
    rows = np.repeat(truths, counts, axis=0)
    weighted = weighted_scs(predictions, truths, counts / counts.sum())
    for i, prediction in enumerate(predictions):
        assert weighted[i] == pytest.approx(scs(np.repeat(prediction[None], len(rows), axis=0), rows), abs=1e-12)
    np.testing.assert_allclose(weighted_scs(predictions, truths), scs_matrix(predictions, truths).mean(axis=1))


@given(arrays(np.float64, 7, elements=st.floats(-1, 1)))
def test_sharpen_slope_is_the_derivative_of_sharpen(cosines):
    step = 1e-6
    numeric = (sharpen(cosines + step) - sharpen(cosines - step)) / (2 * step)
    np.testing.assert_allclose(sharpen_slope(cosines), numeric, atol=1e-6)


def test_the_forms_refuse_mismatched_shapes():
    with pytest.raises(ValueError, match="expected"):
        scs_matrix(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="one prediction vector"):
        scs_against(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="weights"):
        weighted_scs(np.ones((2, 3)), np.ones((4, 3)), np.ones(3) / 3)


def test_torch_form_equals_numpy_and_has_the_metric_s_gradient():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    predictions, truths = rng.normal(size=(4, 6)), rng.normal(size=(5, 6))
    units = truths / np.linalg.norm(truths, axis=1, keepdims=True)
    tensor = torch.tensor(predictions, requires_grad=True)
    for signed in (False, True):
        values = torch_scs_matrix(tensor, torch.tensor(units), signed=signed)
        np.testing.assert_allclose(values.detach().numpy(), scs_matrix(predictions, truths, signed=signed),
                                   atol=1e-12)
    # gradient of Σ_j scs(p, t_j) with respect to a unit prediction p: the tangent part of Σ slope_j t_j
    p = predictions[0] / np.linalg.norm(predictions[0])
    point = torch.tensor(p[None], requires_grad=True)
    torch_scs_matrix(point, torch.tensor(units)).sum().backward()
    radial = units.T @ sharpen_slope(units @ p)
    np.testing.assert_allclose(point.grad.numpy()[0], radial - (radial @ p) * p, atol=1e-10)
