"""Reports from the run history: markdown, JSON, PNG, one self-contained HTML file, per-candidate pages,
and rich tables for the terminal.

One job: format `RunRecord`s (and the rows stored with them). Nothing here computes a score, a CI or a
verdict; every number shown was computed upstream (harness.evaluation, harness.stats, harness.baselines)
and travels in the record. What is shown (ranking, sections, which run, which rows) is decided once, in
`harness.report.model`; each output module only writes it down:

    model     the view model: sections, ranked rows, ad-hoc suites, candidate pages
    markdown  leaderboard.md            jsondata  leaderboard.json     plots  leaderboard.png, histograms
    htmlpage  index.html                pages     candidates/<name>.md terminal  rich tables, `prh show`
    writer    write_reports: all of the above, atomically and incrementally
    (`prh history list/prune` and `prh show` are harness/commands/history.py)

Importing this package loads neither matplotlib nor rich.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from pathlib import Path

from harness.report import htmlpage, jsondata, markdown, plots
from harness.report.model import (
    DEFAULT_TITLE,
    LEADERBOARD_NOISE,
    CandidatePage,
    ReportView,
    build_page,
    build_view,
    latest_runs,
    safe_file_stem,
    settings_label,
)
from harness.report.terminal import (
    output_width,
    print_page,
    print_ranking,
    rich_table,
    summary_notes,
    wrap_note,
)
from harness.report.writer import (
    HTML_NAME,
    JSON_NAME,
    MARKDOWN_NAME,
    PAGES_DIR,
    PLOT_NAME,
    build_pages,
    write_reports,
)
from harness.store import RunRecord

__all__ = [
    "DEFAULT_TITLE", "HTML_NAME", "JSON_NAME", "LEADERBOARD_NOISE", "MARKDOWN_NAME", "PAGES_DIR", "PLOT_NAME",
    "CandidatePage", "ReportView", "build_page", "build_pages", "build_view", "latest_runs", "output_width",
    "print_page", "print_ranking", "wrap_note",
    "render_html", "render_json", "render_markdown", "render_plot", "rich_table", "safe_file_stem",
    "settings_label", "summary_notes", "write_reports",
]


def render_markdown(records: Sequence[RunRecord], *, title: str = DEFAULT_TITLE, generated_at: datetime | None = None,
                    main_suites: Sequence[str] | None = None,
                    learned_from: Mapping[str, Collection[str]] | None = None) -> str:
    """leaderboard.md of `records` (the whole history may be passed: only the latest runs are shown)."""
    return markdown.render(build_view(records, main_suites=main_suites, learned_from=learned_from, title=title,
                                      generated_at=generated_at))


def render_json(records: Sequence[RunRecord], *, generated_at: datetime | None = None,
                main_suites: Sequence[str] | None = None,
                learned_from: Mapping[str, Collection[str]] | None = None) -> str:
    """leaderboard.json: the markdown's content as data."""
    return jsondata.render(build_view(records, main_suites=main_suites, learned_from=learned_from,
                                      generated_at=generated_at))


def render_plot(records: Sequence[RunRecord], path: str | Path, *, main_suites: Sequence[str] | None = None,
                learned_from: Mapping[str, Collection[str]] | None = None) -> Path | None:
    """leaderboard.png (None, writing nothing, when there is nothing to plot)."""
    return plots.render_plot(build_view(records, main_suites=main_suites, learned_from=learned_from), path)


def render_html(records: Sequence[RunRecord], *, rows=None, title: str = DEFAULT_TITLE,
                generated_at: datetime | None = None, main_suites: Sequence[str] | None = None,
                learned_from: Mapping[str, Collection[str]] | None = None,
                histograms: Mapping[str, bytes] | None = None) -> str:
    """index.html as text (drill-down rows from `rows`: run id → stored rows, or `Store.run_rows`)."""
    view = build_view(records, main_suites=main_suites, learned_from=learned_from, title=title,
                      generated_at=generated_at)
    return htmlpage.render(view, build_pages(records, view, rows), histograms)
