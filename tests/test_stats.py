"""Tests for harness.stats: bootstrap intervals for mean scores and paired deltas.

Property tests use few resamples (the properties hold for any count); the
coverage simulation is the statistical check that the intervals mean what they
say. Hypothesis runs without an example database so the tests write nothing.
"""

from __future__ import annotations

import json
import math
import tracemalloc
import warnings

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import stats
from harness.stats import ConfidenceInterval, bootstrap_mean, paired_bootstrap_delta

# Derandomized: CI sees the same examples every run (explored with 2,500 per test offline).
PROPERTY = settings(max_examples=40, deadline=None, database=None, derandomize=True)
B = 300  # resamples in property tests

scores = st.lists(st.floats(0.0, 1.0, allow_nan=False, allow_subnormal=False), min_size=1, max_size=60).map(
    np.array
)
methods = st.sampled_from(["percentile", "bca"])
confidences = st.sampled_from([0.5, 0.8, 0.9, 0.95, 0.99])


@st.composite
def grouped_scores(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray | None]:
    """Scores with, half of the time, integer group labels (up to 6 groups)."""
    x = draw(scores)
    if not draw(st.booleans()):
        return x, None
    labels = draw(st.lists(st.integers(0, 5), min_size=x.size, max_size=x.size))
    return x, np.array(labels)


# ---------------------------------------------------------------------------
# properties


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
def test_interval_contains_estimate(data, method, confidence):
    x, groups = data
    ci = bootstrap_mean(x, groups=groups, method=method, confidence=confidence, n_resamples=B)
    assert ci.contains(ci.estimate)
    assert ci.estimate == pytest.approx(float(np.mean(x)), abs=1e-12)


@PROPERTY
@given(grouped_scores(), methods, confidences)
def test_interval_is_ordered_and_within_data_range(data, method, confidence):
    x, groups = data
    ci = bootstrap_mean(x, groups=groups, method=method, confidence=confidence, n_resamples=B)
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
# statistics


@pytest.mark.parametrize("method", ["bca", "percentile"])
def test_95_percent_intervals_cover_the_true_mean_of_a_skewed_distribution(method):
    # 1,000 simulated suites of 200 beta(0.5, 3) scores (skewness ~1.6); the
    # true mean is 1/7. Monte Carlo s.e. of the coverage is ~0.7 points.
    rng = np.random.default_rng(20240601)
    true_mean = 0.5 / 3.5
    covered = sum(
        bootstrap_mean(rng.beta(0.5, 3.0, 200), method=method, n_resamples=2_000, seed=i).contains(true_mean)
        for i in range(1_000)
    )
    assert 930 <= covered <= 970, f"{method} covered {covered / 10:.1f}%"


def test_grouped_interval_is_wider_for_clustered_data():
    # 40 clusters of 10 rows sharing a cluster effect: rows are far from
    # independent, which only the cluster bootstrap accounts for.
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(40), 10)
    x = np.clip(0.5 + rng.normal(0, 0.15, 40)[groups] + rng.normal(0, 0.03, 400), 0, 1)
    plain = bootstrap_mean(x, n_resamples=4_000)
    clustered = bootstrap_mean(x, groups=groups, n_resamples=4_000)
    assert clustered.n_groups == 40 and plain.n_groups is None
    assert clustered.estimate == pytest.approx(plain.estimate)
    assert clustered.high - clustered.low > 2 * (plain.high - plain.low)
    assert clustered.standard_error > 2 * plain.standard_error


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_agrees_with_scipy_bootstrap(method):
    x = np.random.default_rng(11).beta(0.5, 3.0, 1_300)
    ours = bootstrap_mean(x, method=method, n_resamples=10_000)
    ref = scipy.stats.bootstrap(
        (x,),
        np.mean,
        n_resamples=10_000,
        method=method,
        vectorized=True,
        random_state=np.random.default_rng(0),
    )
    assert ours.low == pytest.approx(ref.confidence_interval.low, abs=0.002)
    assert ours.high == pytest.approx(ref.confidence_interval.high, abs=0.002)
    assert ours.standard_error == pytest.approx(ref.standard_error, rel=0.05)


@pytest.mark.parametrize("m", [40, 1_301])  # index draws only / Poisson stage with padding
def test_resamples_draw_each_row_binomially(m):
    # The engine's count vectors must be Multinomial(m, 1/m): check the count
    # of one row (the last, which sits in a padded 4-cell lookup) against
    # Binomial(m, 1/m). Values e_k - 1/m make theta* - estimate = (c_k - 1)/m.
    dev = np.full(m, -1.0 / m)
    dev[-1] += 1.0
    delta = stats._resample_deviations(dev, None, m, 100_000, np.random.SeedSequence(4), 2**25)
    counts = np.rint(delta * m + 1).astype(int)
    observed = np.bincount(counts, minlength=8)[:8]
    expected = scipy.stats.binom.pmf(np.arange(8), m, 1 / m) * delta.size
    keep = expected > 5
    chi2 = np.sum((observed[keep] - expected[keep]) ** 2 / expected[keep])
    assert scipy.stats.chi2.sf(chi2, keep.sum() - 1) > 1e-4


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
        (lambda: bootstrap_mean([0.1, 0.2], method="studentized"), "method"),
        (lambda: bootstrap_mean([0.1, 0.2], method=None), "method"),
        (lambda: bootstrap_mean([0.1, 0.2], seed="zero"), "seed"),
        (lambda: bootstrap_mean(np.arange(500.0), max_chunk_bytes=1_000), "max_chunk_bytes"),
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
# chunking and memory


def test_chunk_budget_at_or_above_the_block_size_gives_identical_results():
    x = np.random.default_rng(8).beta(2, 5, 700)
    groups = np.arange(700) // 7
    for g in (None, groups):
        results = {
            budget: bootstrap_mean(x, groups=g, n_resamples=5_000, max_chunk_bytes=budget)
            for budget in (stats._BLOCK_BYTES, 8 * 2**20, 32 * 2**20, 2**40)
        }
        assert len(set(results.values())) == 1


def test_small_chunk_budget_gives_statistically_equivalent_results():
    # Smaller blocks mean different (documented) random streams: the interval
    # moves only by Monte Carlo noise, and is itself reproducible.
    x = np.random.default_rng(9).beta(0.5, 3, 1_300)
    full = bootstrap_mean(x, n_resamples=20_000)
    small = bootstrap_mean(x, n_resamples=20_000, max_chunk_bytes=64 * 2**10)
    again = bootstrap_mean(x, n_resamples=20_000, max_chunk_bytes=64 * 2**10)
    width = full.high - full.low
    assert small == again
    assert abs(small.low - full.low) < 0.05 * width
    assert abs(small.high - full.high) < 0.05 * width
    assert small.standard_error == pytest.approx(full.standard_error, rel=0.05)


def test_large_suite_memory_is_bounded_by_the_chunk_budget():
    # 100,000 rows x 10,000 resamples would be 8 GB of int64 indices at once.
    x = np.random.default_rng(10).beta(0.5, 3, 100_000)
    tracemalloc.start()
    try:
        ci = bootstrap_mean(x, method="percentile", n_resamples=10_000, max_chunk_bytes=8 * 2**20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20  # the budget plus a few arrays of n floats
    assert ci.low < ci.estimate < ci.high
    assert ci.high - ci.low == pytest.approx(2 * 1.96 * x.std() / math.sqrt(x.size), rel=0.1)


# ---------------------------------------------------------------------------
# the result type


def test_result_is_json_ready_plain_data():
    ci = bootstrap_mean(np.random.default_rng(0).random(50), groups=np.arange(50) % 5, seed=3)
    as_dict = ci.to_dict()
    assert json.loads(json.dumps(as_dict)) == as_dict
    assert {type(v) for k, v in as_dict.items() if k != "method"} <= {float, int}
    assert as_dict["n_groups"] == 5 and as_dict["n"] == 50 and as_dict["method"] == "bca"
    assert ConfidenceInterval(**as_dict) == ci
    plain = bootstrap_mean([0.1, 0.5, 0.2]).to_dict()
    assert plain["n_groups"] is None and json.loads(json.dumps(plain)) == plain


def test_contains_is_closed_interval():
    ci = ConfidenceInterval(0.5, 0.4, 0.6, 0.95, "bca", 100, 10, None, 0.05)
    assert ci.contains(0.4) and ci.contains(0.6) and ci.contains(0.5)
    assert not ci.contains(0.39) and not ci.contains(0.61)
    assert ci.contains(np.float64(0.45)) is True


def test_threads_do_not_change_results(monkeypatch):
    """Blocks of resamples run on several cores; each owns its random substream, so one thread and many
    give bit-identical intervals."""
    values = np.random.default_rng(3).beta(0.5, 3.0, 1_300)
    groups = np.arange(1_300) % 37
    results = {}
    for threads in ("1", "2", "4"):
        monkeypatch.setenv("PRH_BOOTSTRAP_THREADS", threads)
        results[threads] = (bootstrap_mean(values, method="percentile"), bootstrap_mean(values, groups=groups),
                            paired_bootstrap_delta(values, values[::-1]))
    assert results["1"] == results["2"] == results["4"]
