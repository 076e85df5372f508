"""The reports as a user gets them, end to end: the pytest plugin and `prh` on a copy of the shipped project
with the packaged offline embedder (issue 11's done-when checks)."""

from __future__ import annotations

import csv
import json
import re

import pytest
from conftest import copy_store

from harness.cli import main

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.slow
SUITES = ("public", "leaked", "synthetic-hard")


def run(shipped_project, *args):
    return shipped_project.runpytest_inprocess("suites/", "--embedder=minilm", "--bootstrap-resamples=2000",
                                       "-p", "no:cacheprovider", *args)


def leaderboard_row(markdown: str, candidate: str) -> dict[str, str]:
    board = markdown.split("### Leaderboard", 1)[1].split("###", 1)[0]
    lines = [line for line in board.splitlines() if line.startswith("|")]
    headers = [cell.strip() for cell in lines[0].strip("|").split("|")]
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[1].split(" · ")[0] == candidate:
            return dict(zip(headers, cells))
    raise AssertionError(f"{candidate} not in the leaderboard")


def test_an_adhoc_file_never_empties_the_main_ranking_and_the_main_job_writes_every_report(shipped_project, capsys):
    result = run(shipped_project, "--candidate=mean-prompt")
    result.assert_outcomes(passed=2 * len(SUITES))
    output = result.stdout.str()
    assert output.count("NOT comparable with the Kaggle leaderboard") == 1  # the warning once
    assert "not Kaggle-comparable" not in output  # and not again in the table
    reports = shipped_project.path / "reports"
    assert (reports / "index.html").is_file() and (reports / "candidates" / "mean-prompt.md").is_file()
    page = (reports / "candidates" / "mean-prompt.md").read_text(encoding="utf-8")
    assert "### Worst 15 rows" in page and (reports / "candidates" / "mean-prompt.png").is_file()
    assert len(re.findall(r"^\| public ", page, flags=re.MULTILINE)) >= 1

    rows = list(csv.DictReader((shipped_project.path / "fixtures" / "public.csv").open(encoding="utf-8")))[:30]
    adhoc = shipped_project.path / "mine.csv"
    with adhoc.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["rewrite_prompt", "rewritten_text"])
        writer.writeheader()
        writer.writerows({"rewrite_prompt": r["rewrite_prompt"], "rewritten_text": r["rewritten_text"]} for r in rows)
    assert main(["score", "--suite", str(adhoc), "--candidate", "mean-prompt", "--embedder", "minilm",
                 "--resamples", "500"]) == 0
    assert main(["leaderboard"]) == 0
    capsys.readouterr()

    markdown = (reports / "leaderboard.md").read_text(encoding="utf-8")
    data = json.loads((reports / "leaderboard.json").read_text(encoding="utf-8"))
    section = data["sections"][0]
    assert section["suites"] == list(SUITES)
    (mean_prompt,) = [c for c in section["candidates"] if c["candidate"] == "mean-prompt"]
    expected = sum(mean_prompt["scores"][s]["mean"] for s in SUITES) / len(SUITES)
    assert mean_prompt["rank"] == 1 and mean_prompt["mean_over_suites"] == pytest.approx(expected)
    row = leaderboard_row(markdown, "mean-prompt")
    assert row["#"] == "1" and row["mean over suites"] == f"{expected:.3f}"
    assert [a["suite"] for a in section["adhoc"]] == [str(adhoc)]
    assert str(adhoc) in markdown.split("### Ad-hoc suites", 1)[1]


@pytest.mark.e2e  # retrieval over every suite's long rewritten texts
def test_a_candidate_that_learned_from_a_suite_is_ranked_on_the_others(shipped_project, shipped_store_with_rewritten):
    copy_store(shipped_store_with_rewritten, shipped_project.path / ".prh" / "store.sqlite")
    # the columns are the suites of the suites file that some candidate was scored on
    run(shipped_project, "--candidate=mean-prompt", "--suite=synthetic-hard").assert_outcomes(passed=2)
    result = run(shipped_project, "--candidate=retrieval-knn", "--baselines-dir=nowhere")
    result.assert_outcomes(passed=2, skipped=4)
    summary = " ".join(result.stdout.str().split("prompt-recovery scores", 1)[1].split())  # notes wrap between words
    assert "not applicable, skipped: synthetic-hard: candidate 'retrieval-knn' learned from suite 'synthetic-hard'" in summary
    markdown = (shipped_project.path / "reports" / "leaderboard.md").read_text(encoding="utf-8")
    row = leaderboard_row(markdown, "retrieval-knn")
    assert row["#"] == "1" and re.fullmatch(r"0\.\d{3}", row["mean over public, leaked"])
    assert row["synthetic-hard (n=138) (not ranked)"] == "n/a: learned from it"
    # mean-prompt was scored on synthetic-hard only: its mean would be over other rows, so it is not ranked
    other = leaderboard_row(markdown, "mean-prompt")
    assert other["#"] == "—" and other["mean over public, leaked"] == "— (misses public, leaked)"
    assert re.search(r"left out: synthetic-hard, which retrieval-knn( · [\w,]+ resamples)? learned from", markdown)
