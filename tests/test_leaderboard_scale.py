"""The st5 scale map (harness/leaderboard/scale.py, scale_file.py, `prh calibrate scale`): the fit recovers a
known map (also from a file that kept only high rows), cross-file validation measures a shift between
files, the interval, the stored file (round trip, old → new), the domain rule, and `st5_estimate` on every
result (null without a map)."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import numpy as np
import pytest
from conftest import REPO_ROOT, embedder_factory, prh_with
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from optimize_helpers import BagOfWordsEmbedder

from harness.cli import main
from harness.errors import DataError
from harness.leaderboard.scale import (
    FileSummary,
    ScaleMap,
    ScoredRows,
    cross_file_validation,
    diversity,
    domain_problem,
    estimate_mean,
    features,
    fit_coefficients,
    fit_scale_map,
)
from harness.leaderboard.scale_file import load_scale_map, read_scale_map, scale_path, write_scale_map
from harness.workspace import Workspace


def constructed_rows(name: str, coef, *, n: int = 400, noise: float = 0.02, seed: int = 0, shift: float = 0.0,
                     kept_above: float | None = None) -> ScoredRows:
    """Rows whose st5 score is the known map of their |cos| plus noise (and `shift`); with `kept_above`,
    only the rows above it are kept, as in the public Mistral file."""
    rng = np.random.default_rng(seed)
    cos = rng.uniform(0.05, 0.95, size=n * (4 if kept_above is not None else 1))
    scores = cos ** 3
    st5 = features(scores) @ np.asarray(coef) + shift + rng.normal(0, noise, size=cos.size)
    if kept_above is not None:
        keep = st5 > kept_above
        scores, st5 = scores[keep], st5[keep]
    return ScoredRows(name, scores, st5, diversity=0.5, prompt_likeness=0.8, kept_above=kept_above)


coefficients = st.tuples(st.floats(0.3, 0.5), st.floats(-0.2, 0.3), st.floats(0.2, 0.6))


@settings(max_examples=25, deadline=None)
@given(coef=coefficients, seed=st.integers(0, 10_000))
def test_the_fit_recovers_a_known_map(coef, seed):
    found, sd = fit_coefficients([constructed_rows("a", coef, seed=seed), constructed_rows("b", coef, seed=seed + 1)])
    grid = features(np.linspace(0.05, 0.95, 19) ** 3)
    assert np.max(np.abs(grid @ found - grid @ np.asarray(coef))) < 0.02
    assert sd == pytest.approx(0.02, abs=0.004)


@settings(max_examples=10, deadline=None)
@given(coef=coefficients, seed=st.integers(0, 10_000))
def test_a_file_kept_above_a_threshold_is_fitted_by_truncated_likelihood(coef, seed):
    """Least squares on rows kept above a threshold flattens the map; the truncated likelihood does not."""
    grid = features(np.linspace(0.05, 0.95, 19) ** 3)
    truth = grid @ np.asarray(coef)
    assume(np.ptp(truth) >= 0.15)  # a map with a slope to flatten
    threshold = float(np.median(features(np.linspace(0.05, 0.95, 50) ** 3) @ np.asarray(coef)))
    kept = constructed_rows("high", coef, n=1500, seed=seed, kept_above=threshold)
    truncated, _ = fit_coefficients([kept])
    naive, _ = fit_coefficients([replace(kept, kept_above=None)])

    def rise(b):
        return float((grid @ b)[-1] - (grid @ b)[0])

    assert abs(rise(truncated) - rise(np.asarray(coef))) < 0.05
    assert abs(rise(truncated) - rise(np.asarray(coef))) < abs(rise(naive) - rise(np.asarray(coef)))
    kept_region = truth > threshold - 2 * 0.02  # below it, rows survive the cut only by their noise
    assert np.max(np.abs(grid @ truncated - truth)[kept_region]) < 0.02


def test_cross_file_validation_measures_the_shift_between_files():
    coef = (0.4, 0.1, 0.4)
    same = cross_file_validation([constructed_rows("a", coef), constructed_rows("b", coef, seed=1)])
    assert all(abs(c.mean_error) < 0.005 and c.pearson > 0.9 for c in same)
    files = [constructed_rows("a", coef), constructed_rows("b", coef, seed=1, shift=0.05),
             constructed_rows("c", coef, seed=2)]
    shifted = fit_scale_map(files, embedder="e", embedder_fingerprint="fp")
    errors = {c.held_out: c.mean_error for c in shifted.validation}
    assert errors["b"] == pytest.approx(-0.05 * 2 / 2, abs=0.01)  # the others, unshifted, predict 0.05 too low
    assert shifted.shift_sd == pytest.approx(np.sqrt(np.mean([e ** 2 for e in errors.values()])))
    with pytest.raises(Exception, match="at least two"):
        cross_file_validation(files[:1])


def a_map(**changes) -> ScaleMap:
    files = [constructed_rows("a", (0.4, 0.1, 0.4)), constructed_rows("b", (0.4, 0.1, 0.4), seed=1)]
    return replace(fit_scale_map(files, embedder="bow", embedder_fingerprint="bow-48"), **changes)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 2000), shift=st.floats(0.0, 0.1), seed=st.integers(0, 1000))
def test_the_interval_holds_the_estimate_and_grows_with_the_shift(n, shift, seed):
    scores = np.random.default_rng(seed).uniform(0, 1, n) ** 3
    scale = a_map(shift_sd=shift)
    interval = estimate_mean(scale, scores)
    assert interval.low <= interval.estimate <= interval.high
    assert interval.estimate == pytest.approx(float(scale.predict_rows(scores).mean()))
    wider = estimate_mean(replace(scale, shift_sd=shift + 0.05), scores)
    assert wider.high - wider.low > interval.high - interval.low or wider.high == 1.0


@settings(max_examples=20, deadline=None)
@given(n=st.integers(4, 300), seed=st.integers(0, 1000))
def test_groups_widen_the_interval_only_when_rows_cluster(n, seed):
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0, 1, n) ** 3
    scale = a_map(shift_sd=0.0)
    alone = estimate_mean(scale, scores)
    assert estimate_mean(scale, scores, groups=[str(i) for i in range(n)]).sampling_se == pytest.approx(alone.sampling_se)
    clustered = np.repeat(rng.uniform(0, 1, 2) ** 3, [n // 2, n - n // 2])  # two groups of identical rows
    groups = ["a"] * (n // 2) + ["b"] * (n - n // 2)
    assert (estimate_mean(scale, clustered, groups=groups).sampling_se
            >= estimate_mean(scale, clustered).sampling_se - 1e-12)


def test_the_stored_map_round_trips_and_says_old_to_new(tmp_path):
    first = a_map()
    update = write_scale_map(tmp_path, first, write=False)
    assert not update.written and not update.path.exists() and "not written" in update.describe()
    update = write_scale_map(tmp_path, first)
    assert update.path == scale_path(tmp_path, "bow") == tmp_path / "bow" / "st5_scale.json"
    assert update.describe().startswith(f"st5 scale map (bow): none → {first.describe()}")
    back = read_scale_map(update.path)
    assert back.coefficients == pytest.approx(first.coefficients, abs=1e-6)
    assert back.validation[0].mean_error == pytest.approx(first.validation[0].mean_error, abs=1e-6)
    assert back.files[1].diversity == pytest.approx(first.files[1].diversity, abs=1e-6)
    second = replace(first, shift_sd=0.07)
    assert f"{back.describe()} → {second.describe()}" in write_scale_map(tmp_path, second).describe()
    assert load_scale_map(tmp_path, "bow").shift_sd == pytest.approx(0.07)
    assert load_scale_map(tmp_path, "other") is None
    update.path.write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="st5_scale.json"):
        load_scale_map(tmp_path, "bow")
    assert ": an unreadable file → " in write_scale_map(tmp_path, first).describe()


# -- the domain rule ------------------------------------------------------------------------------------------
def unit_rows(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, dim))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def domain_map() -> ScaleMap:
    summary = FileSummary("fitted.csv", 100, "", None, 0.6, 0.1, 0.1, 0.99, diversity=0.3, prompt_likeness=0.6,
                          distinct_ratio=2.0)
    return replace(a_map(), files=(summary, replace(summary, name="other.csv", diversity=0.7)))


def test_the_domain_rule():
    scale = domain_map()
    n = 60
    truths = unit_rows(n, seed=1)
    truth_texts = [f"true prompt {i}" for i in range(n)]
    varied = truths + 0.8 * unit_rows(n, seed=2)
    varied /= np.linalg.norm(varied, axis=1, keepdims=True)
    scores = np.full(n, 0.5 ** 3)
    answers = [f"answer {i}" for i in range(n)]

    def problem(texts, vectors, row_scores=scores):
        return domain_problem(scale, row_scores, texts, vectors, truths, truths=truth_texts)

    assert problem(answers, varied) is None
    assert problem(["Improve the text."] * n, np.repeat(varied[:1], n, axis=0)).startswith("constant")
    assert problem([answers[i % 3] for i in range(n)], varied[[i % 3 for i in range(n)]]).startswith("near-constant")
    close = varied[:1] + 0.05 * unit_rows(n, seed=3)  # all different, all nearly the same direction
    close /= np.linalg.norm(close, axis=1, keepdims=True)
    assert problem(answers, close).startswith("near-constant: its answers' diversity")
    assert problem([a + " lucrarea" for a in answers], varied).startswith("scorer trick")
    assert problem([a + "</s>" for a in answers], varied).startswith("scorer trick")
    assert problem(answers[:-1] + [" "], varied).startswith("1 of 60 answers are empty")
    assert problem(answers, -truths).startswith("not prompts")
    assert problem(answers, varied, np.full(n, 0.999)).startswith("unlike the fitted rows")
    assert problem(answers, varied, np.full(n, 0.05 ** 3)).startswith("unlike the fitted rows")


def test_the_near_constant_thresholds_come_from_the_fitted_files():
    scale = domain_map()
    assert scale.min_diversity == pytest.approx(0.5 * 0.3)
    assert scale.min_prompt_likeness == pytest.approx(0.5 * 0.6)
    assert scale.min_distinct_ratio == pytest.approx(0.5)  # 2 distinct answers per prompt, counted as at most 1
    assert scale.cos_range == (0.1, 0.99)


# -- on every result -------------------------------------------------------------------------------------------
#: every embedder the workspace and `prh` build in these tests: the bag-of-words stub
FACTORY = embedder_factory(BagOfWordsEmbedder())
prh = prh_with(BagOfWordsEmbedder())




def varied_predictions(bare_project) -> str:
    """A predictions file: each true prompt of `leaked` with its last word dropped (varied, prompt-like)."""
    with open(REPO_ROOT / "fixtures" / "leaked.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    path = bare_project / "varied.csv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "rewrite_prompt"])
        writer.writerows([r["id"], " ".join(r["rewrite_prompt"].split()[:-1]) or "rewrite"] for r in rows)
    return f"file:{path}"


def test_every_result_under_a_mapped_embedder_gets_an_st5_estimate(bare_project, capsys):
    candidate = varied_predictions(bare_project)
    with Workspace.from_dir(bare_project, embedder_factory=FACTORY) as workspace:
        assert workspace.score(candidate, "leaked", embedder="bow").record.st5_estimate is None  # no map
        write_scale_map(workspace.baselines_dir, domain_map())
        scored = workspace.score(candidate, "leaked", embedder="bow")
        stored = [r for r in workspace.store().runs() if r.run_id == scored.record.run_id][0]
        assert stored.st5_estimate == scored.record.st5_estimate  # the history keeps it for the reports
        constant = workspace.score("mean-prompt", "leaked", embedder="bow").record.st5_estimate
        write_scale_map(workspace.baselines_dir, replace(domain_map(), embedder_fingerprint="another-build"))
        assert workspace.score(candidate, "leaked", embedder="bow").record.st5_estimate is None
    estimate = scored.record.st5_estimate
    assert estimate.in_domain and estimate.low <= estimate.estimate <= estimate.high
    assert estimate.estimate == pytest.approx(float(domain_map().predict_rows(scored.result.scores).mean()))
    assert "st5_scale.json" in estimate.map
    assert constant.in_domain is False and constant.estimate is None and constant.low is None
    assert constant.note.startswith("no estimate on Kaggle's scale: constant")


def test_prh_score_json_carries_st5_estimate_or_null(bare_project, capsys):
    assert prh(["score", "--suite", "leaked", "--candidate", "mean-prompt", "--embedder", "bow", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["st5_estimate"] is None
    write_scale_map(bare_project / "baselines", domain_map())
    assert prh(["score", "--suite", "leaked", "--candidate", "mean-prompt", "--embedder", "bow", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)["st5_estimate"]
    assert set(data) == {"estimate", "low", "high", "in_domain", "note", "map"} and data["in_domain"] is False
    assert prh(["score", "--suite", "leaked", "--candidate", varied_predictions(bare_project), "--embedder", "bow"]) == 0
    assert "Kaggle-scale est. 0." in capsys.readouterr().out


# -- prh calibrate scale ---------------------------------------------------------------------------------------
def write_rows(path, rows):
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["gt_rewrite_prompt", "rewrite_prompt", "score"])
        writer.writerows(rows)
    return str(path)


PROMPTS = ["Rewrite this text in a more formal tone.", "Make this text sound more optimistic.",
           "Turn this into a haiku about the sea.", "Summarize the text as a news headline.",
           "Rewrite the text as a pirate would say it.", "Make the text shorter and simpler.",
           "Convert this into a limerick.", "Rewrite as a letter to a friend."]


def scored_files(tmp_path):
    rng = np.random.default_rng(0)
    first = [(p, p.split()[0] + " " + PROMPTS[(i + 1) % 8], f"{rng.uniform(0.4, 0.7):.3f}") for i, p in enumerate(PROMPTS)]
    second = [(p, " ".join(p.split()[:4]), f"{rng.uniform(0.71, 0.9):.3f}") for p in PROMPTS]
    return write_rows(tmp_path / "first.csv", first), write_rows(tmp_path / "second.csv", second)


def test_prh_calibrate_scale_fits_a_path_embedder_and_says_old_to_new(tiny_sentence_model_dir, tmp_path, capsys):
    first, second = scored_files(tmp_path)
    common = ["calibrate", "scale", "--rows", first, "--rows-above", "0.70", second, "--embedder",
              f"path:{tiny_sentence_model_dir}", "--baselines-dir", str(tmp_path / "baselines"),
              "--store", str(tmp_path / "store.sqlite")]
    assert main(common) == 0
    out = capsys.readouterr().out
    assert "cross-file validation" in out and "not written (use --write)" in out
    assert not (tmp_path / "baselines").exists()
    assert main([*common, "--write"]) == 0
    path = tmp_path / "baselines" / tiny_sentence_model_dir.name / "st5_scale.json"
    stored = read_scale_map(path)
    assert [c.held_out for c in stored.validation] == ["first.csv", "second.csv"]
    assert stored.files[1].kept_above == 0.7 and "--rows-above 0.70" in stored.command
    assert ": none → " in capsys.readouterr().out
    assert main([*common, "--write", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["written"] and f"{stored.describe()} → " in data["update"]


@pytest.mark.parametrize("change, message", [
    (lambda first, second: ["--rows", first], "at least two files"),
    (lambda first, second: ["--rows", first, "--rows", first + ".typo"], "not found: "),
    (lambda first, second: ["--rows", first, "--rows", second, "--score-column", "st5"], "no column 'st5'"),
    (lambda first, second: ["--rows", first, "--rows-above", "0.75", second], "row "),
    (lambda first, second: ["--rows", first, "--rows-above", "high", second], "must be a number"),
])
def test_prh_calibrate_scale_refuses_bad_input_naming_it(change, message, tmp_path, capsys):
    first, second = scored_files(tmp_path)
    code = main(["calibrate", "scale", *change(first, second), "--embedder", "minilm",
                 "--baselines-dir", str(tmp_path / "b"), "--store", str(tmp_path / "s.sqlite")])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_a_bad_score_names_file_row_and_column(tmp_path, capsys):
    bad = write_rows(tmp_path / "bad.csv", [("a b", "a", "0.5"), ("c d", "c", "1.7"), ("e f", "e", "0.5")])
    first, _ = scored_files(tmp_path)
    assert main(["calibrate", "scale", "--rows", first, "--rows", bad, "--embedder", "minilm",
                 "--store", str(tmp_path / "s.sqlite")]) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and "row 2" in err and "'score'" in err


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 80), seed=st.integers(0, 1000))
def test_diversity_is_the_mean_distance_between_two_different_answers(n, seed):
    vectors = unit_rows(n, dim=8, seed=seed)
    pairwise = 1.0 - vectors @ vectors.T
    expected = (pairwise.sum() - np.trace(pairwise)) / (n * (n - 1))
    assert diversity(vectors) == pytest.approx(max(0.0, expected), abs=1e-9)
    assert diversity(np.repeat(vectors[:1], n, axis=0)) == pytest.approx(0.0, abs=1e-12)
