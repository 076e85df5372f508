"""Tests for harness.stats: the resampler, bootstrap intervals, the gate's p-values and Holm correction, and
what a suite can detect (MDE, design effect, win/tie/loss, small-n warning).

Property tests use few resamples (the properties hold for any count); the simulations are the statistical
checks that intervals and MDE mean what they say. Hypothesis runs derandomized without a database, so the
tests write nothing and CI sees the same examples every run.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tracemalloc
import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from harness.stats import (
    ConfidenceInterval,
    WinTieLoss,
    _bootstrap,
    bootstrap_mean,
    design_effect,
    factorize_groups,
    holm_adjust,
    minimum_detectable_effect,
    paired_bootstrap_delta,
    paired_bootstrap_test,
    resample_means,
    small_sample_warning,
    standard_error_of_mean,
    win_tie_loss,
)

PROPERTY = settings(max_examples=40, deadline=None, database=None, derandomize=True)
B = 300  # resamples in property tests

scores = st.lists(st.floats(0.0, 1.0, allow_nan=False, allow_subnormal=False), min_size=1, max_size=60).map(
    np.array
)
methods = st.sampled_from(["percentile", "bca", "studentized"])
confidences = st.sampled_from([0.5, 0.8, 0.9, 0.95, 0.99])


@st.composite
def grouped_scores(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray | None]:
    """Scores with, half of the time, integer group labels (up to 6 groups)."""
    x = draw(scores)
    if not draw(st.booleans()):
        return x, None
    labels = draw(st.lists(st.integers(0, 5), min_size=x.size, max_size=x.size))
    return x, np.array(labels)


@st.composite
def paired_scores(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """A baseline, a candidate on the same rows (baseline + a shift + row noise, clipped), and maybe groups."""
    base, groups = draw(grouped_scores())
    shift = draw(st.floats(-0.2, 0.2))
    noise = np.random.default_rng(draw(st.integers(0, 2**16))).normal(0, draw(st.sampled_from([0.0, 0.02, 0.2])),
                                                                       base.size)
    return np.clip(base + shift + noise, 0, 1), base, groups


# ---------------------------------------------------------------------------
# the resampler


def test_groups_are_numbered_in_order_of_first_appearance():
    codes, n_groups = factorize_groups(["b", "a", "b", "c", "a"], 5)
    assert codes.tolist() == [0, 1, 0, 2, 1] and n_groups == 3
    codes, n_groups = factorize_groups(np.array([7, 3, 7]), 3)
    assert codes.tolist() == [0, 1, 0] and n_groups == 2
    with pytest.raises(ValueError, match="labels for 2 rows"):
        factorize_groups([1, 2, 3], 2)
    with pytest.raises(ValueError, match="1-D"):
        factorize_groups(np.zeros((2, 2)), 2)


def test_resampler_draws_each_row_binomially():
    # A resample's count of one row must be Binomial(m, 1/m). Deviations e_k − 1/m make
    # theta* − estimate = (c_k − 1)/m, so the resample recovers the count c_k of the last row.
    scipy_stats = pytest.importorskip("scipy.stats")
    m = 40
    dev = np.full((m, 1), -1.0 / m)
    dev[-1] += 1.0
    delta = _bootstrap._resample_deviations(dev, None, 100_000, np.random.default_rng(4))[:, 0]
    counts = np.rint(delta * m + 1).astype(int)
    observed = np.bincount(counts, minlength=8)[:8]
    expected = scipy_stats.binom.pmf(np.arange(8), m, 1 / m) * delta.size
    keep = expected > 5
    chi2 = np.sum((observed[keep] - expected[keep]) ** 2 / expected[keep])
    assert scipy_stats.chi2.sf(chi2, keep.sum() - 1) > 1e-4


def test_columns_share_their_draws():
    # Calibration resamples the same rows for every probe: column j of a (rows, k) call is what a 1-D call
    # with the same seed gives for that column alone.
    x = np.random.default_rng(0).random((300, 3))
    groups = np.arange(300) % 17
    for g in (None, groups):
        together = resample_means(x, groups=g, n_resamples=500, seed=9)
        assert together.shape == (500, 3)
        for j in range(3):
            alone = resample_means(x[:, j], groups=g, n_resamples=500, seed=9)
            assert alone.shape == (500,)
            np.testing.assert_allclose(together[:, j], alone, rtol=0, atol=1e-12)


def test_grouped_resample_mean_is_sum_over_size_of_drawn_groups():
    # Groups of very different sizes: a resample's mean weights each drawn group by its rows, so with
    # one big group of 1s and many small groups of 0s the resample means are (9·c)/(9·c + others).
    x = np.array([1.0] * 9 + [0.0] * 3)
    groups = ["big"] * 9 + ["a", "b", "c"]
    means = resample_means(x, groups=groups, n_resamples=2_000, seed=1)
    big_draws = np.rint(4 * means / (9 - 8 * means)).astype(int)  # c from mean = 9c / (9c + (4 − c))
    assert set(np.unique(big_draws)) <= {0, 1, 2, 3, 4}
    np.testing.assert_allclose(means, 9 * big_draws / (9 * big_draws + 4 - big_draws), atol=1e-12)
    assert abs(big_draws.mean() - 1.0) < 0.05  # Binomial(4, 1/4)


@PROPERTY
@given(st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False), st.integers(1, 80), methods,
       st.booleans())
def test_all_equal_values_give_a_zero_width_interval(value, n, method, grouped):
    groups = np.arange(n) % 5 if grouped else None
    ci = bootstrap_mean(np.full(n, value), groups=groups, method=method, n_resamples=B)
    assert (ci.low, ci.high, ci.estimate, ci.standard_error) == (value, value, value, 0.0)


@PROPERTY
@given(scores, methods, st.randoms(use_true_random=False))
def test_singleton_groups_equal_the_unclustered_bootstrap(x, method, random):
    # One row per group: the cells are the rows, in the same order, so even the resamples coincide.
    labels = [f"row-{i}" for i in range(x.size)]
    random.shuffle(labels)
    plain = bootstrap_mean(x, method=method, n_resamples=B, seed=3)
    single = bootstrap_mean(x, groups=labels, method=method, n_resamples=B, seed=3)
    assert (single.low, single.high, single.estimate) == pytest.approx((plain.low, plain.high, plain.estimate),
                                                                         abs=1e-12)
    assert single.standard_error == pytest.approx(plain.standard_error, abs=1e-12)
    assert single.n_groups == x.size and plain.n_groups is None


def test_large_suite_memory_is_bounded():
    # 100,000 rows x 1,000 resamples would be 800 MB of int64 indices at once; chunks keep it small.
    x = np.random.default_rng(10).beta(0.5, 3, 100_000)
    tracemalloc.start()
    try:
        ci = bootstrap_mean(x, method="percentile", n_resamples=1_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * _bootstrap._CHUNK_BYTES
    assert ci.low < ci.estimate < ci.high
    assert ci.high - ci.low == pytest.approx(2 * 1.96 * x.std() / math.sqrt(x.size), rel=0.1)


def test_importing_stats_imports_neither_scipy_nor_torch():
    code = "import sys, harness.stats; print('scipy' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# ---------------------------------------------------------------------------
# interval properties


@PROPERTY
@given(grouped_scores(), methods, st.integers(0, 2**32))
def test_same_seed_same_result(data, method, seed):
    x, groups = data
    kwargs = dict(groups=groups, method=method, n_resamples=B)
    assert bootstrap_mean(x, seed=seed, **kwargs) == bootstrap_mean(x, seed=seed, **kwargs)
    from_gen = [bootstrap_mean(x, seed=np.random.default_rng(seed), **kwargs) for _ in range(2)]
    assert from_gen[0] == from_gen[1]


def test_generator_seed_is_advanced_so_successive_calls_differ():
    x = np.random.default_rng(1).random(200)
    rng = np.random.default_rng(5)
    first, second = (bootstrap_mean(x, seed=rng, n_resamples=500) for _ in range(2))
    assert (first.low, first.high) != (second.low, second.high)


@PROPERTY
@given(grouped_scores(), methods, confidences)
def test_interval_contains_estimate_and_lies_within_the_data(data, method, confidence):
    x, groups = data
    ci = bootstrap_mean(x, groups=groups, method=method, confidence=confidence, n_resamples=B)
    assert ci.contains(ci.estimate)
    assert ci.estimate == pytest.approx(float(np.mean(x)), abs=1e-12)
    assert x.min() <= ci.low <= ci.high <= x.max()
    assert ci.standard_error >= 0.0
    assert all(math.isfinite(v) for v in (ci.low, ci.high, ci.estimate, ci.standard_error))


@PROPERTY
@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False), min_size=1, max_size=40).map(
        np.array
    ),
    methods,
)
def test_interval_within_data_range_at_any_scale(x, method):
    ci = bootstrap_mean(x, method=method, n_resamples=B)
    assert x.min() <= ci.low <= ci.estimate <= ci.high <= x.max()


@PROPERTY
@given(scores, methods)
def test_interval_narrows_as_the_suite_grows(x, method):
    # Repeating every row 9 times keeps the mean and cuts its spread ~3x.
    small = bootstrap_mean(x, method=method, n_resamples=B)
    large = bootstrap_mean(np.tile(x, 9), method=method, n_resamples=B)
    small_width, large_width = small.high - small.low, large.high - large.low
    if small_width == 0.0:
        assert large_width == 0.0
    else:
        assert large_width < 0.75 * small_width


@PROPERTY
@given(grouped_scores(), methods)
def test_paired_delta_of_identical_arrays_is_exactly_zero(data, method):
    x, groups = data
    ci = paired_bootstrap_delta(x, x.copy(), groups=groups, method=method, n_resamples=B)
    assert (ci.estimate, ci.low, ci.high, ci.standard_error) == (0.0, 0.0, 0.0, 0.0)


@PROPERTY
@given(scores, st.floats(-1.0, 1.0, allow_nan=False), methods)
def test_paired_delta_of_shifted_copy_is_the_shift(x, c, method):
    # (x + c) - x equals c only up to rounding, so compare within a few ulps.
    ci = paired_bootstrap_delta(x + c, x, method=method, n_resamples=B)
    assert ci.estimate == pytest.approx(c, abs=1e-12)
    assert ci.low == pytest.approx(c, abs=1e-12)
    assert ci.high == pytest.approx(c, abs=1e-12)


@PROPERTY
@given(st.lists(st.integers(0, 1024), min_size=1, max_size=60), st.integers(-64, 64), methods)
def test_paired_delta_of_exact_shift_is_exact(ints, k, method):
    x = np.array(ints) / 1024.0  # dyadic, so x + c - x == c exactly
    c = k / 64.0
    ci = paired_bootstrap_delta(x + c, x, method=method, n_resamples=B)
    assert (ci.estimate, ci.low, ci.high, ci.standard_error) == (c, c, c, 0.0)


@PROPERTY
@given(grouped_scores(), methods, st.randoms(use_true_random=False))
def test_grouped_bootstrap_is_invariant_to_relabelling(data, method, random):
    x, groups = data
    if groups is None:
        groups = np.zeros(x.size, dtype=int)
    names = [f"cluster-{i}" for i in range(6)]
    random.shuffle(names)
    relabelled = [names[g] for g in groups]  # a bijection onto strings
    before = bootstrap_mean(x, groups=groups, method=method, n_resamples=B)
    after = bootstrap_mean(x, groups=relabelled, method=method, n_resamples=B)
    assert before == after
    assert before.n_groups == len(set(groups.tolist()))


# ---------------------------------------------------------------------------
# interval statistics


@pytest.mark.parametrize("method", ["bca", "percentile"])
def test_95_percent_intervals_cover_the_true_mean_of_a_skewed_bounded_distribution(method):
    # 1,000 simulated suites of 200 beta(0.5, 3) scores (skewness ~1.6, bounded in [0, 1]); the true mean
    # is 1/7. Monte Carlo s.e. of the coverage is ~0.7 points.
    rng = np.random.default_rng(20240601)
    true_mean = 0.5 / 3.5
    covered = sum(
        bootstrap_mean(rng.beta(0.5, 3.0, 200), method=method, n_resamples=1_000, seed=i).contains(true_mean)
        for i in range(1_000)
    )
    assert 930 <= covered <= 970, f"{method} covered {covered / 10:.1f}%"


def test_grouped_interval_is_wider_for_clustered_data():
    # 40 clusters of 10 rows sharing a cluster effect: rows are far from independent, which only the
    # cluster bootstrap accounts for.
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(40), 10)
    x = np.clip(0.5 + rng.normal(0, 0.15, 40)[groups] + rng.normal(0, 0.03, 400), 0, 1)
    plain = bootstrap_mean(x, n_resamples=4_000)
    clustered = bootstrap_mean(x, groups=groups, n_resamples=4_000)
    assert clustered.n_groups == 40 and plain.n_groups is None
    assert clustered.estimate == pytest.approx(plain.estimate)
    assert clustered.high - clustered.low > 2 * (plain.high - plain.low)
    assert clustered.standard_error > 2 * plain.standard_error
    # The bootstrap's variance ratio is the analytic design effect, up to Monte Carlo noise.
    ratio = (clustered.standard_error / plain.standard_error) ** 2
    assert ratio == pytest.approx(design_effect(x, groups), rel=0.15)


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_agrees_with_scipy_bootstrap(method):
    scipy_stats = pytest.importorskip("scipy.stats")
    x = np.random.default_rng(11).beta(0.5, 3.0, 1_300)
    ours = bootstrap_mean(x, method=method, n_resamples=10_000)
    ref = scipy_stats.bootstrap((x,), np.mean, n_resamples=10_000, method=method, vectorized=True,
                                rng=np.random.default_rng(0))
    assert ours.low == pytest.approx(ref.confidence_interval.low, abs=0.002)
    assert ours.high == pytest.approx(ref.confidence_interval.high, abs=0.002)
    assert ours.standard_error == pytest.approx(ref.standard_error, rel=0.05)


# ---------------------------------------------------------------------------
# the gate: one-sided p-values, Holm


@PROPERTY
@given(paired_scores(), st.sampled_from([0.0, 0.001, 0.01, 0.05]), methods, confidences, st.integers(0, 99))
def test_p_values_agree_with_the_interval(data, tolerance, method, confidence, seed):
    cand, base, groups = data
    kwargs = dict(groups=groups, confidence=confidence, n_resamples=B, method=method, seed=seed)
    test = paired_bootstrap_test(cand, base, tolerance=tolerance, **kwargs)
    assert test.interval == paired_bootstrap_delta(cand, base, **kwargs)  # one bootstrap, same interval
    assert 0.0 <= test.p_regression <= 1.0 and 0.0 <= test.p_improvement <= 1.0
    a = (1 - confidence) / 2
    # Exact up to float rounding at the boundary itself.
    assume(abs(test.interval.high + tolerance) > 1e-12 and abs(test.interval.low - tolerance) > 1e-12)
    assume(abs(test.p_regression - a) > 1e-9 and abs(test.p_improvement - a) > 1e-9)
    assert (test.p_regression < a) == (test.interval.high < -tolerance)
    assert (test.p_improvement < a) == (test.interval.low > tolerance)


def test_percentile_p_value_is_the_share_of_resamples_at_or_above_minus_tolerance():
    rng = np.random.default_rng(6)
    base = rng.beta(2, 5, 400)
    cand = np.clip(base - 0.01 + rng.normal(0, 0.05, 400), 0, 1)
    test = paired_bootstrap_test(cand, base, tolerance=0.001, method="percentile", n_resamples=5_000, seed=2)
    deltas = resample_means(cand - base, n_resamples=5_000, seed=2)
    share = float(np.mean(deltas >= -0.001))
    assert test.p_regression == pytest.approx(share, abs=2 / 5_000)
    assert 0.0 < test.p_regression < 0.5 < test.p_improvement


def test_p_values_of_point_intervals_are_zero_or_one():
    x = np.linspace(0, 1, 50)
    assert paired_bootstrap_test(x, x, tolerance=0.0).p_regression == 1.0
    worse = paired_bootstrap_test(x - 0.25, x, tolerance=0.001)
    assert (worse.p_regression, worse.p_improvement) == (0.0, 1.0)
    better = paired_bootstrap_test(x + 0.25, x, tolerance=0.001)
    assert (better.p_regression, better.p_improvement) == (1.0, 0.0)


def test_bca_p_value_inverts_the_bca_level_adjustment():
    for z0, accel in [(0.3, 0.05), (-0.2, -0.08), (0.0, 0.1), (0.1, 0.0)]:
        for alpha in (0.001, 0.025, 0.3, 0.5, 0.9, 0.999):
            level = _bootstrap._adjusted_level(alpha, z0, accel)
            assert _bootstrap._nominal_level(level, z0, accel) == pytest.approx(alpha, abs=1e-9)


def test_paired_test_rejects_bad_tolerance_and_serializes_its_numbers():
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="tolerance"):
            paired_bootstrap_test([0.1, 0.2], [0.1, 0.3], tolerance=bad)
    candidate, baseline = [0.1, 0.5, 0.3, 0.45], [0.2, 0.2, 0.2, 0.4]
    test = paired_bootstrap_test(candidate, baseline, tolerance=0.001, n_resamples=200)
    data = test.to_dict()
    # the interval is paired_bootstrap_delta's with the same arguments, and the p-values are the test's
    assert data["interval"] == paired_bootstrap_delta(candidate, baseline, n_resamples=200).to_dict()
    assert (data["tolerance"], data["p_regression"], data["p_improvement"]) == (
        0.001, test.p_regression, test.p_improvement)
    # plain JSON types only (a numpy scalar would pass ==, but not every JSON encoder)
    values = [*data["interval"].values(), data["tolerance"], data["p_regression"], data["p_improvement"]]
    assert {type(v) for v in values} <= {float, int, str, type(None)}
    assert json.loads(json.dumps(data)) == data


def test_holm_known_example():
    # Sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 → running max 0.02, 0.03, 0.06, 0.06.
    assert holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_adjust([]) == []
    assert holm_adjust([0.7]) == [0.7]
    assert holm_adjust([0.6, 0.6]) == [1.0, 1.0]


@PROPERTY
@given(st.lists(st.integers(0, 1024), min_size=1, max_size=12).map(lambda ks: [k / 1024 for k in ks]))
def test_holm_is_the_step_down_procedure(p):
    adjusted = holm_adjust(p)
    assert all(raw <= adj <= 1.0 for raw, adj in zip(p, adjusted))
    order = np.argsort(p, kind="stable")
    assert all(adjusted[i] <= adjusted[j] for i, j in zip(order, order[1:]))  # monotone in raw order
    m = len(p)
    for alpha in (0.0125, 0.025, 0.05, 0.1, 0.5):
        rejected = set()
        for rank, i in enumerate(order):  # Holm: reject while p_(j) <= alpha / (m − j)
            if (m - rank) * p[i] > alpha:
                break
            rejected.add(int(i))
        assert {i for i, a in enumerate(adjusted) if a <= alpha} == rejected


@pytest.mark.parametrize("bad", [[0.1, 1.5], [-0.1], [float("nan")], [[0.1]]])
def test_holm_rejects_invalid_p_values(bad):
    with pytest.raises(ValueError, match="p_values"):
        holm_adjust(bad)


# ---------------------------------------------------------------------------
# what a suite can detect


def test_standard_error_and_mde_formulas():
    rng = np.random.default_rng(1)
    base = rng.beta(2, 5, 500)
    cand = base + rng.normal(0, 0.05, 500)
    d = cand - base
    se = d.std(ddof=1) / math.sqrt(d.size)
    assert standard_error_of_mean(d) == pytest.approx(se, rel=1e-12)
    z = 1.959963984540054 + 0.8416212335729143
    assert minimum_detectable_effect(cand, base) == pytest.approx(z * se, rel=1e-9)
    assert minimum_detectable_effect(cand, base, tolerance=0.001) == pytest.approx(0.001 + z * se, rel=1e-9)
    # Singleton groups are the iid case; clustered deltas widen the MDE by √(design effect).
    assert standard_error_of_mean(d, groups=np.arange(500)) == pytest.approx(se, rel=1e-12)
    groups = np.arange(500) // 10
    clustered = base + rng.normal(0, 0.05, 50)[groups]
    ratio = minimum_detectable_effect(clustered, base, groups=groups) / minimum_detectable_effect(clustered, base)
    assert ratio == pytest.approx(math.sqrt(design_effect(clustered - base, groups)), rel=1e-9)
    assert ratio > 2
    assert math.isnan(standard_error_of_mean([0.1, 0.2], groups=["a", "a"]))


def test_the_gate_detects_a_drop_of_one_mde_about_80_percent_of_the_time():
    # Suites of 300 rows whose true Δ is −MDE (computed from the true SD of the deltas): the bootstrap gate
    # (95% two-sided interval below −tolerance) should flag ~80% of them. 300 suites: MC s.e. ~2.3 points.
    rng = np.random.default_rng(42)
    n, sd, tolerance = 300, 0.05, 0.001
    mde = tolerance + (1.959963984540054 + 0.8416212335729143) * sd / math.sqrt(n)
    flagged = 0
    for i in range(300):
        base = rng.beta(2, 5, n)
        cand = base - mde + rng.normal(0, sd, n)
        flagged += paired_bootstrap_test(cand, base, tolerance=tolerance, method="percentile", n_resamples=1_000,
                                         seed=i).interval.high < -tolerance
    assert 0.72 <= flagged / 300 <= 0.88


def test_design_effect_matches_kish_for_equal_clusters():
    # Intra-class correlation rho, clusters of 10: deff = 1 + (10 − 1)·rho.
    rng = np.random.default_rng(7)
    groups = np.repeat(np.arange(2_000), 10)
    rho = 0.3
    x = rng.normal(0, math.sqrt(rho), 2_000)[groups] + rng.normal(0, math.sqrt(1 - rho), 20_000)
    assert design_effect(x, groups) == pytest.approx(1 + 9 * rho, rel=0.1)
    assert design_effect(x, None) == 1.0
    assert design_effect(x[:50], np.arange(50)) == pytest.approx(1.0, rel=1e-12)
    assert design_effect([0.5] * 6, [0, 0, 1, 1, 2, 2]) == 1.0


def test_win_tie_loss_counts():
    cand = [0.5, 0.5 + 5e-7, 0.7, 0.1, 0.3]
    base = [0.5, 0.5, 0.6, 0.2, 0.3 - 2e-6]
    assert win_tie_loss(cand, base) == WinTieLoss(wins=2, ties=2, losses=1, epsilon=1e-6)
    assert win_tie_loss(cand, base, epsilon=0.0) == WinTieLoss(3, 1, 1, 0.0)
    assert win_tie_loss(cand, base).to_dict() == {"wins": 2, "ties": 2, "losses": 1, "epsilon": 1e-6}
    with pytest.raises(ValueError, match="epsilon"):
        win_tie_loss(cand, base, epsilon=-1)


@PROPERTY
@given(paired_scores(), st.sampled_from([0.0, 1e-6, 0.01]))
def test_win_tie_loss_is_antisymmetric_and_complete(data, epsilon):
    cand, base, _ = data
    forward, backward = win_tie_loss(cand, base, epsilon=epsilon), win_tie_loss(base, cand, epsilon=epsilon)
    assert forward.wins + forward.ties + forward.losses == cand.size
    assert (forward.wins, forward.ties, forward.losses) == (backward.losses, backward.ties, backward.wins)


def test_small_sample_warning_thresholds():
    assert small_sample_warning(200) is None and small_sample_warning(1_300, 30) is None
    assert "199 rows (< 200)" in small_sample_warning(199)
    assert "29 groups (< 30)" in small_sample_warning(500, 29)
    both = small_sample_warning(64, 8)
    assert "64 rows" in both and "8 groups" in both and "Bowyer" in both


# ---------------------------------------------------------------------------
# degenerate inputs and errors


@pytest.mark.parametrize(
    "values, groups",
    [
        ([0.37], None),
        ([0.2] * 50, None),
        ([0.1] * 7, [1, 1, 2, 2, 2, 3, 3]),  # constant values, groups of unequal size
        ([0.1, 0.9, 0.4, 0.3], ["a"] * 4),  # a single group
        ([0.25, 0.75, 0.5, 0.5], [0, 0, 1, 1]),  # identical group means
    ],
)
@pytest.mark.parametrize("method", ["bca", "percentile"])
def test_degenerate_inputs_give_a_point_interval_without_warnings(values, groups, method):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ci = bootstrap_mean(values, groups=groups, method=method, n_resamples=500)
    assert ci.low == ci.high == ci.estimate
    assert ci.standard_error == 0.0
    assert ci.estimate == pytest.approx(np.mean(values))


def test_paired_all_zero_deltas_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ci = paired_bootstrap_delta([0.3, 0.5], [0.3, 0.5])
    assert (ci.low, ci.high, ci.standard_error) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: bootstrap_mean([]), "empty"),
        (lambda: bootstrap_mean([0.1, float("nan"), 0.3, float("nan")]), r"values\[1\] is nan"),
        (lambda: bootstrap_mean([0.1, 0.2, float("inf")]), r"values\[2\] is inf"),
        (lambda: paired_bootstrap_delta([0.1, 0.2], [0.1, float("nan")]), r"baseline\[1\]"),
        (lambda: paired_bootstrap_delta([0.1, 0.2], [0.1]), "same rows"),
        (lambda: paired_bootstrap_delta([], []), "empty"),
        (lambda: paired_bootstrap_delta([1e308], [-1e308]), "overflows"),
        (lambda: bootstrap_mean([[0.1, 0.2]]), "1-D"),
        (lambda: bootstrap_mean(["high", "low"]), "numeric"),
        (lambda: bootstrap_mean([0.1, 0.2], groups=[1]), "labels for 2 rows"),
        (lambda: bootstrap_mean([0.1, 0.2], groups=np.array([1, 2, 3])), "labels for 2 rows"),
        (lambda: bootstrap_mean([0.1, 0.2], confidence=0.0), "confidence"),
        (lambda: bootstrap_mean([0.1, 0.2], confidence=1.0), "confidence"),
        (lambda: bootstrap_mean([0.1, 0.2], confidence=95), "confidence"),
        (lambda: bootstrap_mean([0.1, 0.2], confidence=float("nan")), "confidence"),
        (lambda: bootstrap_mean([0.1, 0.2], n_resamples=0), "n_resamples"),
        (lambda: bootstrap_mean([0.1, 0.2], n_resamples=2.5), "n_resamples"),
        (lambda: bootstrap_mean([0.1, 0.2], method="bootstrap-t"), "method"),
        (lambda: bootstrap_mean([0.1, 0.2], method=None), "method"),
        (lambda: bootstrap_mean([0.1, 0.2], seed="zero"), "seed"),
        (lambda: resample_means(np.zeros((0, 2))), "at least one row"),
        (lambda: resample_means([0.1, float("nan")]), "finite"),
        (lambda: minimum_detectable_effect([0.1, 0.2], [0.1, 0.3], power=1.0), "power"),
    ],
)
def test_invalid_input_raises_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_scipy_spelling_of_bca_is_accepted():
    x = np.random.default_rng(2).random(40)
    assert bootstrap_mean(x, method="BCa") == bootstrap_mean(x, method="bca")


def test_options_are_validated_even_for_degenerate_input():
    with pytest.raises(ValueError, match="method"):
        bootstrap_mean([0.5], method="nope")


# ---------------------------------------------------------------------------
# the result type


def test_result_is_json_ready_plain_data():
    ci = bootstrap_mean(np.random.default_rng(0).random(50), groups=np.arange(50) % 5, seed=3)
    as_dict = ci.to_dict()
    assert json.loads(json.dumps(as_dict)) == as_dict
    assert {type(v) for k, v in as_dict.items() if k != "method"} <= {float, int}
    assert as_dict["n_groups"] == 5 and as_dict["n"] == 50 and as_dict["method"] == "studentized"
    assert ConfidenceInterval(**as_dict) == ci
    plain = bootstrap_mean([0.1, 0.5, 0.2]).to_dict()
    assert plain["n_groups"] is None and json.loads(json.dumps(plain)) == plain


def test_contains_is_closed_interval():
    ci = ConfidenceInterval(0.5, 0.4, 0.6, 0.95, "bca", 100, 10, None, 0.05)
    assert ci.contains(0.4) and ci.contains(0.6) and ci.contains(0.5)
    assert not ci.contains(0.39) and not ci.contains(0.61)
    assert ci.contains(np.float64(0.45)) is True
