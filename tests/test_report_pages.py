"""Candidate pages: which rows they show (worst, lost most, gained most), their files and `prh show`'s
terminal rendering, from hand-built runs and rows."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from report_records import compared, record, rows
from rich.console import Console

from harness.report import build_page, print_page, safe_file_stem, write_reports
from harness.report.pages import render

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def page_fixture(limit: int = 3):
    """Two suites; public has baseline scores, leaked does not."""
    public_scores = [0.9, 0.1, 0.5, 0.05, 0.7]
    public_base = [0.5, 0.4, 0.5 + 1e-8, 0.3, 0.2]  # deltas: +0.4, -0.3, ~0 (a tie), -0.25, +0.5
    stored = {1: rows("public", public_scores, public_base), 2: rows("leaked", [0.02, 0.6])}
    records = [record("cand", "public", 0.45, run_id=1, baseline=compared()),
               record("cand", "leaked", 0.31, run_id=2),
               record("other", "public", 0.5, run_id=3)]
    return build_page(records, "cand", stored, limit=limit, suite_order=["public", "leaked"])


def test_worst_lost_and_gained_rows_are_chosen_and_ordered() -> None:
    page = page_fixture()
    (part,) = page.parts
    assert [r.suite for r in part.runs] == ["public", "leaked"]
    # worst: lowest scores over both suites
    assert [(p.suite, p.row.id) for p in part.worst] == [("leaked", "leaked-0"), ("public", "public-3"),
                                                          ("public", "public-1")]
    # lost / gained: only rows with a baseline score, a tie (|Δ| <= 1e-6) in neither list
    assert [p.row.id for p in part.lost] == ["public-1", "public-3"]
    assert [p.row.id for p in part.gained] == ["public-4", "public-0"]
    assert [round(p.delta, 6) for p in part.gained] == [0.5, 0.4]


def test_the_newest_unsigned_run_is_shown() -> None:
    stored = {1: rows("public", [0.1]), 2: rows("public", [0.2]), 3: rows("public", [0.3])}
    records = [record("cand", "public", 0.1, run_id=1), record("cand", "public", 0.2, run_id=2),
               record("cand", "public", 0.3, run_id=3, signed=True)]  # newest, but signed: another metric
    (part,) = build_page(records, "cand", stored).parts
    assert [r.run_id for r in part.runs] == [2] and part.worst[0].row.score == 0.2


def test_page_markdown_shows_truth_and_prediction_side_by_side_truncated_and_escaped() -> None:
    long_truth = "Rewrite this | as a <script>alert(1)</script> poem " + "very " * 60
    stored = {1: rows("public", [0.2, 0.8], [0.5, 0.5], truth=long_truth + "{i}", prediction="Poem {i}")}
    page = build_page([record("cand", "public", 0.5, run_id=1, baseline=compared())], "cand", stored)
    text = render(page, histogram="cand.png")
    assert text.startswith(f"<!-- prh-page {page.key} -->")
    assert "![Per-row score histograms of cand over the baseline](cand.png)" in text
    worst = text.split("### Worst")[1].split("###")[0]
    header = next(line for line in worst.splitlines() if line.startswith("| suite"))
    assert [c.strip() for c in header.strip("|").split("|")] == ["suite", "id", "group", "score", "Δ", "true prompt",
                                                                  "prediction"]
    first = next(line for line in worst.splitlines() if "public-0" in line)
    cells = [c.strip() for c in re.split(r"(?<!\\)\|", first.strip().strip("|"))]
    assert cells[:5] == ["public", "public-0", "—", "0.200", "-0.300"]
    assert cells[5].endswith("…") and len(cells[5].replace("\\|", "|").replace("&lt;", "<")) == 160
    assert "\\|" in cells[5] and "<script>" not in text and "&lt;script>" in cells[5]
    assert cells[6] == "Poem 0"


def test_a_run_without_rows_or_baseline_says_so() -> None:
    page = build_page([record("cand", "public", 0.5, run_id=1)], "cand", {})
    text = render(page)
    assert "No stored rows for public" in text
    assert text.count("No per-row baseline scores") == 2


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(min_size=1, max_size=120), st.text(min_size=1, max_size=120))
def test_safe_file_stems_stay_in_their_folder_and_never_collide(first: str, second: str) -> None:
    for name in (first, second):
        stem = safe_file_stem(name)
        assert re.fullmatch(r"[A-Za-z0-9._-]{1,89}", stem) and not stem.startswith(".")
        assert Path("reports/candidates", f"{stem}.md").parent == Path("reports/candidates")
    if first != second:
        assert safe_file_stem(first) != safe_file_stem(second)


def test_safe_file_stem_keeps_plain_names() -> None:
    assert safe_file_stem("mean-prompt") == "mean-prompt"
    assert safe_file_stem("mean:banana").startswith("mean_banana-")
    assert safe_file_stem("../../etc/passwd") != safe_file_stem("etc/passwd")


def test_pages_and_histograms_are_written_and_redrawn_only_when_their_runs_change(tmp_path: Path) -> None:
    stored = {1: rows("public", [0.2, 0.8, 0.4], [0.5, 0.5, 0.5]), 2: rows("public", [0.3, 0.3, 0.3])}
    records = [record("cand", "public", 0.47, run_id=1, baseline=compared()),
               record("mean:x/y", "public", 0.3, run_id=2)]
    write_reports(records, tmp_path, rows=stored)
    pages = tmp_path / "candidates"
    stem = safe_file_stem("mean:x/y")
    assert sorted(p.name for p in pages.iterdir()) == sorted(["cand.md", "cand.png", f"{stem}.md", f"{stem}.png"])
    assert (pages / "cand.png").read_bytes().startswith(PNG_MAGIC)
    assert "(cand.png)" in (pages / "cand.md").read_text(encoding="utf-8")
    before = {p.name: p.stat().st_mtime_ns for p in pages.iterdir()}
    # a new run of one candidate redraws its page only
    stored[3] = rows("public", [0.9, 0.9, 0.9])
    write_reports([*records, record("mean:x/y", "public", 0.9, run_id=3)], tmp_path, rows=stored)
    after = {p.name: p.stat().st_mtime_ns for p in pages.iterdir()}
    assert after["cand.md"] == before["cand.md"] and after["cand.png"] == before["cand.png"]
    assert after[f"{stem}.md"] != before[f"{stem}.md"]
    assert "0.900" in (pages / f"{stem}.md").read_text(encoding="utf-8")


# -- prh show in the terminal ------------------------------------------------------------------------------
def show_text(page, width: int, limit: int | None = None) -> str:
    console = Console(width=width, record=True, force_terminal=True, color_system="truecolor")
    print_page(console, page, limit=limit)
    return console.export_text(styles=False)


def test_show_fits_80_columns_and_prints_every_table() -> None:
    long_prediction = "Transform this passage into an extraordinarily elaborate sonnet " * 3
    stored = {1: rows("synthetic-hard", [0.1, 0.7, 0.3, 0.6], [0.4, 0.2, 0.3, 0.95], groups=True,
                      prediction=long_prediction + "{i}")}
    page = build_page([record("a-rather-long-candidate-name", "synthetic-hard", 0.42, run_id=1,
                              baseline=compared(minimum_detectable_effect=0.02, wins=2, ties=1, losses=1))],
                      "a-rather-long-candidate-name", stored)
    text = show_text(page, 80)
    assert max(len(line) for line in text.splitlines()) <= 80
    for heading in ("Worst 15 rows", "15 rows that lost most", "15 rows that gained most"):
        assert heading in text
    worst = cells_by_row(text.split("Worst 15 rows")[1].split("15 rows that lost most")[0])
    # every cell is whole, wrapped within its column: nothing is cut by the terminal
    assert [row[0] for row in worst] == [f"synthetic-hard synthetic-hard-{i} g{i % 3}" for i in (0, 2, 3, 1)]
    assert [row[3] for row in worst] == [f"Rewrite this as a {i}-line poem." for i in (0, 2, 3, 1)]
    assert all(row[4].startswith("Transform this passage into an extraordinarily") for row in worst)
    lost = cells_by_row(text.split("15 rows that lost most")[1].split("15 rows that gained most")[0])
    assert [(row[1], row[2]) for row in lost] == [("0.600", "-0.350"), ("0.100", "-0.300")]
    gained = cells_by_row(text.split("15 rows that gained most")[1])
    assert [(row[1], row[2]) for row in gained] == [("0.700", "+0.500")]


def cells_by_row(table: str) -> list[list[str]]:
    """The body cells of a rich table rendered with lines between rows: each cell's wrapped lines joined."""
    body = table.split("┩", 1)[1]
    result, current = [], None
    for line in body.splitlines():
        if line.startswith("│"):
            parts = [part.strip() for part in line.strip().strip("│").split("│")]
            if current is None:
                current = [[] for _ in parts]
            for cell, part in zip(current, parts):
                if part:
                    cell.append(part)
        elif line.startswith(("├", "└")) and current is not None:
            result.append([" ".join(cell) for cell in current])
            current = None
    return result


def test_show_limit_caps_each_table() -> None:
    stored = {1: rows("public", [i / 40 for i in range(30)], [0.5] * 30)}
    page = build_page([record("c", "public", 0.4, run_id=1, baseline=compared())], "c", stored, limit=4)
    text = show_text(page, 120, limit=4)
    assert "Worst 4 rows" in text
    worst = text.split("Worst 4 rows")[1].split("4 rows that lost most")[0]
    assert sorted(set(re.findall(r"public-\d+", worst))) == ["public-0", "public-1", "public-2", "public-3"]
