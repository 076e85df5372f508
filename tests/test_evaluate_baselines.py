"""evaluate() and the baseline verdicts, on the real packaged embedder."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.baselines import (
    apply_correction,
    compare_with_baseline,
    load_baseline,
    update_baselines,
    write_baseline,
)
from harness.candidates import ConstantCandidate, PredictionsFileCandidate
from harness.data import Sample, Suite
from harness.errors import DataError
from harness.evaluation import BootstrapSettings, evaluate
from harness.metric import scs_rows
from harness.store import Store
from harness.verdict import Comparison

FAST = BootstrapSettings(n_resamples=2000)
PROMPTS = ["Rewrite this as a sea shanty.", "Make the email more formal.", "Turn the memo into a haiku.",
           "Rewrite the story from the dog's point of view.", "Make the text more humorous.",
           "Simplify this for a five-year-old.", "Convert this into a news article.", "Add a plot twist."] * 3


def make_suite(prompts=PROMPTS, name="toy", groups=None) -> Suite:
    samples = tuple(Sample(f"r{i}", "original", "rewritten", p, None if groups is None else groups[i])
                    for i, p in enumerate(prompts))
    return Suite(name, samples)


class EchoTruth:
    """A perfect candidate: answers each row's true prompt."""

    name = spec = "echo"
    fingerprint = "echo-v1"

    def predict(self, samples):
        return [s.rewrite_prompt for s in samples]


def test_scores_are_scs_of_the_embeddings(minilm, tmp_path):
    suite = make_suite()
    candidate = ConstantCandidate("m", "Improve the text to this.")
    with Store(tmp_path / "s.sqlite") as store:
        result = evaluate(candidate, suite, minilm, store=store, bootstrap=FAST)
        # a mean prompt costs one embedding beyond the distinct truths
        assert store.count_embeddings(minilm.fingerprint) == len(set(PROMPTS)) + 1
    truth = minilm.embed(suite.prompts)
    prediction = minilm.embed([candidate.prompt] * len(suite))
    np.testing.assert_allclose(result.scores, scs_rows(prediction, truth), atol=1e-5)
    assert result.interval.low <= result.mean <= result.interval.high
    assert result.embedder == "minilm" and result.embedder_fingerprint == minilm.fingerprint
    assert result.complete and result.n == len(PROMPTS)


def test_perfect_candidate_scores_one(minilm):
    result = evaluate(EchoTruth(), make_suite(), minilm, bootstrap=FAST)
    np.testing.assert_allclose(result.scores, 1.0, atol=1e-5)


def test_empty_predictions_score_zero_and_are_listed(minilm, tmp_path):
    suite = make_suite(PROMPTS[:3])
    path = tmp_path / "sub.csv"
    path.write_text('id,rewrite_prompt\nr0,Rewrite this as a sea shanty.\nr1,""\nr2,   \n')
    result = evaluate(PredictionsFileCandidate(path), suite, minilm, bootstrap=FAST)
    assert result.empty_prediction_ids == ["r1", "r2"] and not result.complete
    assert result.scores[0] == pytest.approx(1.0, abs=1e-5) and list(result.scores[1:]) == [0.0, 0.0]


def test_grouped_suite_reports_groups(minilm):
    groups = [f"g{i % 4}" for i in range(len(PROMPTS))]
    result = evaluate(ConstantCandidate("m", "Rewrite."), make_suite(groups=groups), minilm, bootstrap=FAST)
    assert result.interval.n_groups == 4


# -- baselines ------------------------------------------------------------------------------------------
@pytest.fixture
def scored(minilm):
    suite = make_suite()

    def score(prompt: str):
        return evaluate(ConstantCandidate(prompt, prompt), suite, minilm, bootstrap=FAST)

    return score


def test_baseline_round_trip_is_readable(scored, tmp_path):
    result = scored("Improve the text to this.")
    path = write_baseline(tmp_path, result)
    assert path == tmp_path / "minilm" / "toy.json"
    data = json.loads(path.read_text())
    assert data["candidate"] == "Improve the text to this." and len(data["scores"]) == result.n
    assert path.read_text().count("\n") > result.n  # one score per line: readable in a diff
    baseline = load_baseline(tmp_path, "minilm", "toy")
    assert baseline.scores["r0"] == pytest.approx(result.scores[0], abs=1e-6)


def test_verdicts(scored, minilm, tmp_path):
    reference = scored("Rewrite the text in a different style.")
    write_baseline(tmp_path, reference)
    baseline = load_baseline(tmp_path, "minilm", "toy")
    same = compare_with_baseline(reference, baseline, bootstrap=FAST)
    assert same.status == "no-difference" and same.delta == pytest.approx(0, abs=1e-5)
    worse = compare_with_baseline(scored("banana"), baseline, bootstrap=FAST)
    assert worse.status == "regression" and worse.delta_high < 0 and "significantly worse" in worse.message
    perfect = evaluate(EchoTruth(), make_suite(), minilm, bootstrap=FAST)
    better = compare_with_baseline(perfect, baseline, bootstrap=FAST)
    assert better.status == "improvement" and better.delta_low > 0 and perfect.mean > reference.mean


def test_no_baseline_and_stale_baseline(scored, minilm, tmp_path):
    result = scored("Improve the text to this.")
    assert compare_with_baseline(result, None).status == "no-baseline"
    write_baseline(tmp_path, result)
    changed = evaluate(ConstantCandidate("x", "Improve the text to this."), make_suite(PROMPTS[:-1]), minilm, bootstrap=FAST)
    comparison = compare_with_baseline(changed, load_baseline(tmp_path, "minilm", "toy"))
    assert comparison.status == "stale" and "--update-baselines" in comparison.message


def test_incomplete_result_is_never_a_baseline(minilm, tmp_path):
    path = tmp_path / "sub.csv"
    path.write_text("id,rewrite_prompt\n" + "".join(f"r{i},\n" for i in range(len(PROMPTS))))
    result = evaluate(PredictionsFileCandidate(path), make_suite(), minilm, bootstrap=FAST)
    with pytest.raises(ValueError, match="incomplete"):
        write_baseline(tmp_path, result)


def test_baselines_are_updated_all_or_nothing(scored, minilm, tmp_path):
    """Issue 16: one suite refused (significantly worse) used to leave the other suites' files rewritten, so the
    baselines came from two references. Now nothing is written unless everything is; force writes them all."""
    reference = scored("Rewrite the text in a different style.")
    other_suite = evaluate(ConstantCandidate("ref", "Rewrite the text in a different style."),
                           make_suite(name="other"), minilm, bootstrap=FAST)
    for result in (reference, other_suite):
        write_baseline(tmp_path, result)
    files = [tmp_path / "minilm" / "toy.json", tmp_path / "minilm" / "other.json"]
    before = [path.read_bytes() for path in files]
    worse = scored("banana")  # refused on toy
    fine = evaluate(EchoTruth(), make_suite(name="other"), minilm, bootstrap=FAST)  # acceptable on other
    family = [(worse, compare_with_baseline(worse, load_baseline(tmp_path, "minilm", "toy"), bootstrap=FAST)),
              (fine, compare_with_baseline(fine, load_baseline(tmp_path, "minilm", "other"), bootstrap=FAST))]
    refused, held = update_baselines(tmp_path, family)
    assert refused.refused and "significantly worse" in refused.describe() and not refused.written
    assert held.refused is None and not held.written and "all or nothing" in held.describe()
    assert re.match(r"NOT WRITTEN other \(minilm\): ref 0\.\d{4} → echo 1\.0000, Δ \+", held.describe())
    assert [path.read_bytes() for path in files] == before  # no baseline file changed
    forced = update_baselines(tmp_path, family, force=True)
    assert all(update.written for update in forced)
    assert [json.loads(path.read_text())["candidate"] for path in files] == ["banana", "echo"]


def test_malformed_baseline_file_is_named(tmp_path):
    (tmp_path / "minilm").mkdir()
    (tmp_path / "minilm" / "toy.json").write_text("{not json")
    with pytest.raises(DataError, match="toy.json.*--update-baselines"):
        load_baseline(tmp_path, "minilm", "toy")


def test_every_comparison_carries_what_the_suite_can_conclude(scored, tmp_path):
    reference = scored("Rewrite the text in a different style.")
    write_baseline(tmp_path, reference)
    worse = compare_with_baseline(scored("banana"), load_baseline(tmp_path, "minilm", "toy"), bootstrap=FAST)
    assert worse.p_regression is not None and worse.p_regression < 0.025  # consistent with the CI below −tol
    assert worse.wins + worse.ties + worse.losses == reference.n and worse.losses > worse.wins
    assert 0 < worse.minimum_detectable_effect < 1
    assert worse.small_sample and "24 rows" in worse.small_sample  # below 200 rows: said, not hidden
    assert worse.design_effect is None  # no groups


def _comparison(p: float, status: str = "regression") -> Comparison:
    return Comparison(status, "m", raw_status=status, p_regression=p, delta=-0.02, delta_low=-0.04, delta_high=-0.005)


def test_holm_keeps_the_family_wise_false_alarm_rate_and_shows_both_verdicts():
    family = [_comparison(0.02), _comparison(0.30, "no-difference"), _comparison(0.001), None]
    corrected = apply_correction(family, "holm")
    assert corrected[3] is None
    # 0.001 * 3 = 0.003 < 0.025: still a regression; 0.02 * 2 = 0.04 ≥ 0.025: not after the correction
    assert corrected[2].status == "regression" and corrected[2].p_adjusted == pytest.approx(0.003)
    assert corrected[0].status == "no-difference" and corrected[0].raw_status == "regression"
    assert corrected[0].p_adjusted == pytest.approx(0.04) and "holm correction over 3 suites" in corrected[0].message
    assert corrected[1].status == "no-difference"
    uncorrected = apply_correction(family, "none")
    assert [c.status for c in uncorrected[:3]] == ["regression", "no-difference", "regression"]


@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=8))
def test_the_correction_never_creates_a_regression(p_values):
    family = [_comparison(p, "regression" if p < 0.025 else "no-difference") for p in p_values]
    for before, after in zip(family, apply_correction(family, "holm")):
        assert after.p_adjusted >= before.p_regression - 1e-12
        assert not (after.status == "regression" and before.status != "regression")
