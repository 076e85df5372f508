"""Tests of harness.report: the leaderboard formats records faithfully, never mixes embedders, ranks over the
suites file's suites (ad-hoc files apart), keeps non-default settings apart, and shows the gate's statistics.

Records are built by hand (no model, no store), so every number asserted here is known in advance.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from report_records import MINILM, record
from rich.console import Console

from harness.report import (
    build_view,
    latest_runs,
    render_json,
    render_markdown,
    render_plot,
    rich_table,
    write_reports,
)
from harness.run import RunRecord, run_json
from harness.verdict import Comparison, PredictedScore

WHEN = datetime(2024, 4, 1, 12, 0, tzinfo=timezone.utc)
ST5 = ("sentence-t5-base", "st5-fingerprint")


def run(candidate: str, suite: str, mean: float, **extra) -> RunRecord:
    """A run under sentence-t5 on 100 rows unless said otherwise (the one builder: report_records.record)."""
    return record(candidate, suite, mean, **{"embedder": ST5, "n": 100, **extra})


def comparison(status: str, delta: float = -0.04, baseline_candidate: str = "mean-prompt-v1") -> Comparison:
    return Comparison(status, f"{status}: see the paired CI", baseline_candidate=baseline_candidate, baseline_mean=0.61,
                      delta=delta, delta_low=delta - 0.015, delta_high=delta + 0.015)


def sections(markdown: str) -> dict[str, str]:
    """Markdown split at its '## ' headings: heading line -> body."""
    parts = re.split(r"^## ", markdown, flags=re.MULTILINE)[1:]
    return {part.splitlines()[0]: part for part in parts}


def table_rows(text: str) -> list[list[str]]:
    """Body rows of every github table in `text` (header and separator lines dropped)."""
    rows, previous = [], ""
    for line in text.splitlines():
        if line.startswith("|") and not re.fullmatch(r"\|[-|: ]+\|", line) and not previous.startswith("|"):
            previous = line  # a header line
            continue
        if line.startswith("|") and not re.fullmatch(r"\|[-|: ]+\|", line):
            rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))])
        previous = line
    return rows


def subsection(section_text: str, heading: str) -> str:
    """The text under the first '### ' heading starting with `heading`, up to the next heading ('' if none)."""
    for part in re.split(r"^### ", section_text, flags=re.MULTILINE)[1:]:
        if part.startswith(heading):
            return part
    return ""


def leaderboard_rows(section_text: str) -> list[list[str]]:
    return table_rows(subsection(section_text, "Leaderboard"))


def against_rows(section_text: str) -> dict[tuple[str, str], dict[str, str]]:
    """The 'Against the baselines' table as (candidate, suite) -> {header: cell}."""
    text = subsection(section_text, "Against the baselines")
    lines = [line for line in text.splitlines() if line.startswith("|")]
    if not lines:
        return {}
    headers = [cell.strip() for cell in lines[0].strip().strip("|").split("|")]
    rows = {}
    for cells in table_rows(text):
        row = dict(zip(headers, cells))
        rows[(row["candidate"], row["suite"])] = row
    return rows


# -- latest_runs ------------------------------------------------------------------------------------------
def test_latest_runs_keeps_the_newest_record_per_key() -> None:
    old = run("a", "s1", 0.50, run_id=1)
    new = run("a", "s1", 0.60, run_id=7)
    other_suite = run("a", "s2", 0.40, run_id=2)
    kept = latest_runs([new, old, other_suite])
    assert sorted((r.suite, r.mean) for r in kept) == [("s1", 0.60), ("s2", 0.40)]


def test_latest_runs_falls_back_to_created_without_run_ids() -> None:
    older = run("a", "s1", 0.50, created=100.0)
    newer = run("a", "s1", 0.55, created=200.0)
    assert [r.mean for r in latest_runs([newer, older])] == [0.55]
    assert [r.mean for r in latest_runs([older, newer])] == [0.55]


def test_latest_runs_keeps_fingerprints_apart() -> None:
    records = [
        run("a", "s1", 0.50, fingerprint="v1", run_id=1),
        run("a", "s1", 0.52, fingerprint="v2", run_id=2),  # same name, another candidate version
        run("a", "s1", 0.12, embedder=MINILM, fingerprint="v1", run_id=3),
        run("a", "s1", 0.13, embedder=("minilm", "other-weights"), fingerprint="v1", run_id=4),
    ]
    assert len(latest_runs(records)) == 4


# -- markdown ---------------------------------------------------------------------------------------------
@pytest.fixture
def two_embedders() -> list[RunRecord]:
    return [
        run("alpha", "s1", 0.640), run("alpha", "s2", 0.600),
        run("beta", "s1", 0.700), run("beta", "s2", 0.650),
        run("alpha", "s1", 0.121, embedder=MINILM), run("alpha", "s2", 0.111, embedder=MINILM),
        run("beta", "s1", 0.133, embedder=MINILM), run("beta", "s2", 0.144, embedder=MINILM),
    ]


def test_markdown_gives_each_embedder_its_own_section(two_embedders: list[RunRecord]) -> None:
    found = sections(render_markdown(two_embedders, generated_at=WHEN))
    assert len(found) == 2
    st5 = next(body for heading, body in found.items() if "sentence-t5-base" in heading)
    minilm = next(body for heading, body in found.items() if "minilm" in heading)
    assert "st5-fingerprint" in st5.splitlines()[0] and "minilm-fingerprint" in minilm.splitlines()[0]
    st5_cells = " ".join(" ".join(row) for row in table_rows(st5))
    minilm_cells = " ".join(" ".join(row) for row in table_rows(minilm))
    for value in ("0.640", "0.600", "0.700", "0.650"):
        assert value in st5_cells and value not in minilm_cells
    for value in ("0.121", "0.111", "0.133", "0.144"):
        assert value in minilm_cells and value not in st5_cells


def test_two_fingerprints_of_one_embedder_are_separate_sections() -> None:
    records = [run("a", "s1", 0.11, embedder=("minilm", "weights-1")),
               run("a", "s1", 0.19, embedder=("minilm", "weights-2"))]
    found = sections(render_markdown(records, generated_at=WHEN))
    assert len(found) == 2
    for heading, body in found.items():
        rows = leaderboard_rows(body)
        assert len(rows) == 1
        expected = "0.110" if "weights-1" in heading else "0.190"
        assert rows[0][3].startswith(expected)


def test_only_the_non_comparable_section_warns(two_embedders: list[RunRecord]) -> None:
    markdown = render_markdown(two_embedders, generated_at=WHEN)
    for heading, body in sections(markdown).items():
        warned = "NOT COMPARABLE WITH THE KAGGLE LEADERBOARD" in body
        assert warned == ("minilm" in heading)


def test_markdown_opens_with_the_explanation_and_time(two_embedders: list[RunRecord]) -> None:
    intro = render_markdown(two_embedders, generated_at=WHEN).split("\n## ")[0]
    assert "sharpened cosine similarity" in intro
    assert "95% bootstrap confidence intervals" in intro
    assert "0.02" in intro
    assert "2024-04-01 12:00:00" in intro


def test_cells_show_mean_and_ci_and_headers_show_n() -> None:
    markdown = render_markdown([run("a", "s1", 0.1234, n=250)], generated_at=WHEN)
    assert "0.123 [0.113, 0.133]" in markdown
    assert "s1 (n=250)" in markdown


def test_candidates_are_ranked_by_mean_over_suites() -> None:
    records = [
        run("low", "s1", 0.50), run("low", "s2", 0.50),
        run("high", "s1", 0.40), run("high", "s2", 0.90),  # lower on s1, higher on average
        run("middle", "s1", 0.60), run("middle", "s2", 0.55),
    ]
    rows = leaderboard_rows(render_markdown(records, generated_at=WHEN))
    assert [row[1] for row in rows] == ["high", "middle", "low"]
    assert [row[0] for row in rows] == ["1", "2", "3"]
    assert [row[-1] for row in rows] == ["0.650", "0.575", "0.500"]


def test_a_candidate_missing_a_suite_gets_a_dash_and_ranks_last() -> None:
    records = [
        run("complete", "s1", 0.30), run("complete", "s2", 0.30),
        run("partial", "s1", 0.95),  # best score, but only on one suite
    ]
    rows = leaderboard_rows(render_markdown(records, generated_at=WHEN))
    assert [row[1] for row in rows] == ["complete", "partial"]
    partial = rows[-1]
    assert partial[0] == "—" and partial[-1] == "— (misses s2)"  # unranked, saying what it misses
    assert "—" in partial[3:-1]  # the missing suite's cell


def test_incomplete_predictions_are_flagged_everywhere() -> None:
    records = [
        run("full", "s1", 0.60, baseline=comparison("no-difference")),
        run("holes", "s1", 0.65, n_empty=3, baseline=comparison("improvement")),
    ]
    markdown = render_markdown(records, generated_at=WHEN)
    leaderboard = subsection(markdown, "Leaderboard")
    holes = next(row for row in table_rows(leaderboard) if "holes" in row[1])
    assert "INCOMPLETE" in holes[1] and "3/100 empty" in holes[3]
    assert holes[0] != "1"  # never ranked as if it were a valid submission
    full = next(row for row in table_rows(leaderboard) if "full" in row[1])
    assert "INCOMPLETE" not in " ".join(full) and full[0] == "1"
    assert "INCOMPLETE" in against_rows(markdown)[("holes", "s1")]["verdict"]
    assert "rejects" in leaderboard  # the note says why it matters


def test_verdicts_render_readably() -> None:
    statuses = ["regression", "improvement", "no-difference", "no-baseline", "stale"]
    records = [run(f"c{i}", "s1", 0.5 + i / 100, baseline=comparison(status)) for i, status in enumerate(statuses)]
    records.append(run("unchecked", "s1", 0.4))
    markdown = render_markdown(records, generated_at=WHEN)
    rows = against_rows(markdown)
    verdicts = {candidate: row["verdict"] for (candidate, _), row in rows.items()}
    assert verdicts["c0"] == "❌ regression"
    assert verdicts["c1"] == "✅ better"
    assert "no significant difference" in verdicts["c2"]
    assert verdicts["c3"] == "no baseline"
    assert "stale" in verdicts["c4"]
    assert "not compared" in verdicts["unchecked"]
    regression = rows[("c0", "s1")]
    assert regression["baseline (its mean)"].startswith("mean-prompt-v1")
    assert regression["Δ [CI]"] == "-0.040 [-0.055, -0.025]"
    assert "1 regression(s)" in subsection(markdown, "Against the baselines")


def test_names_with_pipes_do_not_break_tables() -> None:
    rows = leaderboard_rows(render_markdown([run("a|b", "s1", 0.5)], generated_at=WHEN))
    assert len(rows[0]) == 5  # #, candidate, fingerprint, s1, mean over suites


def test_empty_history_says_no_runs_yet() -> None:
    markdown = render_markdown([], generated_at=WHEN)
    assert "No runs yet" in markdown
    assert not table_rows(markdown) and not any(line.startswith("|") for line in markdown.splitlines())
    assert json.loads(render_json([], generated_at=WHEN))["sections"] == []


# -- the leaderboard model: main suites, ad-hoc suites, settings, not applicable --------------------------
SHIPPED = ("public", "leaked", "synthetic-hard")


def shipped_runs(candidate: str, means: tuple[float, float, float], **kwargs) -> list[RunRecord]:
    return [run(candidate, suite, mean, **kwargs) for suite, mean in zip(SHIPPED, means)]


def test_adhoc_files_get_their_own_section_and_never_empty_the_ranking() -> None:
    records = [*shipped_runs("mean-prompt", (0.60, 0.70, 0.50)), *shipped_runs("other", (0.50, 0.60, 0.40)),
               run("mean-prompt", "data/mine.csv", 0.31, suite_kind="file"),
               run("mean-prompt", "data/mine.csv", 0.33, suite_kind="file", ci_method="percentile", n_resamples=100)]
    markdown = render_markdown(records, main_suites=SHIPPED, generated_at=WHEN)
    rows = leaderboard_rows(markdown)
    assert [row[1] for row in rows] == ["mean-prompt", "other"]  # still ranked, no ad-hoc column
    assert rows[0][-1] == "0.600" and rows[1][-1] == "0.500"
    header = next(line for line in subsection(markdown, "Leaderboard").splitlines() if line.startswith("| #"))
    assert "mine.csv" not in header and [s in header for s in SHIPPED] == [True] * 3
    assert header.index("public") < header.index("leaked") < header.index("synthetic-hard")  # suites-file order
    adhoc = table_rows(subsection(markdown, "Ad-hoc suites"))
    assert [(row[0], row[1]) for row in adhoc] == [("data/mine.csv", "mean-prompt · 100 resamples · percentile"),
                                                   ("data/mine.csv", "mean-prompt")]
    data = json.loads(render_json(records, main_suites=SHIPPED, generated_at=WHEN))
    section = data["sections"][0]
    assert section["suites"] == list(SHIPPED) and [c["rank"] for c in section["candidates"]] == [1, 2]
    assert {a["settings"] for a in section["adhoc"]} == {"", "100 resamples · percentile"}


def test_a_suite_dropped_from_the_suites_file_moves_out_of_the_ranking() -> None:
    records = [*shipped_runs("a", (0.6, 0.6, 0.6)), run("a", "old-suite", 0.9)]
    markdown = render_markdown(records, main_suites=SHIPPED, generated_at=WHEN)
    assert leaderboard_rows(markdown)[0][-1] == "0.600"
    assert "old-suite" in subsection(markdown, "Ad-hoc suites")
    # without a suites file every named suite counts
    assert leaderboard_rows(render_markdown(records, generated_at=WHEN))[0][-1] == "0.675"


def test_runs_with_other_settings_are_separate_labelled_rows_never_replacing_the_default() -> None:
    default = shipped_runs("mean-prompt", (0.60, 0.70, 0.50), run_id=1)
    signed = run("mean-prompt", "leaked", 0.10, signed=True, n_resamples=100, ci_method="percentile", seed=3,
                 run_id=2)  # newer, but other settings
    rows = leaderboard_rows(render_markdown([*default, signed], main_suites=SHIPPED, generated_at=WHEN))
    assert len(rows) == 2
    assert rows[0][:2] == ["1", "mean-prompt"] and rows[0][-1] == "0.600"
    assert rows[0][4].startswith("0.700")  # the default leaked cell is untouched
    assert rows[1][1] == "mean-prompt · signed · 100 resamples · percentile · seed 3"
    assert rows[1][4].startswith("0.100") and rows[1][0] == "—"
    assert len(latest_runs([*default, signed])) == 4


def test_the_ranking_never_orders_means_over_different_suites() -> None:
    """Issue 16's repro: retrieval learned from synthetic-hard, so it has 2 of the 3 suites. Ranking its 2-suite
    mean against mean-prompt's 3-suite mean put it first; over the suites both have, mean-prompt is ahead."""
    records = [*shipped_runs("mean-prompt", (0.093, 0.091, 0.036)),
               run("retrieval", "public", 0.111, baseline=comparison("no-difference", delta=0.01)),
               run("retrieval", "leaked", 0.045, baseline=comparison("regression", delta=-0.045)),
               run("unfinished", "public", 0.99)]
    learned = {"fp-retrieval": {"synthetic-hard"}}
    markdown = render_markdown(records, main_suites=SHIPPED, learned_from=learned, generated_at=WHEN)
    board = subsection(markdown, "Leaderboard")
    assert re.search(r"\| mean over public, leaked +\|", board)
    rows = {row[1]: row for row in leaderboard_rows(markdown)}
    assert [rows[name][0] for name in ("mean-prompt", "retrieval")] == ["1", "2"]
    assert rows["mean-prompt"][-1] == "0.092" and rows["retrieval"][-1] == "0.078"  # both over public, leaked
    assert rows["mean-prompt"][5].startswith("0.036")  # shown, not ranked on
    assert rows["retrieval"][5] == "n/a: learned from it"
    assert rows["retrieval"][4].endswith("· ❌ regression")  # the verdict where the rank is read
    assert rows["unfinished"][0] == "—" and rows["unfinished"][-1] == "— (misses leaked)"
    assert ("Ranked by the unweighted mean over public, leaked: the suites every ranked candidate was scored on"
            in board and "left out: synthetic-hard, which retrieval learned from" in board)
    data = json.loads(render_json(records, main_suites=SHIPPED, learned_from=learned, generated_at=WHEN))
    section = data["sections"][0]
    assert section["ranked_suites"] == ["public", "leaked"] and section["left_out"] == {"synthetic-hard": ["retrieval"]}
    retrieval = next(c for c in section["candidates"] if c["candidate"] == "retrieval")
    assert retrieval["not_applicable"] == {"synthetic-hard": "learned from it"}
    assert retrieval["ranked_suites"] == ["public", "leaked"] and retrieval["missing_suites"] == []
    assert [c["rank"] for c in section["candidates"]] == [1, 2, None]


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.sampled_from(SHIPPED),
                          st.floats(0.0, 1.0, allow_nan=False)), min_size=1, max_size=14),
       st.sets(st.sampled_from(["a", "b", "c", "d"])), st.sets(st.sampled_from(SHIPPED)))
@settings(max_examples=60, deadline=None)
def test_every_ranked_mean_is_over_the_same_suites(scored, learners, learned) -> None:
    records = [run(name, suite, mean, run_id=i) for i, (name, suite, mean) in enumerate(scored)]
    view = build_view(records, main_suites=SHIPPED, learned_from={f"fp-{n}": learned for n in learners})
    for section in view.sections:
        ranked = [row for row in section.rows if row.rank is not None]
        assert all(row.ranked_suites == section.ranked_suites for row in section.rows)
        assert not set(section.ranked_suites) & set(section.left_out)
        for row in ranked:
            assert set(section.ranked_suites) <= set(row.runs)
            assert row.mean_over_suites == pytest.approx(
                sum(row.runs[s].mean for s in section.ranked_suites) / len(section.ranked_suites))
        assert [row.rank for row in ranked] == list(range(1, len(ranked) + 1))
        means = [row.mean_over_suites for row in ranked]
        assert means == sorted(means, reverse=True)
        # an unranked row misses a ranked suite (no row is ranked when every suite was learned from by someone)
        assert all(row.missing or not section.ranked_suites for row in section.rows if row.rank is None)


GATED = Comparison("no-difference", "not significant after holm", baseline_candidate="mean-prompt", baseline_mean=0.61,
                   delta=-0.021, delta_low=-0.040, delta_high=-0.002, tolerance=0.001, raw_status="regression",
                   p_regression=0.012, p_adjusted=0.036, correction="holm", minimum_detectable_effect=0.0234,
                   wins=40, ties=2, losses=58, design_effect=2.5, small_sample="small suite: 100 rows (< 200)")


def test_gate_statistics_show_raw_and_adjusted_verdicts_mde_wtl_and_design_effect() -> None:
    markdown = render_markdown([run("cand", "public", 0.59, baseline=GATED)], generated_at=WHEN)
    row = against_rows(markdown)[("cand", "public")]
    assert row["verdict"] == "≈ no significant difference (❌ regression before holm)"
    assert row["p"] == "0.012 → 0.036 (holm)"
    assert row["MDE"] == "0.023" and row["W/T/L"] == "40/2/58" and row["design effect"] == "2.50"
    assert "⚠ public: small suite: 100 rows (< 200)" in markdown
    data = json.loads(render_json([run("cand", "public", 0.59, baseline=GATED)], generated_at=WHEN))
    stored = data["sections"][0]["candidates"][0]["baseline"]["public"]
    assert stored["raw_status"] == "regression" and stored["status"] == "no-difference"
    assert stored["minimum_detectable_effect"] == 0.0234 and stored["wins"] == 40


def test_predicted_leaderboard_score_comes_with_its_loo_error() -> None:
    good = PredictedScore(0.612, 0.598, 0.627, "isotonic", "probes.csv", 12, loo_mae=0.011)
    worse = PredictedScore(0.700, 0.600, 0.800, "linear", "probes.csv", 12, loo_mae=0.050)
    records = [run("a", "public", 0.10, predicted_lb=worse), run("a", "leaked", 0.12, predicted_lb=good),
               run("b", "public", 0.09), run("b", "leaked", 0.10)]
    markdown = render_markdown(records, generated_at=WHEN)
    rows = {row[1]: row for row in leaderboard_rows(markdown)}
    # the most trusted model's estimate (lowest LOO error), with its interval and error
    assert rows["a"][-1] == "0.612 [0.598, 0.627] ±0.011 LOO (from leaked)"
    assert rows["b"][-1] == "—"
    data = json.loads(render_json(records, generated_at=WHEN))
    a = next(c for c in data["sections"][0]["candidates"] if c["candidate"] == "a")
    assert a["predicted_lb"]["estimate"] == 0.612 and a["predicted_lb"]["loo_mae"] == 0.011
    # a model no better than the probes' mean is flagged where its number is shown
    useless = PredictedScore(0.604, 0.565, 0.664, "linear", "probes.csv", 12, loo_mae=0.057, loo_mae_mean_alone=0.051)
    markdown = render_markdown([run("c", "public", 0.1, predicted_lb=useless)], generated_at=WHEN)
    cell = {row[1]: row for row in leaderboard_rows(markdown)}["c"][-1]
    assert cell == "0.604 [0.565, 0.664] ±0.057 LOO ⚠ no better than the probes' mean (±0.051) (from public)"


# -- JSON -------------------------------------------------------------------------------------------------
def test_json_round_trips_and_matches_the_records(two_embedders: list[RunRecord]) -> None:
    records = [*two_embedders, run("beta", "s1", 0.690, n_empty=2, baseline=comparison("regression"), run_id=9),
               run("gamma", "s1", 0.5)]
    data = json.loads(render_json(records, generated_at=WHEN))
    assert data["generated_at"].startswith("2024-04-01T12:00:00")
    by_embedder = {section["embedder"]: section for section in data["sections"]}
    assert set(by_embedder) == {"sentence-t5-base", "minilm"}
    assert by_embedder["minilm"]["comparable_with_kaggle"] is False
    assert by_embedder["sentence-t5-base"]["comparable_with_kaggle"] is True
    st5 = by_embedder["sentence-t5-base"]
    assert st5["embedder_fingerprint"] == "st5-fingerprint" and st5["suites"] == ["s1", "s2"]
    candidates = {c["candidate"]: c for c in st5["candidates"]}
    beta = candidates["beta"]
    scores = beta["scores"]["s1"]
    assert {key: scores[key] for key in ("mean", "ci_low", "ci_high", "n", "n_empty")} == pytest.approx(
        {"mean": 0.690, "ci_low": 0.680, "ci_high": 0.700, "n": 100, "n_empty": 2})
    assert scores["mean"] == 0.690 and scores["run_id"] == 9  # the latest record, exactly
    assert beta["mean_over_suites"] == pytest.approx((0.690 + 0.650) / 2)
    assert beta["incomplete"] is True and candidates["alpha"]["incomplete"] is False
    assert beta["baseline"]["s1"] == comparison("regression").to_dict() and "s2" not in beta["baseline"]
    assert candidates["gamma"]["mean_over_suites"] is None and candidates["gamma"]["missing_suites"] == ["s2"]
    # same ranking as the markdown table: the ranked first, then the unranked (incomplete, missing a suite)
    assert [c["candidate"] for c in st5["candidates"]] == ["alpha", "beta", "gamma"]
    assert [c["rank"] for c in st5["candidates"]] == [1, None, None]
    st5_markdown = next(body for heading, body in sections(render_markdown(records, generated_at=WHEN)).items()
                        if "sentence-t5-base" in heading)
    markdown_order = [row[1].replace("⚠", "").replace("(INCOMPLETE)", "").strip()
                      for row in leaderboard_rows(st5_markdown)]
    assert markdown_order == ["alpha", "beta", "gamma"]
    # each score is its latest record written in the one schema of a run (the one `prh score --json` prints)
    latest = {(r.candidate, r.suite): r for r in latest_runs(records) if r.embedder == "sentence-t5-base"}
    shown = {(c["candidate"], suite): score for c in st5["candidates"] for suite, score in c["scores"].items()}
    assert shown.keys() == latest.keys()
    assert all(score == run_json(latest[key]) for key, score in shown.items())
    assert scores["baseline"]["status"] == "regression" and scores["candidate_fingerprint"] == "fp-beta"
    assert scores["embedder"] == "sentence-t5-base" and scores["complete"] is False


def test_json_never_contains_nan() -> None:
    text = render_json([run("a", "s1", float("nan"))], generated_at=WHEN)
    assert json.loads(text)["sections"][0]["candidates"][0]["scores"]["s1"]["mean"] is None


# -- plot and files ---------------------------------------------------------------------------------------
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plot_is_a_real_png(tmp_path: Path, two_embedders: list[RunRecord]) -> None:
    target = render_plot([*two_embedders, run("gamma", "s1", 0.55, n_empty=4)], tmp_path / "plot.png")
    assert target == tmp_path / "plot.png"
    data = target.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000


def test_plot_with_nothing_to_plot_returns_none(tmp_path: Path) -> None:
    assert render_plot([], tmp_path / "plot.png") is None
    assert not (tmp_path / "plot.png").exists()


def test_write_reports_writes_every_file(tmp_path: Path, two_embedders: list[RunRecord]) -> None:
    directory = tmp_path / "nested" / "reports"
    written = write_reports(two_embedders, directory)
    top = sorted(p.name for p in written if p.parent == directory)
    assert top == ["index.html", "leaderboard.json", "leaderboard.md", "leaderboard.png"]
    # one page per candidate; without stored rows there is no histogram to draw
    assert sorted(p.name for p in written if p.parent == directory / "candidates") == ["alpha.md", "beta.md"]
    assert all(p.stat().st_size > 0 for p in written)
    assert (directory / "leaderboard.png").read_bytes().startswith(PNG_MAGIC)
    assert json.loads((directory / "leaderboard.json").read_text(encoding="utf-8"))["sections"]
    assert "minilm" in (directory / "leaderboard.md").read_text(encoding="utf-8")
    # no temp files left
    assert sorted(p.relative_to(directory) for p in directory.rglob("*") if p.is_file()) == sorted(
        p.relative_to(directory) for p in written)


def test_write_reports_with_empty_history_removes_stale_files(tmp_path: Path, two_embedders) -> None:
    write_reports(two_embedders, tmp_path)
    written = write_reports([], tmp_path)
    assert sorted(p.name for p in written) == ["index.html", "leaderboard.json", "leaderboard.md"]
    assert not (tmp_path / "leaderboard.png").exists()
    assert list((tmp_path / "candidates").iterdir()) == []  # pages of candidates no longer in the history
    assert "No runs yet" in (tmp_path / "leaderboard.md").read_text(encoding="utf-8")


# -- terminal ---------------------------------------------------------------------------------------------
def render_rich(table) -> str:
    console = Console(width=220, record=True, color_system="truecolor", force_terminal=True)
    console.print(table)
    return console.export_text(styles=False)


def test_rich_table_lists_every_latest_row_with_verdicts() -> None:
    records = [run("[bold]odd", "s1", 0.62, baseline=comparison("regression")),
               run("b", "s1", 0.70, baseline=comparison("improvement", delta=0.05), n_empty=1),
               run("b", "s1", 0.12, embedder=MINILM)]
    table = rich_table(records, title="session")
    assert table.row_count == 3
    text = render_rich(table)
    assert "[bold]odd" in text  # names are text, not markup
    assert "❌ regression" in text and "✅ better" in text
    assert "-0.040 [-0.055, -0.025]" in text and "[0.610, 0.630]" in text
    assert "INCOMPLETE" in text and "not Kaggle-comparable" in text
    regression_cell = table.columns[-1]._cells[[c.plain for c in table.columns[0]._cells].index("[bold]odd")]
    assert "red" in str(regression_cell.style)


def test_rich_table_with_no_runs() -> None:
    table = rich_table([])
    assert table.row_count == 0 and "no runs yet" in str(table.caption)


# -- properties -------------------------------------------------------------------------------------------
def test_importing_report_loads_neither_matplotlib_nor_rich() -> None:
    import subprocess
    import sys

    code = "import sys, harness.report; print(sorted(m for m in ('matplotlib', 'rich') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout
    assert out.strip() == "[]"


@settings(max_examples=60, deadline=None, database=None)  # no .hypothesis/ left behind
@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["s1", "s2"]), st.sampled_from([ST5, MINILM]),
                          st.integers(min_value=1, max_value=10_000)), max_size=25, unique_by=lambda t: t[3]))
def test_latest_runs_is_one_newest_record_per_key(specs) -> None:
    records = [run(c, s, run_id / 10_000, embedder=e, run_id=run_id) for c, s, e, run_id in specs]
    kept = latest_runs(records)
    keys = [(r.embedder, r.embedder_fingerprint, r.suite, r.candidate_fingerprint) for r in kept]
    assert len(keys) == len(set(keys)) == len({(e[0], e[1], s, f"fp-{c}") for c, s, e, _ in specs})
    for kept_record in kept:
        rivals = [r.run_id for r in records if (r.embedder, r.embedder_fingerprint, r.suite, r.candidate_fingerprint)
                  == (kept_record.embedder, kept_record.embedder_fingerprint, kept_record.suite,
                      kept_record.candidate_fingerprint)]
        assert kept_record.run_id == max(rivals)
    # rendering the whole history equals rendering the latest records: the report applies latest_runs itself
    assert render_json(records, generated_at=WHEN) == render_json(kept, generated_at=WHEN)
