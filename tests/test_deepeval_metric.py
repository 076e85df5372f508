"""The harness's metric as a DeepEval metric (`harness.integrations.deepeval.SCSMetric`), run offline with
the packaged MiniLM, and `prh deepeval-dataset` (a suite as DeepEval goldens).

The DeepEval cases skip, saying so, where deepeval is not installed (`pip install -e ".[deepeval]"`, in an
environment of its own: with the `optimizers` extra pip backtracks for a long time over litellm). The
dataset export needs no DeepEval and always runs."""

from __future__ import annotations

import importlib.util
import json

import pytest
from conftest import REPO_ROOT

from harness.candidates.constant import ConstantCandidate
from harness.cli import main
from harness.data import Sample, Suite
from harness.evaluation import BootstrapSettings, evaluate

HAS_DEEPEVAL = importlib.util.find_spec("deepeval") is not None
needs_deepeval = pytest.mark.skipif(not HAS_DEEPEVAL, reason="deepeval is not installed (pip install -e \".[deepeval]\" "
                                    "in its own environment)")
TRUTH = "Rewrite the text as a pirate shanty."


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """DeepEval run offline, writing nothing into the repository (its cache and result folders)."""
    monkeypatch.chdir(tmp_path)
    for name, value in {"DEEPEVAL_TELEMETRY_OPT_OUT": "1", "DEEPEVAL_DISABLE_DOTENV": "1",
                        "HF_HUB_OFFLINE": "1", "DEEPEVAL_RESULTS_FOLDER": str(tmp_path / "results")}.items():
        monkeypatch.setenv(name, value)
    return tmp_path


@needs_deepeval
def test_scs_metric_passes_a_deepeval_test_case_and_agrees_with_the_harness(minilm, offline):
    from deepeval import assert_test
    from deepeval.test_case import LLMTestCase

    from harness.integrations.deepeval import SCSMetric

    close, far = "Rewrite the text as a sea shanty sung by pirates.", "Summarise the quarterly sales figures."
    metric = SCSMetric(minilm, threshold=0.3)
    case = LLMTestCase(input="Ahoy, the text.", actual_output=close, expected_output=TRUTH)
    score = metric.measure(case)
    # the same number `pytest suites/` gives that answer on that row, through harness.evaluation
    row = Suite("one", (Sample("r0", "text", "rewritten", TRUTH),))
    harness_score = evaluate(ConstantCandidate("c", close), row, minilm,
                             bootstrap=BootstrapSettings(n_resamples=10, method="percentile")).scores[0]
    assert score == pytest.approx(float(harness_score), abs=1e-6) and metric.success
    assert "sharpened cosine similarity" in metric.reason and "not on the leaderboard scale" in metric.reason
    assert_test(case, [SCSMetric(minilm, threshold=0.3)])  # passes: no exception
    with pytest.raises(AssertionError):
        assert_test(LLMTestCase(input="Ahoy.", actual_output=far, expected_output=TRUTH),
                    [SCSMetric(minilm, threshold=0.3)])
    assert SCSMetric(minilm).measure(LLMTestCase(input="x", actual_output=far, expected_output=TRUTH)) < score
    assert SCSMetric(minilm).measure(LLMTestCase(input="x", actual_output=TRUTH, expected_output=TRUTH)) == \
        pytest.approx(1.0, abs=1e-5)


@needs_deepeval
def test_scs_metric_refuses_a_test_case_without_the_expected_output(minilm, offline):
    from deepeval.test_case import LLMTestCase

    from harness.integrations.deepeval import SCSMetric

    metric = SCSMetric(minilm)
    with pytest.raises(ValueError, match="expected_output"):
        metric.measure(LLMTestCase(input="x", actual_output="Rewrite it."))
    assert metric.is_successful() is False


def test_a_suite_as_deepeval_goldens(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    out = tmp_path / "goldens.json"
    assert main(["deepeval-dataset", "--suite", "synthetic-hard", "--out", str(out)]) == 0
    goldens = json.loads(out.read_text())
    printed = capsys.readouterr().out
    assert f"{len(goldens)} goldens of 'synthetic-hard'" in printed and "replaced" not in printed
    first = goldens[0]
    assert set(first) == {"name", "input", "expected_output", "additional_metadata"}
    assert first["input"].startswith("Original text:\n") and "\n\nRewritten text:\n" in first["input"]
    assert first["additional_metadata"]["group"]  # the suite has groups
    assert main(["deepeval-dataset", "--suite", "synthetic-hard", "--out", str(out)]) == 0
    assert "(replaced the file there)" in capsys.readouterr().out
    assert main(["deepeval-dataset", "--suite", "no-such-suite", "--out", str(tmp_path / "x.json")]) == 2
    assert not (tmp_path / "x.json").exists()
    if HAS_DEEPEVAL:  # DeepEval itself reads the file
        from deepeval.dataset import EvaluationDataset

        dataset = EvaluationDataset()
        dataset.add_goldens_from_json_file(str(out))
        assert [g.expected_output for g in dataset.goldens] == [g["expected_output"] for g in goldens]
