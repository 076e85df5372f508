"""The leaderboard as GitHub markdown (`reports/leaderboard.md`): what a reviewer reads in a diff or a PR."""

from __future__ import annotations

import re

from tabulate import tabulate

from harness.report import text as t
from harness.report.model import (
    LEADERBOARD_NOISE,
    MISSING,
    ReportView,
    Section,
    confidence_label,
    settings_label,
    short,
)

_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")


def md(text: str) -> str:
    """A cell that cannot break a github table or inject markup: pipes escaped, newlines flattened, `<`
    that could open a tag written as an entity (prompts are untrusted text; markdown viewers render HTML)."""
    return _TAG_START.sub("&lt;", text.replace("|", "\\|").replace("\r", " ").replace("\n", " "))


def table(rows: list[list[str]], headers: list[str]) -> str:
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def render(view: ReportView) -> str:
    """The whole leaderboard: an explanation, then one section per (embedder, fingerprint), never mixed."""
    lines = [
        f"# {view.title}",
        "",
        "Scores are the sharpened cosine similarity (SCS) of the Kaggle *LLM Prompt Recovery* competition: "
        "the mean over rows of |cos|³ between the sentence embeddings of the predicted and the true rewrite "
        f"prompt (higher is better). Intervals are {view.confidence} bootstrap confidence intervals. On the "
        f"leaderboard's sentence-t5-base scale, differences under ~{LEADERBOARD_NOISE} are within "
        "leaderboard noise. Scores from different embedders are on different scales and are never "
        "compared: each embedder (and fingerprint) has its own section.",
        "",
        f"Generated at {t.timestamp(view.generated_at)}.",
        "",
    ]
    if not view.sections:
        lines += ["_No runs yet: score a candidate (`prh score` or `pytest suites/`) to fill this report._", ""]
        return "\n".join(lines)
    for section in view.sections:
        lines += _section(section, view)
    return "\n".join(lines).rstrip("\n") + "\n"


def _section(section: Section, view: ReportView) -> list[str]:
    lines = [f"## Embedder `{md(section.embedder)}` · fingerprint `{md(section.fingerprint)}`", ""]
    if section.comparable_with_kaggle:
        lines += ["Same embedder as the Kaggle scorer: scores are on the leaderboard's scale.", ""]
    else:
        lines += [
            f"> **⚠ NOT COMPARABLE WITH THE KAGGLE LEADERBOARD.** `{md(section.embedder)}` is not the "
            "Kaggle scorer's embedder (sentence-t5-base); its SCS scale is much lower (a prediction scoring "
            "~0.62 with sentence-t5 may score ~0.12 here). Compare these scores only with each other.",
            "",
        ]
    if section.rows:
        lines += _leaderboard(section, view)
    if section.side_runs:
        lines += _side_table(section)
    if section.rows:
        lines += _baseline_table(section)
    return lines


def _leaderboard(section: Section, view: ReportView) -> list[str]:
    sizes = section.suite_sizes()
    where = "the suites of the suites file" if view.main_suites is not None else "the named suites"
    lines = [f"### Leaderboard over {where}", ""]
    headers = ["#", "candidate", "fingerprint"]
    headers += [md(t.suite_header(section, suite, f"n={sizes[suite]}" if sizes[suite] is not None else "n varies"))
                for suite in section.suites]
    headers.append(t.mean_header(section))
    with_prediction = any(row.predicted for row in section.rows)
    if with_prediction:
        headers.append("predicted LB [CI] ±LOO error")
    body = []
    for row in section.rows:
        rank = str(row.rank) if row.rank is not None else ("⚠" if row.incomplete else MISSING)
        name = f"⚠ {row.label} (INCOMPLETE)" if row.incomplete else row.label
        cells = [rank, md(name), f"`{md(short(row.fingerprint))}`"]
        for suite in section.suites:
            if suite in row.not_applicable:
                cells.append(f"n/a: {row.not_applicable[suite]}")
            else:
                cells.append(_score_cell(row.runs.get(suite), show_n=sizes[suite] is None))
        overall = t.mean_cell(row)
        if row.mean_over_suites is not None and row.incomplete:
            overall += " ⚠ incomplete"
        cells.append(md(overall))
        if with_prediction:
            cells.append(f"{t.predicted(row.predicted[1])} (from {md(row.predicted[0])})" if row.predicted else MISSING)
        body.append(cells)
    lines += [table(body, headers), ""]
    notes = [
        f"Cells: mean SCS [{confidence_label(section.records)} CI]; n = rows scored; then the suite's gate verdict "
        f"against its baseline. {md(section.ranking_rule)} A row labelled with settings (signed, resamples, CI "
        "method, seed) is a run with non-default settings, kept apart from the default run.",
    ]
    incomplete = [row.label for row in section.rows if row.incomplete]
    if incomplete:
        notes.append(
            f"**⚠ {len(incomplete)} candidate(s) INCOMPLETE** ({md(', '.join(incomplete))}): some predictions "
            "are empty. Kaggle's scorer rejects a submission with empty predictions, so these scores are "
            "not valid leaderboard scores and are not ranked.")
    if any(row.predicted for row in section.rows):
        notes.append("Predicted LB: the leaderboard model's estimate of the public score with its interval and "
                     "its leave-one-probe-out mean absolute error (how far it has been off); information, "
                     "never a verdict.")
    if any(run.st5_estimate is not None for run in section.records):
        notes.append(t.ST5_NOTE)
    for note in notes:
        lines += [note, ""]
    return lines


def _score_cell(record, *, show_n: bool) -> str:
    if record is None:
        return MISSING
    cell = t.fmt_interval(record.mean, record.ci_low, record.ci_high)
    if show_n:
        cell += f" (n={record.n})"
    if record.n_empty > 0:
        cell += f" {t.empty_flag(record)}"
    if record.st5_estimate is not None:
        cell += f" · {md(t.st5_estimate(record.st5_estimate))}"
    if record.baseline is not None:
        cell += f" · {t.SHORT_VERDICTS.get(record.baseline.status, record.baseline.status)}"
    return cell


def _side_table(section: Section) -> list[str]:
    lines = ["### Ad-hoc suites", "",
             "Data files scored on the command line (and suites no longer in the suites file). They are not "
             "part of the ranking above: each is its own question, with its own rows.", ""]
    body = []
    for run in section.side_runs:
        name = run.candidate + (f" · {settings}" if (settings := settings_label(run)) else "")
        cell = t.fmt_interval(run.mean, run.ci_low, run.ci_high)
        if run.n_empty:
            cell += f" {t.empty_flag(run)}"
        if run.st5_estimate is not None:
            cell += f" · {md(t.st5_estimate(run.st5_estimate))}"
        body.append([md(run.suite), md(name), f"`{md(short(run.candidate_fingerprint))}`", cell, str(run.n),
                     t.run_date(run)])
    lines += [table(body, ["suite", "candidate", "fingerprint", "SCS [CI]", "n", "scored"]), ""]
    return lines


def _baseline_table(section: Section) -> list[str]:
    lines = ["### Against the baselines", ""]
    runs = section.compared_runs()
    if not any(run.baseline for _, run in runs):
        return lines + ["_No baseline comparisons were recorded for this embedder._", ""]
    statuses = [run.baseline.status if run.baseline else None for _, run in runs]
    counts = {status: statuses.count(status) for status in ("regression", "improvement", "stale")}
    corrections = sorted({run.baseline.correction for _, run in runs if run.baseline and run.baseline.correction})
    lines += [f"{counts['regression']} regression(s), {counts['improvement']} improvement(s), "
              f"{counts['stale']} stale baseline(s). Δ is candidate − baseline on the same rows with its paired "
              "bootstrap CI; a regression means the whole interval lies below −tolerance, after the correction "
              f"for testing the run's suites together ({', '.join(corrections) or 'none'}). p: the one-sided "
              "p-value of a regression, then adjusted. MDE: the smallest drop this suite detects with 80% power. "
              "W/T/L: rows won, tied, lost. Design effect: how much the groups inflate the variance.", ""]
    body = []
    for row, run in runs:
        c = run.baseline
        reference = MISSING if c is None or c.baseline_candidate is None else str(c.baseline_candidate)
        if c is not None and t.is_number(c.baseline_mean):
            reference += f" ({t.fmt(c.baseline_mean)})"
        verdict = t.verdict(c)
        if note := t.raw_verdict_note(c):
            verdict += f" ({note})"
        if run.n_empty > 0:
            verdict += f" · {t.empty_flag(run)}"
        delta = t.fmt_interval(c.delta, c.delta_low, c.delta_high, signed=True) if c else MISSING
        body.append([md(row.label), md(run.suite), md(reference), delta, md(verdict), t.p_values(c), t.mde(c),
                     t.win_tie_loss(c), t.design_effect(c)])
    headers = ["candidate", "suite", "baseline (its mean)", "Δ [CI]", "verdict", "p", "MDE", "W/T/L", "design effect"]
    lines += [table(body, headers), ""]
    explained = [(row, run) for row, run in runs if run.baseline and run.baseline.fails and run.baseline.message]
    for row, run in explained:
        lines.append(f"- {md(row.label)} on {md(run.suite)}: {md(run.baseline.message)}")
    small = {run.suite: run.baseline.small_sample for _, run in runs if run.baseline and run.baseline.small_sample}
    for suite, warning in small.items():
        lines.append(f"- ⚠ {md(suite)}: {md(warning)}")
    if explained or small:
        lines.append("")
    return lines
