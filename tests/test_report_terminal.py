"""The terminal table fits 80 columns without cutting anything, says "not Kaggle-comparable" once, and shows
the gate's statistics compactly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from report_records import SHIPPED, compared, record
from rich.console import Console

from harness.report import build_view, output_width, print_ranking, rich_table, summary_notes, wrap_note
from harness.verdict import Comparison, PredictedScore

ST5 = ("sentence-t5-base", "st5-fingerprint")


def render(table, width: int) -> str:
    console = Console(width=width, record=True, force_terminal=True, color_system="truecolor")
    console.print(table)
    return console.export_text(styles=False)


def busy_history():
    gate = Comparison("no-difference", "not significant after holm", baseline_candidate="mean-prompt",
                      baseline_mean=0.61, delta=-0.0213, delta_low=-0.0401, delta_high=-0.0021, raw_status="regression",
                      p_regression=0.012, p_adjusted=0.036, correction="holm", minimum_detectable_effect=0.0234,
                      wins=40, ties=2, losses=58, small_sample="small suite: 64 rows (< 200)")
    records = [record("a-candidate-with-a-very-long-descriptive-name", suite, 0.3 + i / 10, run_id=i + 1,
                      baseline=gate if i == 0 else compared())
               for i, suite in enumerate(SHIPPED)]
    records += [record("mean-prompt", suite, 0.5, run_id=10 + i, n=1300, n_empty=3 if i == 2 else 0)
                for i, suite in enumerate(SHIPPED)]
    records.append(record("mean-prompt", "data/some/deeply/nested/folder/with-a-long-file-name.csv", 0.1, run_id=20,
                          suite_kind="file", signed=True, n_resamples=2000, ci_method="percentile", seed=7))
    return records


@pytest.mark.parametrize("width", [80, 60])
def test_the_table_fits_the_terminal_and_cuts_nothing(width: int) -> None:
    text = render(rich_table(busy_history(), title="this run"), width)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    assert "…" not in text  # folded, never truncated
    columns = column_texts(text)
    assert "a-candidate-with-a-very-long-descriptive-name" in columns[0]
    assert "signed·2,000resamples·percentile·seed7" in columns[0]
    assert "data/some/deeply/nested/folder/with-a-long-file-name.csv" in columns[1]
    assert "0.300[0.290,0.310]" in columns[2] and "⚠3empty(INCOMPLETE)" in columns[2]
    assert "-0.021[-0.040,-0.002]" in columns[4]
    assert "alone:❌regression(p0.012,holm0.036)MDE0.023·W/T/L40/2/58⚠smalln" in columns[5]


def column_texts(text: str) -> list[str]:
    """Each column of a rendered rich table, its body lines joined top to bottom without spaces: a wrapped
    cell reads as one unbroken string."""
    body = text.split("┩", 1)[1]
    columns: list[list[str]] = []
    for line in body.splitlines():
        if not line.startswith("│"):
            continue
        parts = line.strip().strip("│").split("│")
        columns += [[] for _ in range(len(parts) - len(columns))]
        for column, part in zip(columns, parts):
            column.append("".join(part.split()))
    return ["".join(column) for column in columns]


def test_the_not_comparable_note_is_said_once_or_not_at_all() -> None:
    records = busy_history()
    assert render(rich_table(records), 80).count("not Kaggle-comparable") == 1
    assert "Kaggle" not in render(rich_table(records, note_not_comparable=False), 80)
    # a Kaggle-comparable embedder gets no note; with two embedders the title names the blind one once
    st5 = [record("mean-prompt", "public", 0.6, run_id=30, embedder=ST5)]
    assert "Kaggle" not in render(rich_table(st5), 80)
    both = render(rich_table([*records, *st5]), 120)
    assert both.count("Kaggle") == 1 and "minilm not Kaggle-comparable" in "".join(both.split("\n"))
    assert "embedder" in both  # a column tells the two embedders apart


def test_the_gate_cell_says_what_the_suite_alone_said() -> None:
    gate = column_texts(render(rich_table(busy_history()), 200))[5]
    assert gate.startswith("≈nodiff.alone:❌regression(p0.012,holm0.036)MDE0.023·W/T/L40/2/58⚠smalln≈nodiff.")


def test_summary_notes_are_said_once() -> None:
    notes = summary_notes(busy_history())
    assert len(notes) == 3
    assert notes[0].startswith("MDE: the smallest drop")
    assert notes[1].startswith("⚠ small n: public:") and "Bowyer" in notes[1]
    assert notes[2] == ("1 per-suite regression(s) not significant after the holm correction across the run's "
                        "suites: a-candidate-with-a-very-long-descriptive-name on public.")
    assert summary_notes([record("x", "public", 0.5, run_id=1)]) == []


def test_a_predicted_score_shows_under_its_score_and_says_when_it_carries_no_information() -> None:
    """The shipped MiniLM models predict their probes no better than the probes' mean: the terminal must
    not show such an estimate as if it meant something."""
    useful = PredictedScore(0.612, 0.598, 0.627, "isotonic", "probes.csv", 12, loo_mae=0.011, loo_mae_mean_alone=0.051)
    useless = PredictedScore(0.604, 0.565, 0.664, "linear", "probes.csv", 12, loo_mae=0.057, loo_mae_mean_alone=0.051)
    records = [record("a", "public", 0.10, run_id=1, predicted_lb=useful),
               record("b", "public", 0.09, run_id=2, predicted_lb=useless)]
    score_column = column_texts(render(rich_table(records), 80))[2]
    assert "LB≈0.612±0.011" in score_column and "LB≈0.604±0.057⚠" in score_column
    assert "LB≈0.612±0.011⚠" not in score_column
    notes = summary_notes(records)
    assert any(n.startswith("LB ≈: the leaderboard model's predicted public score") and "no better than their mean"
               in n for n in notes)
    assert not any("no better" in n for n in summary_notes(records[:1]))
    assert useful.informative is True and useless.informative is False
    assert PredictedScore(0.6, 0.5, 0.7, "linear", "probes.csv", 5, loo_mae=0.02).informative is None
    assert PredictedScore.from_dict(useless.to_dict()) == useless


# -- issue 16: messages, widths and the ranking in the terminal ---------------------------------------------
def test_markup_in_a_candidate_name_prints_literally_in_the_title() -> None:
    name = "[bold red]evil[/bold red] [link=http://x]y[/link]"
    text = render(rich_table([record(name, "public", 0.5, run_id=1)], title=f"{name} on public"), 200)
    assert f"{name} on public" in text  # as written: neither rendered nor swallowed


def test_the_mde_legend_appears_only_where_an_mde_is_shown() -> None:
    no_mde = Comparison("no-difference", "tied everywhere", baseline_candidate="b", baseline_mean=0.5, delta=0.0,
                        delta_low=0.0, delta_high=0.0, wins=0, ties=10, losses=0)
    notes = " ".join(summary_notes([record("same", "public", 0.5, run_id=1, baseline=no_mde)]))
    assert "MDE" not in notes and "W/T/L" in notes
    with_mde = compared(minimum_detectable_effect=0.02)
    assert "MDE:" in " ".join(summary_notes([record("c", "public", 0.5, run_id=1, baseline=with_mde)]))
    assert summary_notes([record("c", "public", 0.5, run_id=1)]) == []  # nothing compared: no legend at all


def test_columns_sets_the_width_also_when_piped() -> None:
    assert output_width(False, environ={"COLUMNS": "72"}) == 72
    assert output_width(True, 132, environ={"COLUMNS": "72"}) == 72
    assert output_width(False, environ={}) == 100 and output_width(False, environ={}, piped=80) == 80
    assert output_width(True, 132, environ={"COLUMNS": "wide"}) == 132


@given(st.lists(st.text(alphabet="abcdefghij-/.", min_size=1, max_size=30), min_size=1, max_size=40),
       st.integers(20, 120))
def test_notes_break_between_words_never_inside_one(words: list[str], width: int) -> None:
    wrapped = wrap_note(" ".join(words), width)
    assert [w for line in wrapped.splitlines() for w in line.split()] == words
    assert all(len(line) <= width or " " not in line for line in wrapped.splitlines())


def issue_16_view():
    """Issue 16's repro: retrieval-knn+mean learned from synthetic-hard and regresses on leaked."""
    regression = compared(delta=-0.045)
    regression = Comparison(**{**regression.to_dict(), "status": "regression"})
    records = [record("mean-prompt", suite, mean, run_id=i, baseline=compared(0.0))
               for i, (suite, mean) in enumerate(zip(SHIPPED, (0.093, 0.091, 0.036)))]
    records += [record("retrieval-knn+mean", "public", 0.111, run_id=5),
                record("retrieval-knn+mean", "leaked", 0.045, run_id=6, baseline=regression),
                record("half-done", "public", 0.5, run_id=7)]
    return build_view(records, main_suites=SHIPPED, learned_from={"fp-retrieval-knn+mean": {"synthetic-hard"}})


@pytest.mark.parametrize("width", [80, 120])
def test_the_ranking_prints_its_top_rows_verdicts_and_rule(width: int) -> None:
    console = Console(width=width, record=True)
    print_ranking(console, issue_16_view())
    text = console.export_text(styles=False)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    first = next(i for i, line in enumerate(lines) if "mean-prompt" in line)
    second = next(i for i, line in enumerate(lines) if "retrieval-knn+" in line)  # the name may fold
    assert first < second and lines[first].lstrip("│ ").startswith("1") and "0.092" in lines[first]
    assert "0.078" in lines[second] and "❌ regression" in "\n".join(lines[second:second + 3])
    flat = " ".join(text.split())
    assert "Ranked by the unweighted mean over public, leaked" in flat
    assert "left out: synthetic-hard, which retrieval-knn+mean learned from" in flat
    assert "Not ranked: half-done (misses leaked)." in flat
    assert "(not ranked)" in flat  # the left-out suite: its scores are shown, and said not to count


def test_prh_leaderboard_prints_the_ranking_then_the_files(tmp_path, capsys, monkeypatch) -> None:
    from harness.cli import main
    from harness.store import Store

    monkeypatch.setenv("COLUMNS", "80")
    (tmp_path / "suites.toml").write_text("".join(f'[suites.{s}]\npath = "{s}.csv"\n' for s in SHIPPED))
    with Store(tmp_path / "store.sqlite") as store:
        for i, suite in enumerate(SHIPPED):
            store.record_run(record("mean-prompt", suite, 0.1 + i / 100, run_id=None))
            store.record_run(record("other", suite, 0.2, run_id=None, baseline=compared()))
    assert main(["leaderboard", "--store", str(tmp_path / "store.sqlite"), "--suites-file",
                 str(tmp_path / "suites.toml"), "--report-dir", str(tmp_path / "reports")]) == 0
    out = capsys.readouterr().out
    ranking, files = out.split("reports written:")
    assert max(len(line) for line in ranking.splitlines()) <= 80
    assert ranking.index("other") < ranking.index("mean-prompt") and "≈ no diff." in ranking
    assert str(tmp_path / "reports" / "leaderboard.md") in files
