"""Writing every report file from the history in one pass: `reports/leaderboard.{md,json,png}`,
`reports/index.html` and `reports/candidates/<candidate>.{md,png}`.

Every file is written atomically (a reader or a concurrent pytest-xdist worker never sees half a report).
It runs at the end of every pytest session, so it stays cheap: the view is built once, the rows of all
pages are read in one query, and a candidate page (and its histogram, the slow part) is redrawn only when
the runs it shows changed. Files of candidates no longer in the history are removed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from pathlib import Path

from harness.files import write_text_atomic
from harness.report import htmlpage, jsondata, markdown, pages
from harness.report.model import (
    DEFAULT_TITLE,
    PAGE_ROWS,
    CandidatePage,
    ReportView,
    RowSource,
    build_page,
    build_view,
    candidate_names,
    page_runs,
)
from harness.report.plots import render_histogram, render_plot
from harness.store import RunRecord, SubmissionRecord

MARKDOWN_NAME = "leaderboard.md"
JSON_NAME = "leaderboard.json"
PLOT_NAME = "leaderboard.png"
HTML_NAME = "index.html"
PAGES_DIR = "candidates"


def build_pages(records: Sequence[RunRecord], view: ReportView, rows: RowSource | None, *,
                limit: int = PAGE_ROWS) -> list[CandidatePage]:
    """One page per candidate name of the view, their rows fetched in one call."""
    by_name: dict[str, list[RunRecord]] = {}
    for record in records:
        by_name.setdefault(record.candidate, []).append(record)
    names = candidate_names(view)
    wanted = [run.run_id for name in names for runs in page_runs(by_name.get(name, []), name).values()
              for run in runs if run.run_id is not None]
    fetched: Mapping | None = None
    if rows is not None:
        fetched = rows if isinstance(rows, Mapping) else rows(wanted) if wanted else {}
    order = view.main_suites or ()
    return [build_page(by_name.get(name, []), name, fetched, limit=limit, suite_order=order) for name in names]


def write_reports(records: Sequence[RunRecord], directory: str | Path, *, title: str = DEFAULT_TITLE,
                  generated_at: datetime | None = None, main_suites: Sequence[str] | None = None,
                  learned_from: Mapping[str, Collection[str]] | None = None,
                  rows: RowSource | None = None, submissions: Sequence[SubmissionRecord] = ()) -> list[Path]:
    """Write every report under `directory`; returns the paths written or kept current.

    `main_suites`: the suites file's suites, which the main ranking is over (None: every named suite).
    `learned_from`: candidate fingerprint → suites it learned from. `rows`: run id → stored rows (a
    mapping, or a function of run ids such as `Store.run_rows`); without it the pages show no rows.
    With nothing to plot, an older leaderboard.png is removed rather than left contradicting the markdown.
    `submissions`: the files `prh predict` wrote, listed in index.html.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    view = build_view(records, main_suites=main_suites, learned_from=learned_from, title=title,
                      generated_at=generated_at)
    written = [write_text_atomic(folder / MARKDOWN_NAME, markdown.render(view)),
               write_text_atomic(folder / JSON_NAME, jsondata.render(view))]
    plot = render_plot(view, folder / PLOT_NAME)
    if plot is not None:
        written.append(plot)
    else:
        (folder / PLOT_NAME).unlink(missing_ok=True)
    page_list = build_pages(records, view, rows)
    page_files, histograms = _write_pages(page_list, folder / PAGES_DIR)
    written.append(write_text_atomic(folder / HTML_NAME, htmlpage.render(view, page_list, histograms, submissions)))
    return written + page_files


def _write_pages(page_list: Sequence[CandidatePage], directory: Path) -> tuple[list[Path], dict[str, bytes]]:
    """Write (or keep, when unchanged) each page and its histogram; remove pages of vanished candidates.
    Returns the page files and the histograms' bytes by page stem (for the HTML's data: URIs)."""
    directory.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    histograms: dict[str, bytes] = {}
    for page in page_list:
        page_path, plot_path = directory / f"{page.stem}.md", directory / f"{page.stem}.png"
        has_rows = any(rows for part in page.parts for rows in part.rows_by_suite.values())
        current = (page_path.is_file() and plot_path.is_file() == has_rows
                   and pages.stored_key(page_path.read_text(encoding="utf-8")) == page.key)
        if not current:
            plot = render_histogram(page, plot_path) if has_rows else None
            if plot is None:
                plot_path.unlink(missing_ok=True)
            write_text_atomic(page_path, pages.render(page, histogram=plot_path.name if plot else None))
        files.append(page_path)
        if plot_path.is_file():
            files.append(plot_path)
            histograms[page.stem] = plot_path.read_bytes()
    keep = {path.name for path in files}
    for stale in directory.iterdir():
        if stale.suffix in (".md", ".png") and stale.name not in keep and stale.is_file():
            stale.unlink()
    return files, histograms
