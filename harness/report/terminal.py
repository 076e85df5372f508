"""The terminal: the run's table (pytest summary, `prh score`), its notes, and `prh show`'s drill-down.

Fits 80 columns: few columns, each allowed to wrap (rich folds a cell rather than cutting it with "…"),
the embedder named once in the title rather than on every row. Cells are `rich.text.Text`, never markup
strings, so a candidate named "[bold]x" or a prompt with brackets prints literally. rich is imported
inside the functions only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from harness.report import text as t
from harness.report.model import MISSING, CandidatePage, PageRow, build_view, settings_label, short
from harness.store import RunRecord

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

#: characters of a prompt shown by `prh show` (wrapped within its column)
SHOW_PROMPT_CHARS = 120


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
    table = Table(title=heading, show_lines=False, pad_edge=False, collapse_padding=True)
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
    if compared:
        notes.append("MDE: the smallest drop each suite detects with 80% power; W/T/L: rows won/tied/lost "
                     "against the baseline.")
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
