"""The leaderboard model on constructed data with a known truth: maps, leave-one-probe-out error, refusal,
extrapolation, the set-aside rules, intervals, and the model file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import REPO_ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import ConfigError, DataError
from harness.leaderboard import (
    MIN_PROBES,
    FitSettings,
    ScoreMap,
    answer_rules,
    fit_leaderboard,
    fit_map,
    load_model,
    model_from_fit,
    model_path,
    predict,
    read_model,
    residual_rule,
    write_model,
)
from harness.leaderboard.model_file import FORMAT
from harness.leaderboard.usable_probes import scorer_specific_hits, vocabulary_share

FAST = FitSettings(n_resamples=300)


def line_probes(k: int = 10, *, n: int = 400, row_sd: float = 0.02, intercept: float = 0.3, slope: float = 2.5,
                seed: int = 0):
    """Probes whose leaderboard score is exactly intercept + slope × (true local mean); per-row scores are
    the true mean plus row noise, so the observed means carry only sampling noise."""
    rng = np.random.default_rng(seed)
    truth = np.linspace(0.05, 0.15, k)
    scores = truth + rng.normal(0, row_sd, size=(n, k))
    scores += truth - scores.mean(axis=0)  # observed means = truth exactly
    return [f"p{i}" for i in range(k)], scores, intercept + slope * truth


def test_loo_on_an_exact_linear_truth_is_exact():
    names, scores, y = line_probes()
    fit = fit_leaderboard(names, scores, y, settings=FitSettings(n_resamples=300, leaderboard_noise=0.0))
    assert fit.map.intercept == pytest.approx(0.3) and fit.map.slope == pytest.approx(2.5)
    assert fit.loo_mae == pytest.approx(0, abs=1e-9) and fit.loo_max_error == pytest.approx(0, abs=1e-9)
    assert fit.loo_spearman == pytest.approx(1.0) and not fit.set_aside
    assert fit.loo_mae_constant > 0.05  # the probes' mean alone is far worse
    table = fit.loo_table()
    assert [row["probe"] for row in table] == names
    assert all(row["low"] <= row["predicted"] <= row["high"] for row in table)
    assert table[0]["extrapolating"] and table[-1]["extrapolating"] and not table[4]["extrapolating"]


def test_loo_error_reflects_leaderboard_noise_on_noisy_probes():
    names, scores, y = line_probes(k=30)
    noisy = y + np.random.default_rng(1).normal(0, 0.01, size=y.size)
    fit = fit_leaderboard(names, scores, noisy, settings=FAST)
    assert 0.004 < fit.loo_mae < 0.02
    assert fit.loo_spearman > 0.9 and fit.loo_mae < fit.loo_mae_constant / 3


def test_fewer_than_four_probes_is_refused_with_the_reasons():
    names, scores, y = line_probes(k=3)
    with pytest.raises(ConfigError, match=f"at least {MIN_PROBES} probes it can judge, got 3"):
        fit_leaderboard(names, scores, y, settings=FAST)
    names, scores, y = line_probes(k=5)
    aside = [answer_rules("p0", ["x lucrarea"], comparable_with_kaggle=False, vocabulary=None),
             answer_rules("p1", ["</s>"], comparable_with_kaggle=False, vocabulary=None)]
    with pytest.raises(ConfigError) as error:
        fit_leaderboard(names, scores, y, pre_set_aside=aside, settings=FAST)
    assert "got 3 of 5" in str(error.value) and "p0: its answers contain the lucrarea string" in str(error.value)


def test_prediction_flags_extrapolation_and_the_interval_covers_the_truth():
    names, scores, y = line_probes(k=12, row_sd=0.05)
    fit = fit_leaderboard(names, scores, y, settings=FAST)
    rng = np.random.default_rng(5)
    inside = 0.1 + rng.normal(0, 0.05, size=scores.shape[0])
    outside = 0.3 + rng.normal(0, 0.05, size=scores.shape[0])
    a = predict(fit.map, scores, y, inside, x_range=fit.x_range, settings=FAST)
    b = predict(fit.map, scores, y, outside, x_range=fit.x_range, settings=FAST)
    assert not a.extrapolating and a.low < 0.3 + 2.5 * a.local_mean < a.high and not a.notes
    assert b.extrapolating and "outside the fitted probes' range" in b.notes[0]
    assert b.high - b.low > a.high - a.low  # a line is least certain far from its data
    few = predict(fit.map, scores[:40], y, inside[:40], x_range=fit.x_range, settings=FAST)
    assert few.high - few.low > a.high - a.low  # fewer rows: wider


def test_unjudgeable_probes_from_another_process_are_set_aside():
    # 10 probes follow the map; 3 get local scores from another process (unrelated to their leaderboard score)
    names, scores, y = line_probes(k=13)
    rng = np.random.default_rng(2)
    unjudgeable = [2, 7, 11]
    for j in unjudgeable:
        scores[:, j] += rng.choice([-1, 1]) * rng.uniform(0.04, 0.06)
    fit = fit_leaderboard(names, scores, y, settings=FAST)
    assert [s.probe for s in fit.set_aside] == [names[j] for j in unjudgeable]
    assert all(s.rule == "residual" and "from what the other probes' robust line predicts" in s.reason
               for s in fit.set_aside)
    assert fit.loo_mae < 0.01 < fit.loo_mae_all  # the set-aside ones are predicted, and reported apart
    blind = fit_leaderboard(names, scores, y, settings=FitSettings(n_resamples=300, residual_rule=False))
    assert blind.loo_mae > 3 * fit.loo_mae


def test_the_residual_rule_keeps_a_lone_informative_probe_when_the_rest_do_not_rank():
    # the real MiniLM case: constants the embedder cannot rank, and one probe far below them that it can
    rng = np.random.default_rng(0)
    x = np.r_[rng.uniform(0.02, 0.045, 12), 0.006]
    y = np.r_[rng.uniform(0.56, 0.70, 12), 0.38]
    y[:12] = np.sort(y[:12])[::-1][np.argsort(np.argsort(x[:12]))]  # constants ranked backwards
    assert residual_rule([f"p{i}" for i in range(13)], x, y, leaderboard_noise=0.01) == []


def test_a_falling_fit_is_replaced_by_the_flat_mean():
    fitted = fit_map("linear", [0.1, 0.2, 0.3, 0.4], [0.7, 0.6, 0.65, 0.5])
    assert fitted.slope == 0 and fitted.intercept == pytest.approx(0.6125)
    assert fit_map("robust", [0.1, 0.2, 0.3, 0.4], [0.7, 0.6, 0.65, 0.5]).slope == 0


def test_answer_rules():
    vocabulary = frozenset("please improve the text rewrite this".split())
    assert answer_rules("p", ["Please improve the text."], comparable_with_kaggle=False, vocabulary=vocabulary) is None
    salad = answer_rules("p", ["rewrite zorbify quux the frobnicate"], comparable_with_kaggle=False,
                         vocabulary=vocabulary)
    assert salad.rule == "vocabulary" and "only 40% of its words" in salad.reason
    marked = answer_rules("p", ["a", "b </s>", "c"], comparable_with_kaggle=False, vocabulary=vocabulary)
    assert marked.rule == "scorer-specific" and "</s> (1 of 3 rows)" in marked.reason
    assert answer_rules("p", ["LucrareA"], comparable_with_kaggle=True, vocabulary=vocabulary) is None
    assert scorer_specific_hits(["x \u2581y", "Plucrarealucrarea", "ok"], declared=["ok"]) == {
        "lucrarea": 1, "\u2581": 1, "ok": 1}
    assert vocabulary_share(["The text, 42 this!"], vocabulary) == 1.0  # numbers and punctuation are not words
    assert vocabulary_share([""], vocabulary) == 1.0


@settings(max_examples=40, deadline=None, database=None, derandomize=True)
@given(st.lists(st.tuples(st.floats(0, 0.3), st.floats(0.3, 0.7)), min_size=4, max_size=15),
       st.sampled_from(["linear", "robust", "isotonic"]), st.permutations(range(4)))
def test_maps_never_fall_and_do_not_depend_on_probe_order(points, kind, order):
    x = np.array([p[0] for p in points])
    y = np.array([p[1] for p in points])
    grid = np.linspace(-0.1, 0.5, 25)
    fitted = fit_map(kind, x, y)
    assert np.all(np.diff(fitted.predict(grid)) >= -1e-12)
    perm = np.r_[np.array(order), np.arange(4, x.size)]
    assert fit_map(kind, x[perm], y[perm]).predict(grid) == pytest.approx(fitted.predict(grid), abs=1e-9)
    assert ScoreMap.from_dict(json.loads(json.dumps(fitted.to_dict()))).predict(grid) == pytest.approx(
        fitted.predict(grid), abs=1e-5)


def test_isotonic_and_robust_maps_fit_and_report_loo():
    names, scores, y = line_probes(k=8)
    for kind in ("robust", "isotonic"):
        fit = fit_leaderboard(names, scores, y, settings=FitSettings(map=kind, n_resamples=200))
        assert fit.map.kind == kind and fit.loo_mae < 0.05 and len(fit.loo_table()) == 8


def _model(fit, **changes):
    fields = dict(suite="leaked", suite_fingerprint="s1", embedder="minilm", embedder_fingerprint="e1",
                  comparable_with_kaggle=False, target="public", probe_book="book.csv", probe_book_hash="h",
                  submissions={p.probe: ("constant", f"text of {p.probe}") for p in fit.probes}, label="fitted here")
    fields.update(changes)
    return model_from_fit(fit, **fields)


def test_model_file_round_trip_and_fingerprint_mismatch(tmp_path):
    names, scores, y = line_probes()
    fit = fit_leaderboard(names, scores, y, settings=FAST)
    model = _model(fit)
    update = write_model(tmp_path, model)
    assert update.path == model_path(tmp_path, "minilm", "leaked") == tmp_path / "minilm" / "leaked.leaderboard.json"
    assert update.old is None and "none → linear map on 10 probes, LOO MAE" in update.describe()
    loaded = load_model(tmp_path, "minilm", "leaked")
    assert loaded.to_dict() == model.to_dict()
    assert loaded.fit.map.predict(0.1) == pytest.approx(fit.map.predict(0.1), abs=1e-5)
    data = json.loads(update.path.read_text())
    assert {"suite_fingerprint", "embedder_fingerprint", "probe_book_hash", "map", "probes", "set_aside",
            "loo_mae", "loo_max_error", "loo_spearman"} <= set(data)
    assert loaded.mismatch("s1", "e1") is None
    assert "another build of embedder 'minilm'" in loaded.mismatch("s1", "e2") and "not used" in loaded.mismatch("s1", "e2")
    assert "suite 'leaked' changed" in loaded.mismatch("s2", "e1")
    again = write_model(tmp_path, _model(fit, label="refit"))
    assert again.old is not None and again.describe().startswith("leaderboard model leaked (minilm): linear map")
    assert load_model(tmp_path, "minilm", "public") is None
    update.path.write_text("{not json")
    with pytest.raises(DataError, match="not a valid leaderboard model file"):
        read_model(update.path)


def test_a_format_1_file_reads_as_the_same_model(tmp_path):
    # /1 called the leaderboard noise `noise_sd`; everything else is stored as /2 stores it
    names, scores, y = line_probes()
    model = _model(fit_leaderboard(names, scores, y, settings=FitSettings(n_resamples=300, leaderboard_noise=0.02)))
    current = model.to_dict()
    assert current["format"] == FORMAT == "prh-leaderboard-model/2"
    settings = dict(current["settings"])
    settings["noise_sd"] = settings.pop("leaderboard_noise")
    old = tmp_path / "old.leaderboard.json"
    old.write_text(json.dumps({**current, "format": "prh-leaderboard-model/1", "settings": settings}))
    assert read_model(old).to_dict() == current and read_model(old).fit.settings.leaderboard_noise == 0.02
    old.write_text(json.dumps({**current, "format": "prh-leaderboard-model/9"}))
    with pytest.raises(DataError, match="prh-leaderboard-model/9"):
        read_model(old)


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "baselines").glob("*/*.leaderboard.json")), ids=str)
def test_the_shipped_models_load_and_write_back_what_they_hold(path, tmp_path):
    stored = json.loads(path.read_text())
    model = read_model(path)
    again = model.to_dict()
    assert {k: v for k, v in again.items() if k not in ("format", "settings")} == \
        {k: v for k, v in stored.items() if k not in ("format", "settings")}
    noise = stored["settings"].get("noise_sd", stored["settings"].get("leaderboard_noise"))
    assert model.fit.settings.leaderboard_noise == noise and len(model.fit.fitted) >= 4
    assert read_model(write_model(tmp_path, model).path).to_dict() == again
