"""Per-candidate drill-down pages (`reports/candidates/<candidate>.md`): the rows a candidate gets wrong.

The first thing a prompt-recovery competitor looks at: the worst rows, the rows that lost most against the
baseline and those that gained most, with the true prompt and the prediction side by side.
"""

from __future__ import annotations

from harness.report import text as t
from harness.report.markdown import md, table
from harness.report.model import MISSING, CandidatePage, PagePart, PageRow, settings_label, short

#: characters of a prompt shown in a page table (the full texts are in the store)
PROMPT_CHARS = 160
PAGE_KEY_PREFIX = "<!-- prh-page "


def selections(part: PagePart, limit: int) -> list[tuple[str, tuple[PageRow, ...], str]]:
    """The page's three tables: heading, rows, and what to say when there are none."""
    return [
        (f"Worst {limit} rows", part.worst[:limit], "No stored rows."),
        (f"{limit} rows that lost most against the baseline", part.lost[:limit],
         "No row scored below the baseline." if part.has_baseline else
         "No per-row baseline scores: the run was not compared with a baseline (or the baseline changed since)."),
        (f"{limit} rows that gained most against the baseline", part.gained[:limit],
         "No row scored above the baseline." if part.has_baseline else
         "No per-row baseline scores: the run was not compared with a baseline (or the baseline changed since)."),
    ]


def render(page: CandidatePage, *, histogram: str | None = None) -> str:
    """The page's markdown; `histogram` is the PNG's path relative to the page, when one was drawn."""
    lines = [
        f"{PAGE_KEY_PREFIX}{page.key} -->",
        f"# Candidate `{md(page.candidate)}`",
        "",
        "Per-row drill-down of the candidate's newest run on each suite. Row scores are SCS (|cos|³ of the "
        "true and the predicted prompt's embeddings); Δ = the row's score − the baseline's score on the same "
        f"row. Prompts are cut at {PROMPT_CHARS} characters. Back to the [leaderboard](../leaderboard.md).",
        "",
    ]
    if not page.parts:
        return "\n".join(lines + ["_No runs of this candidate in the history._", ""])
    if histogram:
        lines += [f"![Per-row score histograms of {md(page.candidate)} over the baseline]({histogram})", ""]
    for part in page.parts:
        lines += _part(part, page.limit)
    return "\n".join(lines).rstrip("\n") + "\n"


def _part(part: PagePart, limit: int) -> list[str]:
    lines = [f"## Embedder `{md(part.embedder)}` · fingerprint `{md(short(part.fingerprint))}`", ""]
    if not part.comparable_with_kaggle:
        lines += ["> ⚠ Not comparable with the Kaggle leaderboard: another embedder than the scorer's.", ""]
    runs = []
    for run in part.runs:
        c = run.baseline
        verdict = t.verdict(c) if c else MISSING
        if note := t.raw_verdict_note(c):
            verdict += f" ({note})"
        runs.append([md(run.suite), t.run_date(run), f"`{md(short(run.candidate_fingerprint))}`",
                     md(settings_label(run) or "default"), str(run.n),
                     t.fmt_interval(run.mean, run.ci_low, run.ci_high) + (f" {t.empty_flag(run)}" if run.n_empty else ""),
                     md(c.baseline_candidate) if c and c.baseline_candidate else MISSING,
                     t.fmt_interval(c.delta, c.delta_low, c.delta_high, signed=True) if c else MISSING,
                     md(verdict)])
    lines += [table(runs, ["suite", "scored", "version", "settings", "n", "SCS [CI]", "baseline", "Δ [CI]",
                           "verdict"]), ""]
    if part.without_rows:
        lines += [f"_No stored rows for {md(', '.join(part.without_rows))} (scored before rows were recorded; "
                  "score it again to see them)._", ""]
    for heading, rows, none in selections(part, limit):
        lines += [f"### {heading}", ""]
        lines += [table([_row_cells(r) for r in rows], ["suite", "id", "group", "score", "Δ", "true prompt",
                                                         "prediction"]) if rows else f"_{none}_", ""]
    return lines


def _row_cells(item: PageRow) -> list[str]:
    row = item.row
    return [md(item.suite), md(row.id), md(row.group or MISSING), t.fmt(row.score), t.fmt(item.delta, signed=True),
            md(t.clip(row.truth, PROMPT_CHARS)), md(t.clip(row.prediction, PROMPT_CHARS) or "(empty)")]


def stored_key(text: str) -> str | None:
    """The content key a written page starts with (None if it has none): an unchanged page is not redrawn."""
    first = text.split("\n", 1)[0]
    if first.startswith(PAGE_KEY_PREFIX) and first.endswith(" -->"):
        return first[len(PAGE_KEY_PREFIX):-len(" -->")]
    return None
