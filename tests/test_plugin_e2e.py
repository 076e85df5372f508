"""End to end: the pytest plugin itself (pytester) on the shipped fixture suites and baselines, with the
packaged offline embedder, exactly as a user runs `pytest suites/ --candidate=…`."""

from __future__ import annotations

import json
import sqlite3

import pytest
from conftest import copy_shipped_project, copy_store, import_heavy_modules_outside_pytester

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.slow
SUITES = ("public", "leaked", "synthetic-hard")


@pytest.fixture(autouse=True)
def heavy_modules_imported_once(minilm):
    import_heavy_modules_outside_pytester()


@pytest.fixture
def cold_project(pytester):
    """The same layout with no store: every embedding is computed (and written) by the run itself."""
    copy_shipped_project(pytester.path)
    return pytester


def run(shipped_project, *args):
    return shipped_project.runpytest_inprocess("suites/", "--embedder=minilm", "--bootstrap-resamples=2000", "-p", "no:cacheprovider", "-rfEs", *args)


def test_mean_prompt_passes_every_check_and_writes_the_leaderboard(shipped_project):
    result = run(shipped_project, "--candidate=mean-prompt")
    result.assert_outcomes(passed=2 * len(SUITES))
    result.stdout.fnmatch_lines(["*prompt-recovery scores*", "*NOT comparable with the Kaggle leaderboard*"])
    reports = shipped_project.path / "reports"
    markdown = (reports / "leaderboard.md").read_text()
    assert "mean-prompt" in markdown and all(s in markdown for s in SUITES)
    data = json.loads((reports / "leaderboard.json").read_text())
    assert data["sections"][0]["embedder"] == "minilm"
    assert (reports / "leaderboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_worse_candidate_fails_the_regression_check_and_the_report_is_still_written(shipped_project):
    result = run(shipped_project, "--candidate=mean:banana")
    result.assert_outcomes(passed=len(SUITES), failed=len(SUITES))
    result.stdout.fnmatch_lines(["*test_not_worse_than_baseline*public*", "*significantly worse*'mean:banana'*"])
    markdown = (shipped_project.path / "reports" / "leaderboard.md").read_text()
    assert "mean:banana" in markdown and "regression" in markdown


def test_history_accumulates_across_candidates(shipped_project):
    run(shipped_project, "--candidate=mean-prompt")
    run(shipped_project, "--candidate=improve-text")
    data = json.loads((shipped_project.path / "reports" / "leaderboard.json").read_text())
    names = {c["candidate"] for c in data["sections"][0]["candidates"]}
    assert {"mean-prompt", "improve-text"} <= names


def test_empty_predictions_fail_naming_the_rows(shipped_project):
    suite = (shipped_project.path / "fixtures" / "leaked.csv").read_text(encoding="utf-8")
    import csv
    import io

    ids = [row["id"] for row in csv.DictReader(io.StringIO(suite))]
    submission = shipped_project.path / "submission.csv"
    submission.write_text("id,rewrite_prompt\n" + "".join(
        f"{i},{'' if n in (3, 7) else 'Rewrite this text.'}\n" for n, i in enumerate(ids)))
    result = run(shipped_project, f"--candidate=file:{submission}")
    # the file only covers `leaked`: the other suites are skipped as not applicable, not failed
    result.assert_outcomes(failed=1, passed=1, skipped=2 * (len(SUITES) - 1))
    result.stdout.fnmatch_lines([f"*2 of {len(ids)} predictions*are empty*'{ids[3]}', '{ids[7]}'*"])
    assert "INCOMPLETE" in (shipped_project.path / "reports" / "leaderboard.md").read_text()


def test_without_baselines_the_check_skips_and_the_report_says_so(shipped_project):
    result = run(shipped_project, "--candidate=mean-prompt", "--baselines-dir=nowhere", "--suite=leaked")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*no baseline for suite 'leaked'*"])
    assert "no baseline" in (shipped_project.path / "reports" / "leaderboard.md").read_text()


def test_update_baselines_accepts_the_current_candidate(shipped_project):
    result = run(shipped_project, "--candidate=improve-text", "--baselines-dir=fresh", "--update-baselines")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["*baseline public (minilm): none → improve-text 0.*"])
    stored = json.loads((shipped_project.path / "fresh" / "minilm" / "public.json").read_text())
    assert stored["candidate"] == "improve-text"
    run(shipped_project, "--candidate=improve-text", "--baselines-dir=fresh").assert_outcomes(passed=6)


def test_update_baselines_says_old_to_new_and_refuses_a_significantly_worse_candidate(shipped_project):
    before = {s: (shipped_project.path / "baselines" / "minilm" / f"{s}.json").read_bytes() for s in SUITES}
    result = run(shipped_project, "--candidate=mean:banana", "--update-baselines")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*baselines unchanged: *refused, so no baseline file was written (all or*",
                                 "*REFUSED public (minilm): mean-prompt 0.* → mean:banana 0.*, Δ -0.* [[]-0.*, -0.*[]]*",
                                 "*--update-baselines=force*"])
    after = {s: (shipped_project.path / "baselines" / "minilm" / f"{s}.json").read_bytes() for s in SUITES}
    assert after == before  # nothing replaced
    forced = run(shipped_project, "--candidate=mean:banana", "--update-baselines=force", "--suite=leaked")
    forced.stdout.fnmatch_lines(["*baseline leaked (minilm): mean-prompt 0.* → mean:banana 0.*"])
    stored = json.loads((shipped_project.path / "baselines" / "minilm" / "leaked.json").read_text())
    assert stored["candidate"] == "mean:banana"


def test_bad_suite_data_is_one_clear_line_not_a_traceback(shipped_project):
    """Bad data is a broken set-up, not a failed candidate (issue 16): exit 4 before any test, one line."""
    path = shipped_project.path / "fixtures" / "leaked.csv"
    path.write_text(path.read_text(encoding="utf-8").replace("rewrite_prompt", "prompt", 1), encoding="utf-8")
    result = run(shipped_project, "--candidate=mean-prompt", "--suite=leaked")
    line = usage_error_line(result)
    assert "leaked.csv: missing column 'rewrite_prompt'" in line and "columns found: id, original_text, prompt" in line


def usage_error_line(result) -> str:
    """A usage error is exit code 4 and one line on stderr, with no traceback and no tests run."""
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in text and "pluggy/_" not in text and "_pytest/" not in text
    assert "no tests ran" in result.stdout.str()
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert len(errors) == 1
    return errors[0]


def test_unknown_candidate_is_one_usage_error_listing_known_ones(shipped_project):
    line = usage_error_line(run(shipped_project, "--candidate=nope"))
    assert "unknown candidate 'nope'" in line and "known: improve-text, mean-prompt" in line


def test_unknown_suite_is_one_usage_error_listing_known_ones(shipped_project):
    line = usage_error_line(run(shipped_project, "--candidate=mean-prompt", "--suite=nope"))
    assert "unknown suite(s): nope" in line and "public" in line


def test_a_broken_suites_file_is_one_usage_error_naming_the_key(shipped_project):
    (shipped_project.path / "suites.toml").write_text('[suites.leaked]\npath = "fixtures/leaked.csv"\n[suites.x\n')
    assert "invalid TOML" in usage_error_line(run(shipped_project, "--candidate=mean-prompt"))
    (shipped_project.path / "suites.toml").write_text("[suites.leaked]\npath = 42\n")
    line = usage_error_line(run(shipped_project, "--candidate=mean-prompt"))
    assert "leaked" in line and "path" in line


@pytest.mark.e2e  # retrieval over every suite's long rewritten texts
def test_retrieval_is_skipped_on_its_own_train_suite(shipped_project, shipped_store_with_rewritten):
    copy_store(shipped_store_with_rewritten, shipped_project.path / ".prh" / "store.sqlite")
    result = run(shipped_project, "--candidate=retrieval-knn", "--baselines-dir=nowhere")
    result.assert_outcomes(passed=2, skipped=4)
    result.stdout.fnmatch_lines(["*learned from suite 'synthetic-hard'*memorisation*"])


@pytest.mark.e2e
def test_two_xdist_workers_share_the_store(cold_project):
    pytest.importorskip("xdist")
    result = cold_project.runpytest_subprocess("suites/", "--embedder=minilm", "--bootstrap-resamples=2000",
                                               "-p", "no:cacheprovider", "-n", "2", "--dist", "loadgroup",
                                               "--candidate=mean-prompt")
    result.assert_outcomes(passed=6)
    with sqlite3.connect(cold_project.path / ".prh" / "store.sqlite") as db:
        suites = [row[0] for row in db.execute("SELECT suite FROM runs")]
    assert sorted(suites) == sorted(SUITES)  # each suite scored and recorded exactly once
    assert (cold_project.path / "reports" / "leaderboard.md").is_file()
