"""Calibration: probes (incl. row-dependent ones), correlations with bootstrap CIs on constructed data with
a known correlation, and the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import REPO_ROOT
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import pearsonr, rankdata, spearmanr
from test_optimize_support import BagOfWordsEmbedder, family_suite

from harness.candidates.constant import ConstantCandidate
from harness.errors import ConfigError, DataError
from harness.evaluate import BootstrapSettings, evaluate
from harness.leaderboard.calibrate import (
    CalibrationSettings,
    _row_ranks,
    calibrate_suite,
    correlation_bootstrap,
)
from harness.leaderboard.calibration_report import write_calibration
from harness.leaderboard.probes import Probe, TemplateCandidate, load_probes
from harness.stats import resample_means

FAST = CalibrationSettings(n_resamples=400, probe_bootstrap=BootstrapSettings(n_resamples=300, method="percentile"))


def with_pearson(y: np.ndarray, r: float) -> np.ndarray:
    """A vector whose Pearson correlation with `y` is exactly `r`."""
    zy = (y - y.mean()) / np.linalg.norm(y - y.mean())
    w = np.random.default_rng(0).standard_normal(y.size)
    w -= w.mean() + (w @ zy) * zy
    w /= np.linalg.norm(w)
    return 0.5 + 0.1 * (r * zy + np.sqrt(1 - r * r) * w)


def test_known_correlation_is_recovered_exactly_without_noise():
    leaderboard = np.array([0.38, 0.52, 0.60, 0.63, 0.66, 0.70])
    means = with_pearson(leaderboard, 0.6)
    scores = np.tile(means, (50, 1))  # every row scores each probe the same: no sampling noise at all
    spearman, pearson = correlation_bootstrap(scores, leaderboard, leaderboard_noise=0.0, n_resamples=200)
    assert pearson.estimate == pytest.approx(0.6, abs=1e-9)
    assert pearson.low == pytest.approx(0.6, abs=1e-9) and pearson.high == pytest.approx(0.6, abs=1e-9)
    assert spearman.estimate == pytest.approx(spearmanr(means, leaderboard).statistic)
    assert pearson.defined == 1.0


def test_row_noise_gives_an_interval_around_the_truth_that_shrinks_with_rows():
    leaderboard = np.array([0.38, 0.52, 0.60, 0.63, 0.66, 0.70])
    means = with_pearson(leaderboard, 0.8)
    rng = np.random.default_rng(1)
    widths = []
    for n in (60, 1500):
        scores = means + rng.normal(0, 0.05, size=(n, means.size))
        spearman, pearson = correlation_bootstrap(scores, leaderboard, leaderboard_noise=0.0, n_resamples=1000, seed=2)
        assert pearson.estimate == pytest.approx(pearsonr(scores.mean(axis=0), leaderboard).statistic)
        assert pearson.low <= pearson.estimate <= pearson.high and spearman.low <= spearman.high
        widths.append(pearson.high - pearson.low)
    assert pearson.low < 0.8 < pearson.high  # n = 1500: the true correlation is inside
    assert widths[1] < widths[0] / 2


def test_monotone_probes_and_leaderboard_noise():
    leaderboard = np.array([0.38, 0.60, 0.63])
    scores = np.tile([0.01, 0.05, 0.06], (30, 1))
    spearman, pearson = correlation_bootstrap(scores, leaderboard, leaderboard_noise=0.0)
    assert spearman.estimate == 1.0 and (spearman.low, spearman.high) == (1.0, 1.0)
    reverse, _ = correlation_bootstrap(scores[:, ::-1], leaderboard, leaderboard_noise=0.0)
    assert reverse.estimate == -1.0
    noisy, _ = correlation_bootstrap(scores, leaderboard, leaderboard_noise=0.02, n_resamples=2000)
    assert noisy.estimate == 1.0 and noisy.low < 1.0  # 0.60 and 0.63 swap places often at this noise
    same, _ = correlation_bootstrap(np.tile([0.05, 0.05, 0.05], (10, 1)), leaderboard, leaderboard_noise=0.0)
    assert np.isnan(same.estimate) and same.defined == 0.0
    with pytest.raises(ConfigError, match="at least 3 probes"):
        correlation_bootstrap(scores[:, :2], leaderboard[:2])


def test_groups_are_resampled_whole():
    leaderboard = np.array([0.4, 0.5, 0.6])
    rng = np.random.default_rng(0)
    group_effect = np.repeat(rng.normal(0, 0.05, size=(10, 3)), 20, axis=0)  # 10 groups of 20 alike rows
    scores = np.array([0.1, 0.12, 0.14]) + group_effect + rng.normal(0, 0.001, size=(200, 3))
    groups = np.repeat(np.arange(10), 20)
    _, by_row = correlation_bootstrap(scores, leaderboard, leaderboard_noise=0.0, seed=1)
    _, by_group = correlation_bootstrap(scores, leaderboard, groups=groups, leaderboard_noise=0.0, seed=1)
    assert by_group.high - by_group.low > by_row.high - by_row.low


def test_correlations_use_the_shared_resampler_and_group_numbering():
    # The resampled probe means are exactly harness.stats.resample_means with the same generator: one
    # resampler for the project, and groups numbered by first appearance, so relabelling them (which
    # reorders sorted labels) changes nothing.
    rng = np.random.default_rng(3)
    scores = rng.random((120, 4))
    leaderboard = np.array([0.3, 0.5, 0.6, 0.7])
    groups = [f"g{i % 9}" for i in range(120)]
    relabelled = [f"{8 - i % 9}-renamed" for i in range(120)]  # a bijection that reverses the sorted order
    first = correlation_bootstrap(scores, leaderboard, groups=groups, n_resamples=300, seed=5)
    assert correlation_bootstrap(scores, leaderboard, groups=relabelled, n_resamples=300, seed=5) == first
    means = resample_means(scores, groups=groups, n_resamples=300, seed=np.random.default_rng(5))
    pearson = [pearsonr(row, leaderboard).statistic for row in means]
    _, without_noise = correlation_bootstrap(scores, leaderboard, groups=groups, n_resamples=300, seed=5,
                                             leaderboard_noise=0.0)
    assert (without_noise.low, without_noise.high) == pytest.approx(tuple(np.quantile(pearson, [0.025, 0.975])))


@settings(max_examples=50, deadline=None, database=None, derandomize=True)
@given(st.lists(st.lists(st.integers(0, 4), min_size=5, max_size=5), min_size=1, max_size=6))
def test_row_ranks_are_scipys_average_ranks(rows):
    a = np.array(rows, dtype=float)  # small integers: many ties
    np.testing.assert_array_equal(_row_ranks(a), rankdata(a, axis=1))


def test_shipped_probes_file_and_row_dependent_probes():
    probes = load_probes(REPO_ROOT / "fixtures" / "probes.csv")
    assert [p.leaderboard_score for p in probes] == [0.60, 0.63, 0.38]
    assert [p.row_dependent for p in probes] == [False, False, True]
    suite = family_suite(repeats=1)
    original = probes[2].candidate()
    assert isinstance(original, TemplateCandidate)
    assert original.predict(suite.samples) == [s.original_text for s in suite.samples]
    literal = Probe("braces", "Use {{braces}} here.", 0.5).candidate()
    assert isinstance(literal, ConstantCandidate) and literal.prompt == "Use {braces} here."
    mixed = Probe("mixed", "Rewrite of: {rewritten_text}", 0.5).candidate()
    assert mixed.predict(suite.samples[:1]) == [f"Rewrite of: {suite.samples[0].rewritten_text}"]


@pytest.mark.parametrize("content, message", [
    ("prompt,score\nx,0.5\n", "missing column(s) leaderboard_score"),
    ("prompt,leaderboard_score\nx,abc\n", "row 1 (line 2), column 'leaderboard_score'"),
    ("prompt,leaderboard_score\nx,0.5\ny,1.5\n", "row 2 (line 3), column 'leaderboard_score'"),
    ("prompt,leaderboard_score\n{foo},0.5\n", "column 'prompt': probe prompt: unknown placeholder(s) {foo}"),
    ("prompt,leaderboard_score\n,0.5\n", "prompt is empty"),
    ("name,prompt,leaderboard_score\na,x,0.5\na,y,0.6\n", "duplicate probe name 'a' (first in row 1)"),
])
def test_bad_probes_files_name_row_and_column(tmp_path, content, message):
    path = tmp_path / "probes.csv"
    path.write_text(content)
    with pytest.raises(DataError) as error:
        load_probes(path)
    assert message in str(error.value) and str(path) in str(error.value)


def test_calibrate_suite_wires_scores_correlations_and_offsets(tmp_path):
    suite = family_suite()
    embedder = BagOfWordsEmbedder()
    prompts = ["Rewrite the text as a poem.", "Make the text more formal.", "zebra quantum", "{original_text}"]
    local = [evaluate(Probe(str(i), p, 0.5).candidate(), suite, embedder, bootstrap=FAST.probe_bootstrap).mean
             for i, p in enumerate(prompts)]
    assert len(set(np.round(local, 6))) == 4
    probes = [Probe(f"p{i}", p, 0.3 + m) for i, (p, m) in enumerate(zip(prompts, local))]
    row = calibrate_suite(probes, suite, embedder, settings=FAST)
    assert row.spearman.estimate == pytest.approx(1.0) and row.pearson.estimate == pytest.approx(1.0)
    assert row.mean_offset == pytest.approx(-0.3) and row.mean_abs_offset == pytest.approx(0.3)
    assert [p.mean for p in row.probes] == pytest.approx(local) and row.n_rows == len(suite)
    reversed_probes = [Probe(p.name, p.prompt, 1.0 - p.leaderboard_score) for p in probes]
    worse = calibrate_suite(reversed_probes, suite, embedder, settings=FAST)
    assert worse.spearman.estimate == pytest.approx(-1.0)
    paths = write_calibration([worse, row], probes, tmp_path, notes=["embedder 'st5' skipped: not here"])
    markdown = paths[0].read_text()
    assert markdown.index("+1.000 [") < markdown.index("-1.000 [")  # the better predictor ranks first
    assert "not Kaggle-comparable" in markdown and "st5' skipped" in markdown
    data = json.loads(paths[1].read_text())
    assert data["results"][0]["spearman"]["estimate"] == pytest.approx(1.0) and data["probes"][3]["row_dependent"]
    assert paths[2].read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ConfigError, match="at least 3 probes"):
        calibrate_suite(probes[:2], suite, embedder, settings=FAST)
