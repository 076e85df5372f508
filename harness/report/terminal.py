"""The terminal: the run's table (pytest summary, `prh score`), its notes, and `prh show`'s drill-down.

Fits 80 columns: few columns, each allowed to wrap (rich folds a cell rather than cutting it with "…"),
the embedder named once in the title rather than on every row. Cells are `rich.text.Text`, never markup
strings, so a candidate named "[bold]x" or a prompt with brackets prints literally. rich is imported
inside the functions only.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from harness.report import text as t
from harness.report.model import (
    MISSING,
    CandidatePage,
    PageRow,
    ReportView,
    Section,
    build_view,
    settings_label,
    short,
)
from harness.store import RunRecord

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

#: characters of a prompt shown by `prh show` (wrapped within its column)
SHOW_PROMPT_CHARS = 120
#: ranked rows `prh leaderboard` prints (the files hold them all)
TOP_ROWS = 10


def output_width(is_terminal: bool, terminal_width: int | None = None, *, piped: int = 100,
                 environ: Mapping[str, str] | None = None) -> int | None:
    """The width to render tables and notes at: $COLUMNS when set (also when piped: the user asked for it),
    else the terminal's own width (None: rich measures it), else `piped` columns (CI logs, files)."""
    columns = (os.environ if environ is None else environ).get("COLUMNS", "").strip()
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    return terminal_width if is_terminal else piped


def wrap_note(note: str, width: int | None) -> str:
    """A note broken between words at `width` (never inside a word: a long name or path overflows instead)."""
    if not width:
        return note
    return textwrap.fill(note, width=width, break_long_words=False, break_on_hyphens=False)


def rich_table(records: Sequence[RunRecord], *, title: str = "Prompt-recovery results",
               note_not_comparable: bool = True) -> Table:
    """One row per latest (candidate, suite, embedder build, settings): SCS with its CI, Δ against the
    baseline with its CI, and the gate (verdict, MDE, win/tie/loss, and what the suite alone said when the
    multiple-suite correction changed it). With `note_not_comparable`, a non-Kaggle embedder is said so
    once, in the title; pass False where the caller prints the embedder's warning itself."""
    from rich.table import Table
    from rich.text import Text

    # suites in the order the records name them (the order they were scored in)
    view = build_view(records, main_suites=list(dict.fromkeys(r.suite for r in records if r.suite_kind == "named")))
    several = len(view.sections) > 1
    heading = title
    if len(view.sections) == 1:
        heading += f" · {view.sections[0].embedder} ({short(view.sections[0].fingerprint)})"
    blind = list(dict.fromkeys(s.embedder for s in view.sections if not s.comparable_with_kaggle))
    if note_not_comparable and blind:
        heading += f" · {', '.join(blind)} not Kaggle-comparable" if several else " · not Kaggle-comparable"
    # a Text title: a candidate name such as "[bold]x" (in `prh score`'s title) prints as written, never as markup
    table = Table(title=Text(heading), show_lines=False, pad_edge=False, collapse_padding=True)
    columns = [("candidate", "left"), ("suite", "left")] + ([("embedder", "left")] if several else [])
    columns += [(f"SCS [{view.confidence} CI]", "right"), ("n", "right"), ("Δ vs baseline [CI]", "right"),
                ("gate", "left")]
    for header, justify in columns:
        table.add_column(header, justify=justify, overflow="fold")
    if not view.sections:
        table.caption = "no runs yet"
        return table
    for section in view.sections:
        embedder = Text(f"{section.embedder} ({short(section.fingerprint, 6)})")
        runs = [(row.label, run) for row in section.rows for run in row.runs.values()]
        runs += [(run.candidate + (f" · {s}" if (s := settings_label(run)) else ""), run) for run in section.side_runs]
        for label, run in runs:
            c = run.baseline
            score = Text(t.fmt_interval(run.mean, run.ci_low, run.ci_high))
            if run.n_empty > 0:
                score.append(f"\n⚠ {run.n_empty} empty (INCOMPLETE)", style="bold red")
            if run.predicted_lb is not None:
                lb = run.predicted_lb
                score.append(f"\nLB ≈ {t.fmt(lb.estimate)} ±{t.fmt(lb.loo_mae)}", style="dim")
                if t.predicted_flags(lb):
                    score.append(" ⚠", style="yellow")
            if run.st5_estimate is not None:
                score.append(f"\n{t.st5_estimate(run.st5_estimate)}", style="dim")
            cells = [Text(label), Text(run.suite)] + ([embedder.copy()] if several else [])
            cells += [score, Text(str(run.n)),
                      Text(t.fmt_interval(c.delta, c.delta_low, c.delta_high, signed=True) if c else MISSING),
                      gate_cell(run)]
            table.add_row(*cells)
    return table


def gate_cell(run: RunRecord):
    """The verdict, and under it (dim) what the suite alone said, MDE and W/T/L, and a small-n flag."""
    from rich.text import Text

    c = run.baseline
    status = c.status if c else None
    cell = Text(t.SHORT_VERDICTS.get(status, str(status)), style=t.VERDICT_STYLES.get(status, ""))
    if c is None:
        return cell
    if c.raw_status and c.raw_status != c.status:
        cell.append(f"\nalone: {t.SHORT_VERDICTS.get(c.raw_status, c.raw_status)} (p {t.fmt_p(c.p_regression)}, "
                    f"{c.correction} {t.fmt_p(c.p_adjusted)})", style="dim")
    details = []
    if t.is_number(c.minimum_detectable_effect):
        details.append(f"MDE {t.fmt(c.minimum_detectable_effect)}")
    if c.wins is not None:
        details.append(f"W/T/L {t.win_tie_loss(c)}")
    if details:
        cell.append("\n" + " · ".join(details), style="dim")
    if c.small_sample:
        cell.append("\n⚠ small n", style="yellow")
    return cell


def summary_notes(records: Sequence[RunRecord]) -> list[str]:
    """Lines to print once under the table: what MDE and W/T/L mean, which suites are too small to trust
    their intervals, and verdicts the multiple-suite correction changed."""
    compared = [r for r in records if r.baseline is not None and r.baseline.delta is not None]
    notes = []
    legend = []
    if any(t.is_number(r.baseline.minimum_detectable_effect) for r in compared):  # explained only where shown
        legend.append("MDE: the smallest drop each suite detects with 80% power")
    if any(r.baseline.wins is not None for r in compared):
        legend.append("W/T/L: rows won/tied/lost against the baseline")
    if legend:
        notes.append("; ".join(legend) + ".")
    small = list(dict.fromkeys(r.suite for r in compared if r.baseline.small_sample))
    if small:
        notes.append(f"⚠ small n: {', '.join(small)}: bootstrap intervals under-cover below 200 rows or 30 groups "
                     "(Bowyer et al. 2025); read them as optimistic.")
    predicted = [r for r in records if r.predicted_lb is not None]
    if predicted:
        weak = [r for r in predicted if t.predicted_flags(r.predicted_lb)]
        note = ("LB ≈: the leaderboard model's predicted public score ± its leave-one-probe-out error "
                "(information, never a verdict)")
        if weak:
            note += ("; ⚠: the model predicted its probes no better than their mean, or the score is outside "
                     "the probes' range: do not act on that number")
        notes.append(note + ".")
    if any(r.st5_estimate is not None for r in records):
        notes.append(t.ST5_NOTE)
    changed = [r for r in compared if r.baseline.raw_status and r.baseline.raw_status != r.baseline.status]
    if changed:
        corrections = ", ".join(sorted({r.baseline.correction or "correction" for r in changed}))
        notes.append(f"{len(changed)} per-suite regression(s) not significant after the {corrections} correction "
                     f"across the run's suites: {', '.join(f'{r.candidate} on {r.suite}' for r in changed)}.")
    return notes


# -- prh leaderboard -------------------------------------------------------------------------------------
def print_ranking(console: Console, view: ReportView, *, top: int = TOP_ROWS) -> None:
    """The leaderboard's top rows in the terminal, per section: rank, candidate, each suite's mean with its
    gate verdict, and the ranking mean; then the rule the ranking follows and the candidates left unranked."""
    from rich.text import Text

    width = console.width
    if not view.sections:
        console.print(Text("no runs yet: score a candidate (prh score or pytest suites/) to fill the leaderboard"))
    for section in view.sections:
        if not section.rows:
            continue
        console.print(ranking_table(section, top=top))
        ranked = [row for row in section.rows if row.rank is not None]
        notes = [section.ranking_rule]
        if len(ranked) > top:
            notes.append(f"{len(ranked) - top} more ranked candidate(s) in the report files.")
        unranked = [row for row in section.rows if row.rank is None]
        if unranked:
            notes.append("Not ranked: " + "; ".join(
                f"{row.label} ({'⚠ INCOMPLETE' if row.incomplete else 'misses ' + ', '.join(row.missing)})"
                for row in unranked) + ".")
        for note in notes:
            console.print(Text(wrap_note(note, width), style="dim"))


def ranking_table(section: Section, *, top: int = TOP_ROWS):
    """One section's ranked rows (at most `top`) as a rich table that fits 80 columns with 5 suites."""
    from rich.table import Table
    from rich.text import Text

    title = f"Leaderboard · {section.embedder} ({short(section.fingerprint)})"
    if not section.comparable_with_kaggle:
        title += " · not Kaggle-comparable"
    table = Table(title=Text(title), pad_edge=False, collapse_padding=True)
    table.add_column("#", justify="right")
    table.add_column("candidate", overflow="fold")
    for suite in section.suites:
        table.add_column(Text(t.suite_header(section, suite)), justify="right", overflow="fold")
    table.add_column(t.mean_header(section), justify="right", overflow="fold")
    for row in [row for row in section.rows if row.rank is not None][:top]:
        cells = [Text(str(row.rank)), Text(row.label)]
        for suite in section.suites:
            run = row.runs.get(suite)
            if suite in row.not_applicable:
                cells.append(Text("n/a", style="dim"))
                continue
            if run is None:
                cells.append(Text(MISSING))
                continue
            cell = Text(t.fmt(run.mean), style="" if suite in section.ranked_suites else "dim")
            status = run.baseline.status if run.baseline else None
            if status is not None:
                cell.append("\n" + t.SHORT_VERDICTS.get(status, status), style=t.VERDICT_STYLES.get(status, "dim"))
            cells.append(cell)
        cells.append(Text(t.mean_cell(row), style="bold"))
        table.add_row(*cells)
    return table


# -- prh show ----------------------------------------------------------------------------------------------
def print_page(console: Console, page: CandidatePage, *, limit: int | None = None) -> None:
    """A candidate's drill-down in the terminal: per embedder build, its runs, then the worst rows and the
    rows that lost and gained most against the baseline, truth and prediction side by side."""
    from rich.table import Table
    from rich.text import Text

    from harness.report.pages import selections

    limit = limit or page.limit
    if not page.parts:
        console.print(Text(f"no runs of {page.candidate} in the history"))
        return
    for part in page.parts:
        heading = f"{page.candidate} · {part.embedder} ({short(part.fingerprint)})"
        if not part.comparable_with_kaggle:
            heading += " · not Kaggle-comparable"
        console.print(Text(heading, style="bold"))
        runs = Table(show_header=True, pad_edge=False, collapse_padding=True)
        for header, justify in (("suite", "left"), ("SCS [CI]", "right"), ("n", "right"),
                                ("Δ vs baseline [CI]", "right"), ("gate", "left")):
            runs.add_column(header, justify=justify, overflow="fold")
        for run in part.runs:
            c = run.baseline
            runs.add_row(Text(run.suite), Text(t.fmt_interval(run.mean, run.ci_low, run.ci_high)), Text(str(run.n)),
                         Text(t.fmt_interval(c.delta, c.delta_low, c.delta_high, signed=True) if c else MISSING),
                         gate_cell(run))
        console.print(runs)
        if part.without_rows:
            console.print(Text(f"no stored rows for {', '.join(part.without_rows)} (scored before rows were "
                               "recorded; score it again)", style="yellow"))
        for heading, rows, none in selections(part, limit):
            console.print(Text(heading, style="bold"))
            if not rows:
                console.print(Text(none, style="dim"))
                continue
            console.print(_rows_table(rows))


def _rows_table(rows: Sequence[PageRow]):
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=True, show_lines=True, pad_edge=False, collapse_padding=True)
    for header, justify in (("row", "left"), ("score", "right"), ("Δ", "right"), ("true prompt", "left"),
                            ("prediction", "left")):
        table.add_column(header, justify=justify, overflow="fold")
    for item in rows:
        row = item.row
        where = Text(f"{item.suite}\n{row.id}")
        if row.group:
            where.append(f"\n{row.group}", style="dim")
        table.add_row(where, Text(t.fmt(row.score)), Text(t.fmt(item.delta, signed=True)),
                      Text(t.clip(row.truth, SHOW_PROMPT_CHARS)),
                      Text(t.clip(row.prediction, SHOW_PROMPT_CHARS) or "(empty)"))
    return table
