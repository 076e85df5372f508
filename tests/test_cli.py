"""The `prh` command, run in-process on the shipped suites with the packaged embedder."""

from __future__ import annotations

import json

import pytest
from conftest import REPO_ROOT

from harness.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture
def in_repo(monkeypatch, tmp_path):
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setenv("PRH_STORE", str(tmp_path / "store.sqlite"))
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
