"""The `prh` command, run in-process on the shipped suites with the packaged embedder."""

from __future__ import annotations

import json

import pytest
from conftest import REPO_ROOT

from harness.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture
def in_repo(monkeypatch, tmp_path, prh_store):
    """Commands run in the repository; $PRH_STORE is a copy of the shipped suites' embeddings (conftest)."""
    monkeypatch.chdir(REPO_ROOT)
    return tmp_path


def score_json(capsys, *args):
    code = main(["score", "--embedder", "minilm", "--resamples", "2000", "--json", *args])
    out = capsys.readouterr().out
    return code, (json.loads(out) if out.strip() else None)


def test_score_named_suite_as_json(in_repo, capsys):
    code, data = score_json(capsys, "--suite", "leaked", "--candidate", "mean-prompt")
    assert code == 0
    assert data["embedder"] == "minilm" and data["n"] >= 50 and data["ci_low"] <= data["mean"] <= data["ci_high"]
    assert data["baseline"]["status"] == "no-difference"


def test_score_a_raw_file_with_predictions_in_the_same_file(in_repo, capsys):
    raw = in_repo / "raw.csv"
    raw.write_text("key,truth,guess\n1,Rewrite this as a poem.,Rewrite this as a poem.\n2,Make it formal.,Make it formal.\n")
    code, data = score_json(capsys, "--suite", str(raw), "--truth-column", "truth", "--id-column", "key",
                            "--predictions", str(raw), "--prediction-column", "guess")
    assert code == 0 and data["n"] == 2 and data["mean"] == pytest.approx(1.0, abs=1e-5)


def test_errors_are_one_line_on_stderr(in_repo, capsys):
    sub = in_repo / "sub.csv"
    sub.write_text("id,rewrite_prompt\nleak-001,Rewrite.\n")
    code = main(["score", "--embedder", "minilm", "--suite", "leaked", "--predictions", str(sub)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "no prediction for" in err and "Traceback" not in err
    code = main(["score", "--suite", "no-such-suite", "--candidate", "mean-prompt"])
    assert code == 2 and "neither a suite" in capsys.readouterr().err


def test_empty_predictions_exit_1_and_are_marked_incomplete(in_repo, capsys):
    raw = in_repo / "raw.csv"
    raw.write_text('id,rewrite_prompt,pred\na,Make it formal.,Make it formal.\nb,Make it a poem.,""\n')
    code, data = score_json(capsys, "--suite", str(raw), "--predictions", str(raw), "--prediction-column", "pred")
    assert code == 1 and data["complete"] is False and data["empty_prediction_ids"] == ["b"]


def test_leaderboard_re_renders_from_the_store(in_repo, capsys):
    score_json(capsys, "--suite", "leaked", "--candidate", "improve-text")
    assert main(["leaderboard", "--report-dir", str(in_repo / "reports")]) == 0
    assert "improve-text" in (in_repo / "reports" / "leaderboard.md").read_text()


def test_predictions_in_the_suite_file_without_an_id_column_align_by_position(in_repo, capsys):
    raw = in_repo / "raw.csv"
    raw.write_text("truth,guess\nRewrite this as a poem.,Rewrite this as a poem.\nMake it formal.,Write a limerick.\n")
    code, data = score_json(capsys, "--suite", str(raw), "--truth-column", "truth", "--id-column", "",
                            "--predictions", str(raw), "--prediction-column", "guess", "--rows")
    assert code == 0 and data["n"] == 2
    assert [row["prediction"] for row in data["rows"]] == ["Rewrite this as a poem.", "Write a limerick."]
    assert data["rows"][0]["score"] == pytest.approx(1.0, abs=1e-5) and data["rows"][1]["score"] < 0.9


def test_a_separate_predictions_file_by_position_or_by_its_own_id_column(in_repo, capsys):
    truth = in_repo / "truth.csv"
    truth.write_text("id,rewrite_prompt\na,Rewrite this as a poem.\nb,Make it formal.\n")
    keyed = in_repo / "keyed.csv"
    keyed.write_text("key,p\nb,Make it formal.\na,Rewrite this as a poem.\n")
    code, data = score_json(capsys, "--suite", str(truth), "--predictions", str(keyed), "--prediction-column", "p",
                            "--prediction-id-column", "key")
    assert code == 0 and data["mean"] == pytest.approx(1.0, abs=1e-5)
    unkeyed = in_repo / "unkeyed.csv"
    unkeyed.write_text("p\nRewrite this as a poem.\nMake it formal.\n")
    code, data = score_json(capsys, "--suite", str(truth), "--predictions", str(unkeyed), "--prediction-column", "p",
                            "--prediction-id-column", "")
    assert code == 0 and data["mean"] == pytest.approx(1.0, abs=1e-5)
    unkeyed.write_text("p\nRewrite this as a poem.\n")
    code = main(["score", "--embedder", "minilm", "--suite", str(truth), "--predictions", str(unkeyed),
                 "--prediction-column", "p", "--prediction-id-column", ""])
    err = capsys.readouterr().err
    assert code == 2 and "unkeyed.csv" in err and "1 prediction rows" in err and "2 rows" in err


def test_reading_commands_refuse_a_store_that_does_not_exist(in_repo, capsys):
    reports = in_repo / "reports"
    reports.mkdir()
    (reports / "leaderboard.md").write_text("previous report\n")
    typo = in_repo / "typo" / "x.sqlite"
    code = main(["leaderboard", "--store", str(typo), "--report-dir", str(reports)])
    err = capsys.readouterr().err
    assert code == 2 and "store not found" in err and str(typo) in err
    assert not typo.parent.exists()  # no folder, no empty database
    assert (reports / "leaderboard.md").read_text() == "previous report\n"  # reports untouched


def test_suites_lists_every_broken_suite_by_name(in_repo, capsys, tmp_path):
    (tmp_path / "good.csv").write_text("id,rewrite_prompt\n1,Make it formal.\n")
    (tmp_path / "bad.csv").write_text("id,prompt\n1,x\n")
    suites = tmp_path / "suites.toml"
    suites.write_text('[suites.good]\npath = "good.csv"\ncolumns = { original_text = "", rewritten_text = "" }\n'
                      '[suites.bad]\npath = "bad.csv"\n[suites.gone]\npath = "missing.csv"\n')
    code = main(["suites", "--suites-file", str(suites)])
    out = capsys.readouterr().out
    assert code == 2
    assert "good: 1 rows" in out and "rewrite_prompt" in out
    broken = [line for line in out.splitlines() if line.startswith("BROKEN")]
    assert len(broken) == 2 and "'bad'" in broken[0] and "'gone'" in broken[1]
