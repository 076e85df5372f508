"""What every scoring gets from the leaderboard package: the predicted leaderboard score (Workspace.score's
record and `prh score --json`), and NOT_JUDGED for answers the embedder cannot see (unit, and end to end:
`pytest suites/ --candidate=mean-prompt+lucrarea --embedder=minilm`)."""

from __future__ import annotations

import json

import pytest
from conftest import REPO_ROOT, embedder_factory, prh_with
from optimize_helpers import BagOfWordsEmbedder

from harness.leaderboard.book import load_book
from harness.leaderboard.calibrate import CalibrationSettings, calibrate_suite
from harness.leaderboard.model import FitSettings
from harness.leaderboard.model_file import model_path, read_model, write_model
from harness.verdict import NOT_JUDGED, REGRESSION
from harness.workspace import Workspace

pytest_plugins = ["pytester"]


class KaggleLikeBagOfWords(BagOfWordsEmbedder):
    """The bag-of-words embedder standing in for Kaggle's own scorer."""

    comparable_with_kaggle = True


#: every embedder the workspace and `prh` build: the bag-of-words stub (a Kaggle-like one by that name)
EMBEDDERS = {"bow": BagOfWordsEmbedder(), "kaggle-bow": KaggleLikeBagOfWords(name="kaggle-bow")}
FACTORY = embedder_factory(EMBEDDERS["bow"], EMBEDDERS)
prh = prh_with(EMBEDDERS["bow"], EMBEDDERS)




def fit_model(workspace: Workspace, suite: str, embedder: str = "bow"):
    row = calibrate_suite(load_book(REPO_ROOT / "fixtures" / "probe_book.csv"), workspace.suite(suite),
                          workspace.embedder(embedder).embedder, store=workspace.store(),
                          resolve=workspace.candidate,
                          settings=CalibrationSettings(FitSettings(n_resamples=300), correlation_resamples=200),
                          label="fitted on the shipped public probes")
    return read_model(write_model(workspace.baselines_dir, row.model).path)  # as a fresh clone reads it


def test_the_predicted_leaderboard_score_is_in_every_record_and_in_prh_score(bare_project, capsys):
    with Workspace.from_dir(bare_project, embedder_factory=FACTORY) as workspace:
        assert workspace.score("mean-prompt", "leaked", embedder="bow").record.predicted_lb is None
        model = fit_model(workspace, "leaked")
        scored = workspace.score("mean-prompt", "leaked", embedder="bow")
    predicted = scored.record.predicted_lb
    assert predicted is not None and predicted.low <= predicted.high
    assert predicted.estimate == pytest.approx(float(model.fit.map.predict(scored.result.mean)))
    assert predicted.loo_mae == model.fit.loo_mae and predicted.n_probes == len(model.fit.fitted)
    assert predicted.loo_mae_mean_alone == model.fit.loo_mae_constant
    assert predicted.informative == (model.fit.loo_mae < model.fit.loo_mae_constant)
    assert predicted.note.startswith("fitted on the shipped public probes") and "leaked.leaderboard.json" in predicted.model
    assert any(s.startswith("4th-lucrarea-0.666: its answers contain the lucrarea string") for s in predicted.set_aside)
    stored = Workspace.from_dir(bare_project, embedder_factory=FACTORY).store(create=False).runs()[-1]
    assert stored.predicted_lb == predicted  # kept in the history for the reports
    assert any(p.row_scores for p in model.fit.fitted if p.kind == "template")
    with Workspace.from_dir(bare_project, embedder_factory=FACTORY, store=bare_project / "fresh.sqlite") as fresh:
        bow = fresh.embedder("bow").embedder
        before = len(bow.calls)
        again = fresh.score("mean-prompt", "leaked", embedder="bow").record.predicted_lb
        originals = {s.original_text for s in fresh.suite("leaked").samples}
    assert again.estimate == pytest.approx(predicted.estimate)
    assert not {t for call in bow.calls[before:] for t in call} & originals  # the template's rows: from the file

    assert prh(["score", "--suite", "leaked", "--candidate", "mean-prompt", "--embedder", "bow", "--json",
                 "--resamples", "500"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"estimate", "low", "high", "model", "loo_mae", "extrapolating", "loo_mae_mean_alone",
            "informative"} <= set(data["predicted_lb"])
    assert data["predicted_lb"]["estimate"] == pytest.approx(predicted.estimate)
    assert "predicted_lb_note" not in data
    assert prh(["score", "--suite", "public", "--candidate", "mean-prompt", "--embedder", "bow", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["predicted_lb"] is None and "no leaderboard model for suite 'public'" in data["predicted_lb_note"]


def test_a_model_of_another_suite_or_embedder_build_is_not_used(bare_project, capsys):
    with Workspace.from_dir(bare_project, embedder_factory=FACTORY) as workspace:
        fit_model(workspace, "leaked")
    path = model_path(bare_project / "baselines", "bow", "leaked")
    data = json.loads(path.read_text())
    data["embedder_fingerprint"] = "another-build"
    path.write_text(json.dumps(data))
    assert read_model(path).embedder_fingerprint == "another-build"
    assert prh(["score", "--suite", "leaked", "--candidate", "mean-prompt", "--embedder", "bow", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["predicted_lb"] is None and "another build of embedder 'bow'" in out["predicted_lb_note"]
    data["embedder_fingerprint"], data["suite_fingerprint"] = BagOfWordsEmbedder().fingerprint, "old-rows"
    path.write_text(json.dumps(data))
    assert prh(["score", "--suite", "leaked", "--candidate", "mean-prompt", "--embedder", "bow", "--json"]) == 0
    assert "suite 'leaked' changed" in json.loads(capsys.readouterr().out)["predicted_lb_note"]


def test_scorer_specific_answers_are_not_judged_by_another_embedder(bare_project):
    (bare_project / "candidates.toml").write_text((bare_project / "candidates.toml").read_text() + '''
[candidates.zebra]
kind = "constant"
prompt = "Rewrite the text. zebra zebra zebra"
scorer_specific = ["zebra"]

[candidates.zebra-ensemble]
kind = "ensemble"
members = ["zebra"]
''')
    with Workspace.from_dir(bare_project, embedder_factory=FACTORY) as workspace:
        for embedder in ("bow", "kaggle-bow"):
            workspace.update_baseline(workspace.score("mean-prompt", "leaked", embedder=embedder))
        plain = workspace.score("mean:banana banana", "leaked", embedder="bow").comparison
        lucrarea = workspace.score("mean-prompt+lucrarea", "leaked", embedder="bow").comparison
        declared = workspace.score("zebra-ensemble", "leaked", embedder="bow").comparison
        kaggle = workspace.score("mean-prompt+lucrarea", "leaked", embedder="kaggle-bow").comparison
        history = workspace.store(create=False).runs()
    assert plain.status == REGRESSION
    assert lucrarea.status == NOT_JUDGED and lucrarea.raw_status == NOT_JUDGED and not lucrarea.fails
    assert lucrarea.message.startswith("cannot be judged by bow: its answers rely on the lucrarea string "
                                       "(the 1st place's sentence-t5 suffix) (64 of 64 rows)")
    assert "check it with st5 or by its predicted leaderboard score" in lucrarea.message
    assert lucrarea.delta is not None and lucrarea.delta_high is not None and "for information" in lucrarea.message
    assert declared.status == NOT_JUDGED and "'zebra' (64 of 64 rows)" in declared.message
    assert kaggle.status != NOT_JUDGED  # the scorer itself judges its own quirks
    assert history[-2].baseline.status == NOT_JUDGED


def test_scorer_specific_must_be_a_list_of_strings(bare_project, capsys):
    (bare_project / "candidates.toml").write_text('[candidates.x]\nkind = "constant"\nprompt = "x"\nscorer_specific = "x"\n')
    assert prh(["score", "--suite", "leaked", "--candidate", "x", "--embedder", "bow"]) == 2
    assert "'scorer_specific' must be a list of strings" in capsys.readouterr().err


@pytest.mark.slow
def test_lucrarea_under_minilm_is_not_called_a_regression_and_says_why(shipped_project):
    # no -rs: the summary gives each not-judged suite's reason by itself
    result = shipped_project.runpytest_inprocess("suites/", "--embedder=minilm", "--candidate=mean-prompt+lucrarea",
                                                 "--bootstrap-resamples=2000", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, skipped=3)
    output = result.stdout.str()
    for suite in ("public", "leaked", "synthetic-hard"):
        assert f"not judged, skipped: {suite}: " in output
    summary = " ".join(output.split("prompt-recovery scores", 1)[1].split())  # notes are wrapped between words
    assert ("cannot be judged by minilm: its answers rely on the lucrarea string" in summary
            and "check it with st5 or by its predicted leaderboard score" in summary)
    assert "significantly worse" not in output
