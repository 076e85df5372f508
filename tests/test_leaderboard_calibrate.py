"""Calibration: correlations with bootstrap CIs on constructed data with a known correlation, the
leaderboard model fitted by `calibrate_suite` on constructed probes (one embedding call for the constants),
the report, and `prh calibrate` (JSON contract, --write-model old → new)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import REPO_ROOT, prh_with
from optimize_helpers import BagOfWordsEmbedder, family_suite
from scipy.stats import pearsonr, spearmanr

from harness.cli import main
from harness.errors import ConfigError
from harness.evaluation import BootstrapSettings, evaluate
from harness.leaderboard.book import Probe
from harness.leaderboard.calibrate import (
    CalibrationSettings,
    calibrate_suite,
    correlation_bootstrap,
)
from harness.leaderboard.calibration_report import OFFLINE_RANKING_NOTE, write_calibration
from harness.leaderboard.model import FitSettings
from harness.stats import resample_means

FAST = CalibrationSettings(FitSettings(n_resamples=300), correlation_resamples=400)


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
    leaderboard = np.array([0.38, 0.60, 0.63, 0.66])
    scores = np.tile([0.01, 0.05, 0.06, 0.07], (30, 1))
    spearman, pearson = correlation_bootstrap(scores, leaderboard, leaderboard_noise=0.0)
    assert spearman.estimate == 1.0 and (spearman.low, spearman.high) == (1.0, 1.0)
    reverse, _ = correlation_bootstrap(scores[:, ::-1], leaderboard, leaderboard_noise=0.0)
    assert reverse.estimate == -1.0
    noisy, _ = correlation_bootstrap(scores, leaderboard, leaderboard_noise=0.02, n_resamples=2000)
    assert noisy.estimate == 1.0 and noisy.low < 1.0  # 0.60 and 0.63 swap places often at this noise
    same, _ = correlation_bootstrap(np.tile([0.05, 0.05, 0.05, 0.05], (10, 1)), leaderboard, leaderboard_noise=0.0)
    assert np.isnan(same.estimate) and same.defined == 0.0
    with pytest.raises(ConfigError, match="at least 4 probes"):
        correlation_bootstrap(scores[:, :2], leaderboard[:2])


def test_groups_are_resampled_whole():
    leaderboard = np.array([0.4, 0.5, 0.6, 0.7])
    rng = np.random.default_rng(0)
    group_effect = np.repeat(rng.normal(0, 0.05, size=(10, 4)), 20, axis=0)  # 10 groups of 20 alike rows
    scores = np.array([0.1, 0.12, 0.14, 0.16]) + group_effect + rng.normal(0, 0.001, size=(200, 4))
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


PROMPTS = ["Rewrite the text as a poem.", "Make the text more formal.", "zebra quantum", "Rewrite the story.",
           "Make the memo cheerful text.", "Turn this email into a formal letter."]


def constructed_probes(suite, embedder, *, intercept=0.3, slope=2.0):
    """Probes whose leaderboard score is exactly intercept + slope × their local mean on `suite`, plus the
    {original_text} template probe, plus a lucrarea probe whose leaderboard score is unrelated."""
    bootstrap = BootstrapSettings(n_resamples=1, method="percentile")
    specs = [(f"p{i}", p, "constant") for i, p in enumerate(PROMPTS)] + [("original", "{original_text}", "template")]
    local = [evaluate(Probe(n, p, 0.5, kind=k).candidate(), suite, embedder, bootstrap=bootstrap).mean for n, p, k in specs]
    probes = [Probe(n, p, intercept + slope * m, kind=k) for (n, p, k), m in zip(specs, local)]
    return probes + [Probe("lucrarea", "Rewrite the text. lucrarealucrarea", 0.69)], local


def test_calibrate_suite_fits_the_model_sets_aside_and_embeds_constants_once(tmp_path):
    suite = family_suite()
    embedder = BagOfWordsEmbedder()
    probes, local = constructed_probes(suite, embedder)
    assert len(set(np.round(local, 6))) == len(local)
    embedder.calls.clear()
    row = calibrate_suite(probes, suite, embedder, settings=FAST)
    constants = [p.submission for p in probes if p.kind == "constant"]
    truths = set(suite.prompts)
    calls = [call for call in embedder.calls if set(call) - truths]  # the truths are embedded apart
    assert set(calls[0]) == set(constants)  # every constant probe: one call
    originals = {s.original_text for s in suite.samples}
    assert set().union(*calls[1:]) - truths == originals  # then the template probe's answers, row by row
    assert row.embedding_calls == 1
    fit = row.fit
    assert fit.loo_mae == pytest.approx(0, abs=1e-6) and fit.loo_spearman == pytest.approx(1.0)
    assert fit.map.slope == pytest.approx(2.0) and fit.map.intercept == pytest.approx(0.3)
    assert [(s.probe, s.rule) for s in fit.set_aside] == [("lucrarea", "scorer-specific")]
    data = row.to_dict()
    assert {"loo", "loo_mae", "loo_max_error", "loo_spearman", "model", "set_aside", "seconds"} <= set(data)
    assert {"probe", "leaderboard_score", "predicted", "low", "high"} <= set(data["loo"][0])
    assert data["model"]["kind"] == "linear" and data["set_aside"][0]["reason"].startswith("its answers contain")
    assert row.model.suite_fingerprint == suite.fingerprint and row.model.embedder_fingerprint == embedder.fingerprint
    paths = write_calibration([row], probes, tmp_path, notes=["embedder 'st5' skipped: not here"])
    markdown = paths[0].read_text()
    assert "set aside **lucrarea** (scorer-specific)" in markdown and "st5' skipped" in markdown
    written = json.loads(paths[1].read_text())
    assert written["results"][0]["loo_mae"] == pytest.approx(0, abs=1e-6)
    # An offline embedder's probe correlation comes with why it may be low while the README ranks with it.
    explained = OFFLINE_RANKING_NOTE in written["notes"]
    assert explained is (not embedder.comparable_with_kaggle) and (OFFLINE_RANKING_NOTE[:40] in markdown) is explained
    assert paths[2].read_bytes()[:4] == b"\x89PNG"


def test_calibrate_suite_refuses_too_few_probes_and_reports_an_unfittable_model():
    suite = family_suite()
    embedder = BagOfWordsEmbedder()
    probes, _ = constructed_probes(suite, embedder)
    with pytest.raises(ConfigError, match="at least 4 probes"):
        calibrate_suite(probes[:3], suite, embedder, settings=FAST)
    marked = [Probe(p.name, p.submission + " </s>", p.public, kind=p.kind) for p in probes[:4]]
    row = calibrate_suite(marked + probes[4:6], suite, embedder, settings=FAST)
    assert row.fit is None and "needs at least 4 probes it can judge, got 2 of 6" in row.refused


@pytest.fixture
def in_repo(monkeypatch, tmp_path):
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setenv("PRH_STORE", str(tmp_path / "store.sqlite"))
    return tmp_path


def test_calibrate_cli_json_contract_and_write_model(in_repo, capsys, monkeypatch):
    prh = prh_with(BagOfWordsEmbedder())
    args = ["calibrate", "--suite", "leaked", "--embedder", "bow", "--resamples", "200", "--out",
            str(in_repo / "cal"), "--baselines-dir", str(in_repo / "baselines"), "--json"]
    assert prh(args) == 0
    data = json.loads(capsys.readouterr().out)
    result = data["results"][0]
    assert {"loo", "loo_mae", "loo_max_error", "loo_spearman", "model", "set_aside", "seconds"} <= set(result)
    assert {a["probe"] for a in result["set_aside"] if a["rule"] == "scorer-specific"} >= {"4th-lucrarea-0.666"}
    assert {e["probe"] for e in result["excluded"]} >= {"7th-over-128-tokens", "11th-lucrarea-private"}
    assert data["models"][0].startswith("not written (use --write-model)")
    assert not (in_repo / "baselines").exists()
    assert prh([*args, "--write-model"]) == 0
    first = json.loads(capsys.readouterr().out)["models"][0]
    assert "leaked (bow): none → linear map" in first
    written = in_repo / "baselines" / "bow" / "leaked.leaderboard.json"
    assert json.loads(written.read_text())["probe_book"] == "fixtures/probe_book.csv"
    assert prh([*args, "--write-model", "--map", "isotonic"]) == 0
    second = json.loads(capsys.readouterr().out)["models"][0]
    assert "leaked (bow): linear map on" in second and "→ isotonic map on" in second


def test_calibrate_cli_errors_name_the_row(in_repo, capsys, monkeypatch):
    bad = in_repo / "probes.csv"
    bad.write_text("prompt,leaderboard_score\nImprove it.,0.6\nOther.,high\n")
    code = main(["calibrate", "--probes", str(bad), "--suite", "leaked"])
    err = capsys.readouterr().err
    assert code == 2 and "row 2 (line 3), column 'leaderboard_score'" in err


@pytest.mark.slow
def test_calibrate_cli_with_the_packaged_embedder(in_repo, capsys, monkeypatch, minilm):
    prh = prh_with(minilm)
    out = in_repo / "calibration"
    assert prh(["calibrate", "--suite", "leaked", "--embedder", "minilm", "--resamples", "300", "--out", str(out),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)["results"][0]
    assert result["suite"] == "leaked" and result["embedder"] == "minilm" and result["n_rows"] == 64
    by_name = {p["probe"]: p for p in result["probes"]}
    assert by_name["original-text"]["mean"] < by_name["improve-text"]["mean"]  # as on the leaderboard (0.38 < 0.60)
    assert by_name["6th-bestow"]["vocabulary_share"] < 0.8 <= by_name["improve-text"]["vocabulary_share"]
    rules = {a["probe"]: a["rule"] for a in result["set_aside"]}
    assert rules["4th-lucrarea-0.69-spm-best"] == "scorer-specific" and rules["6th-bestow"] == "vocabulary"
    assert result["loo_mae"] is not None and (out / "calibration.md").is_file() and (out / "calibration.png").is_file()
