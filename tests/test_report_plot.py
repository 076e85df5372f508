"""The PNGs: the leaderboard's y axis starts at 0 and its suite labels stay readable (never overlapping)
with 10 suites; the candidate histogram has one panel per suite with rows."""

from __future__ import annotations

from report_records import compared, record, rows

from harness.report import build_page, build_view
from harness.report.plots import histogram_figure, leaderboard_figure, suite_label

TEN_SUITES = [f"suite-number-{i}-{'with-a-rather-long-name' if i % 2 else 'short'}" for i in range(10)]


def drawn(figure):
    figure.canvas.draw()
    return figure.canvas.get_renderer()


def overlapping(boxes) -> list[tuple[int, int]]:
    return [(i, j) for i in range(len(boxes)) for j in range(i + 1, len(boxes)) if boxes[i].overlaps(boxes[j])]


def test_ten_suites_give_readable_labels_and_an_axis_from_zero() -> None:
    records = [record(f"candidate-{c}", suite, 0.05 + 0.01 * c + 0.002 * i, run_id=100 * c + i)
               for c in range(4) for i, suite in enumerate(TEN_SUITES)]
    records.append(record("candidate-0", "data/adhoc/file.csv", 0.3, run_id=999, suite_kind="file"))
    figure = leaderboard_figure(build_view(records, main_suites=TEN_SUITES))
    renderer = drawn(figure)
    ax = figure.axes[0]
    low, high = ax.get_ylim()
    assert low == 0.0 and high > 0.31  # from 0, and the highest interval fits
    labels = [label for label in ax.get_xticklabels() if label.get_text()]
    assert len(labels) == 11 and all(label.get_rotation() == 0 for label in labels)
    boxes = [label.get_window_extent(renderer) for label in labels]
    assert overlapping(boxes) == []
    figure_box = figure.bbox
    assert all(box.x0 >= figure_box.x0 and box.x1 <= figure_box.x1 for box in boxes)
    first = labels[0].get_text().split("\n")
    assert "".join(first[:-1]) == "suite-number-0-short" and first[-1] == "n=10"
    assert all(len(line) <= 14 for line in first)


def test_signed_scores_below_zero_are_not_cut() -> None:
    records = [record("c", "public", -0.05, run_id=1, signed=True), record("c", "leaked", 0.2, run_id=2)]
    ax = leaderboard_figure(build_view(records)).axes[0]
    assert ax.get_ylim()[0] <= -0.06


def test_suite_labels_wrap_and_shorten_paths() -> None:
    assert suite_label("public", 136) == "public\nn=136"
    long = suite_label("data/" + "x" * 80 + "/final-file.csv")
    assert long.endswith("final-file.csv") and long.startswith("…") and long.count("\n") == 2
    assert all(len(line) <= 14 for line in long.splitlines())


def test_histogram_has_one_panel_per_suite_with_rows_and_the_baseline_over_it() -> None:
    stored = {1: rows("public", [0.1, 0.2, 0.9], [0.3, 0.3, 0.3]), 2: rows("leaked", [0.5])}
    records = [record("c", "public", 0.4, run_id=1, baseline=compared()), record("c", "leaked", 0.5, run_id=2),
               record("c", "synthetic-hard", 0.5, run_id=3)]  # no stored rows: no panel
    figure = histogram_figure(build_page(records, "c", stored, suite_order=["public", "leaked"]))
    visible = [ax for ax in figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["public (n=3)", "leaked (n=1)"]
    assert visible[0].get_xlim() == (0.0, 1.0)
    assert [text.get_text() for text in visible[0].get_legend().get_texts()] == ["c (0.400)", "baseline (0.300)"]
    assert [text.get_text() for text in visible[1].get_legend().get_texts()] == ["c (0.500)"]
    assert histogram_figure(build_page(records[2:], "c", {})) is None
