"""Leaderboards from the run history: markdown, JSON, a PNG plot, and a rich table for the terminal.

One job: format `RunRecord`s. Nothing here computes a score, a CI or a verdict; every number shown was
computed upstream (harness.evaluate, harness.stats, harness.baselines) and travels in the record.

Three rules shape every output:
- scores from different embedders, or from different fingerprints of one embedder name, are never put
  side by side: each (embedder, fingerprint) gets its own section, table and subplot;
- a section whose embedder is not the Kaggle scorer's says so loudly (its SCS scale is far lower);
- a row with empty predictions is flagged as incomplete everywhere it appears: Kaggle's scorer rejects
  such a submission, so its number is not a valid leaderboard score.

matplotlib is imported inside `render_plot` only (importing the package must stay cheap), and through the
object-oriented Agg canvas, so no global pyplot backend is switched under the caller's feet.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from tabulate import tabulate

from harness.files import write_atomic, write_text_atomic
from harness.store import RunRecord
from harness.verdict import NO_BASELINE, Comparison

if TYPE_CHECKING:  # rich is only needed by rich_table; keep import-time work minimal
    from rich.table import Table

DEFAULT_TITLE = "Prompt-recovery leaderboard"
#: below this, a difference in mean SCS is within the noise of the Kaggle leaderboard (sentence-t5 scale)
LEADERBOARD_NOISE = 0.02
MARKDOWN_NAME = "leaderboard.md"
JSON_NAME = "leaderboard.json"
PLOT_NAME = "leaderboard.png"
MISSING = "—"
_SHORT_FINGERPRINT = 12

_VERDICTS: dict[str | None, str] = {
    "regression": "❌ regression",
    "improvement": "✅ better",
    "no-difference": "≈ no significant difference",
    "no-baseline": "no baseline",
    "stale": "⚠ stale baseline",
    None: f"{MISSING} not compared",
}
#: stands in for a run without any comparison, so formatters read one shape
_NO_COMPARISON = Comparison(NO_BASELINE, "")
_VERDICT_STYLES = {"regression": "bold red", "improvement": "bold green", "stale": "yellow"}


# -- the shape every output shares -------------------------------------------------------------------
@dataclass(frozen=True)
class _CandidateRow:
    """One candidate (by fingerprint) in one section: its latest record per suite."""

    candidate: str
    fingerprint: str
    runs: Mapping[str, RunRecord]
    mean_over_suites: float | None

    @property
    def n_empty(self) -> int:
        return sum(run.n_empty for run in self.runs.values())

    @property
    def incomplete(self) -> bool:
        return self.n_empty > 0


@dataclass(frozen=True)
class _Section:
    """All rows scored by one embedder with one fingerprint: the only scores that may share a table."""

    embedder: str
    fingerprint: str
    comparable_with_kaggle: bool
    suites: tuple[str, ...]
    rows: tuple[_CandidateRow, ...]

    def missing_suites(self, row: _CandidateRow) -> list[str]:
        return [suite for suite in self.suites if suite not in row.runs]


def latest_runs(records: Sequence[RunRecord]) -> list[RunRecord]:
    """The newest record per (embedder, embedder fingerprint, suite, candidate fingerprint).

    The history keeps every scoring ever made; a leaderboard shows each candidate's current score only.
    Newest means the highest `run_id` when both records were stored, else the latest `created`; on a tie
    the later record in `records` wins. Records keep the order in which their key first appeared.
    """
    kept: dict[tuple[str, str, str, str], RunRecord] = {}
    for record in records:
        key = (record.embedder, record.embedder_fingerprint, record.suite, record.candidate_fingerprint)
        current = kept.get(key)
        if current is None or not _is_older(record, current):
            kept[key] = record
    return list(kept.values())


def _is_older(record: RunRecord, other: RunRecord) -> bool:
    if record.run_id is not None and other.run_id is not None:
        return record.run_id < other.run_id
    return record.created < other.created


def _build_sections(records: Sequence[RunRecord]) -> list[_Section]:
    """Group the latest records into sections, rows ranked: every suite present first, by mean over suites."""
    grouped: dict[tuple[str, str], list[RunRecord]] = {}
    for record in latest_runs(records):
        grouped.setdefault((record.embedder, record.embedder_fingerprint), []).append(record)
    sections = []
    for (embedder, fingerprint), section_records in grouped.items():
        suites = tuple(sorted({r.suite for r in section_records}))
        by_candidate: dict[str, dict[str, RunRecord]] = {}
        for record in section_records:
            by_candidate.setdefault(record.candidate_fingerprint, {})[record.suite] = record
        rows = [_candidate_row(runs, suites) for runs in by_candidate.values()]
        rows.sort(key=lambda row: (row.mean_over_suites is None, -(row.mean_over_suites or 0.0),
                                   row.candidate, row.fingerprint))
        sections.append(_Section(
            embedder=embedder,
            fingerprint=fingerprint,
            # one record claiming non-comparability is enough to warn: better loud than misleading
            comparable_with_kaggle=all(r.comparable_with_kaggle for r in section_records),
            suites=suites,
            rows=tuple(rows),
        ))
    # Kaggle-comparable sections first: they are the ones a reader will quote
    sections.sort(key=lambda s: (not s.comparable_with_kaggle, s.embedder, s.fingerprint))
    return sections


def _candidate_row(runs: dict[str, RunRecord], suites: Sequence[str]) -> _CandidateRow:
    newest = max(runs.values(), key=lambda r: (r.run_id if r.run_id is not None else -1, r.created))
    mean_over_suites = None
    if all(suite in runs for suite in suites):
        means = [runs[suite].mean for suite in suites]
        # each suite weighs the same whatever its size: suites are different questions, not more rows
        mean_over_suites = math.fsum(means) / len(means) if all(map(_is_number, means)) else None
    ordered = {suite: runs[suite] for suite in suites if suite in runs}
    return _CandidateRow(newest.candidate, newest.candidate_fingerprint, ordered, mean_over_suites)


def _display_names(section: _Section) -> dict[str, str]:
    """Candidate names by fingerprint, with a short fingerprint added where two versions share a name."""
    counts: dict[str, int] = {}
    for row in section.rows:
        counts[row.candidate] = counts.get(row.candidate, 0) + 1
    return {row.fingerprint: row.candidate if counts[row.candidate] == 1
            else f"{row.candidate} ({_short(row.fingerprint)})" for row in section.rows}


# -- small formatters -----------------------------------------------------------------------------------
def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fmt(value: object, signed: bool = False) -> str:
    if not _is_number(value):
        return MISSING
    rounded = round(float(value), 3) + 0.0  # + 0.0 turns -0.0 into 0.0, so no "-0.000"
    return f"{rounded:+.3f}" if signed else f"{rounded:.3f}"


def _fmt_interval(mean: object, low: object, high: object, signed: bool = False) -> str:
    if not _is_number(mean):
        return MISSING
    if not (_is_number(low) and _is_number(high)):
        return _fmt(mean, signed)
    return f"{_fmt(mean, signed)} [{_fmt(low, signed)}, {_fmt(high, signed)}]"


def _short(fingerprint: str) -> str:
    return fingerprint[:_SHORT_FINGERPRINT]


def _md(text: str) -> str:
    """A cell that cannot break a github table: pipes escaped, newlines flattened."""
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _confidence_label(records: Sequence[RunRecord]) -> str:
    levels = sorted({round(r.confidence * 100, 6) for r in records})
    return " / ".join(f"{level:g}%" for level in levels) if levels else "95%"


def _verdict(record: RunRecord) -> str:
    status = record.baseline.status if record.baseline else None
    return _VERDICTS.get(status, str(status))


def _empty_flag(record: RunRecord) -> str:
    return f"⚠ INCOMPLETE: {record.n_empty}/{record.n} empty" if record.n_empty > 0 else ""


def _generated_at(generated_at: datetime | None) -> datetime:
    return generated_at if generated_at is not None else datetime.now(timezone.utc)


def _timestamp(moment: datetime) -> str:
    text = moment.isoformat(sep=" ", timespec="seconds")
    return text.replace("+00:00", " UTC")


# -- markdown -------------------------------------------------------------------------------------------
def render_markdown(records: Sequence[RunRecord], *, title: str = DEFAULT_TITLE,
                    generated_at: datetime | None = None) -> str:
    """A human-readable leaderboard: one section per (embedder, fingerprint), never mixed.

    `records` may be the whole history: only each candidate's latest record per suite is shown.
    `generated_at` defaults to now (UTC); pass it for reproducible output.
    """
    moment = _generated_at(generated_at)
    latest = latest_runs(records)
    confidence = _confidence_label(latest)
    lines = [
        f"# {title}",
        "",
        "Scores are the sharpened cosine similarity (SCS) of the Kaggle *LLM Prompt Recovery* competition: "
        "the mean over rows of |cos|³ between the sentence embeddings of the predicted and the true rewrite "
        f"prompt (higher is better). Intervals are {confidence} bootstrap confidence intervals. On the "
        f"leaderboard's sentence-t5-base scale, differences under ~{LEADERBOARD_NOISE} are within "
        "leaderboard noise. Scores from different embedders are on different scales and are never "
        "compared: each embedder (and fingerprint) has its own section.",
        "",
        f"Generated at {_timestamp(moment)}.",
        "",
    ]
    sections = _build_sections(latest)
    if not sections:
        lines += ["_No runs yet: score a candidate (`prh score` or `pytest suites/`) to fill this report._", ""]
        return "\n".join(lines)
    for section in sections:
        lines += _markdown_section(section)
    return "\n".join(lines).rstrip("\n") + "\n"


def _markdown_section(section: _Section) -> list[str]:
    lines = [f"## Embedder `{_md(section.embedder)}` · fingerprint `{_md(section.fingerprint)}`", ""]
    if section.comparable_with_kaggle:
        lines += ["Same embedder as the Kaggle scorer: scores are on the leaderboard's scale.", ""]
    else:
        lines += [
            f"> **⚠ NOT COMPARABLE WITH THE KAGGLE LEADERBOARD.** `{_md(section.embedder)}` is not the "
            "Kaggle scorer's embedder (sentence-t5-base); its SCS scale is much lower (a prediction scoring "
            "~0.62 with sentence-t5 may score ~0.12 here). Compare these scores only with each other.",
            "",
        ]
    lines += _leaderboard_table(section)
    lines += _baseline_table(section)
    return lines


def _suite_sizes(section: _Section) -> dict[str, int | None]:
    """n per suite when every candidate was scored on the same number of rows, else None."""
    sizes: dict[str, int | None] = {}
    for suite in section.suites:
        ns = {row.runs[suite].n for row in section.rows if suite in row.runs}
        sizes[suite] = ns.pop() if len(ns) == 1 else None
    return sizes


def _leaderboard_table(section: _Section) -> list[str]:
    sizes = _suite_sizes(section)
    names = _display_names(section)
    headers = ["#", "candidate", "fingerprint"]
    headers += [f"{suite} (n={sizes[suite]})" if sizes[suite] is not None else f"{suite} (n varies)"
                for suite in section.suites]
    headers.append("mean over suites")
    table = []
    rank = 0
    for row in section.rows:
        if row.mean_over_suites is not None and not row.incomplete:
            rank += 1
            rank_cell = str(rank)
        else:
            rank_cell = "⚠" if row.incomplete else MISSING
        name = f"⚠ {names[row.fingerprint]} (INCOMPLETE)" if row.incomplete else names[row.fingerprint]
        cells = [rank_cell, _md(name), f"`{_md(_short(row.fingerprint))}`"]
        for suite in section.suites:
            cells.append(_score_cell(row.runs.get(suite), show_n=sizes[suite] is None))
        overall = _fmt(row.mean_over_suites)
        if row.mean_over_suites is not None and row.incomplete:
            overall += " ⚠ incomplete"
        cells.append(overall)
        table.append(cells)
    lines = [tabulate(table, headers=headers, tablefmt="github", disable_numparse=True), ""]
    notes = [
        f"Cells: mean SCS [{_confidence_label([r for row in section.rows for r in row.runs.values()])} CI]; "
        "n = rows scored. Ranked by the unweighted mean over this section's suites; "
        f"candidates missing a suite show {MISSING} and come last.",
    ]
    incomplete = [names[row.fingerprint] for row in section.rows if row.incomplete]
    if incomplete:
        notes.append(
            f"**⚠ {len(incomplete)} candidate(s) INCOMPLETE** ({_md(', '.join(incomplete))}): some predictions "
            "are empty. Kaggle's scorer rejects a submission with empty predictions, so these scores are "
            "not valid leaderboard scores and are not ranked.")
    for note in notes:
        lines += [note, ""]
    return lines


def _score_cell(record: RunRecord | None, *, show_n: bool) -> str:
    if record is None:
        return MISSING
    cell = _fmt_interval(record.mean, record.ci_low, record.ci_high)
    if show_n:
        cell += f" (n={record.n})"
    if record.n_empty > 0:
        cell += f" {_empty_flag(record)}"
    return cell


def _baseline_table(section: _Section) -> list[str]:
    lines = ["### Against the baselines", ""]
    runs = [(row, row.runs[suite]) for row in section.rows for suite in section.suites if suite in row.runs]
    if not any(run.baseline for _, run in runs):
        return lines + ["_No baseline comparisons were recorded for this embedder._", ""]
    names = _display_names(section)
    statuses = [run.baseline.status if run.baseline else None for _, run in runs]
    counts = {status: statuses.count(status) for status in ("regression", "improvement", "stale")}
    lines += [f"{counts['regression']} regression(s), {counts['improvement']} improvement(s), "
              f"{counts['stale']} stale baseline(s). Δ is candidate − baseline with its paired "
              "bootstrap CI; a regression means the whole interval lies below −tolerance.", ""]
    table = []
    for row, run in runs:
        baseline = run.baseline or _NO_COMPARISON
        reference = baseline.baseline_candidate
        reference_cell = MISSING if reference is None else str(reference)
        if _is_number(baseline.baseline_mean):
            reference_cell += f" ({_fmt(baseline.baseline_mean)})"
        verdict = _verdict(run)
        if run.n_empty > 0:
            verdict += f" · {_empty_flag(run)}"
        table.append([_md(names[row.fingerprint]), _md(run.suite), _md(reference_cell),
                      _fmt_interval(baseline.delta, baseline.delta_low, baseline.delta_high,
                                    signed=True),
                      _md(verdict)])
    headers = ["candidate", "suite", "baseline (its mean)", "Δ [CI]", "verdict"]
    lines += [tabulate(table, headers=headers, tablefmt="github", disable_numparse=True), ""]
    explained = [(row, run) for row, run in runs
                 if run.baseline and run.baseline.fails and run.baseline.message]
    for row, run in explained:
        lines.append(f"- {_md(names[row.fingerprint])} on {_md(run.suite)}: {_md(run.baseline.message)}")
    if explained:
        lines.append("")
    return lines


# -- JSON -----------------------------------------------------------------------------------------------
def render_json(records: Sequence[RunRecord], *, generated_at: datetime | None = None) -> str:
    """The markdown report's content as data (same sections, same ranking, the full fingerprints)."""
    payload = {
        "generated_at": _generated_at(generated_at).isoformat(timespec="seconds"),
        "sections": [_json_section(section) for section in _build_sections(records)],
    }
    return json.dumps(payload, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _json_section(section: _Section) -> dict:
    return {
        "embedder": section.embedder,
        "embedder_fingerprint": section.fingerprint,
        "comparable_with_kaggle": section.comparable_with_kaggle,
        "suites": list(section.suites),
        "candidates": [{
            "candidate": row.candidate,
            "candidate_fingerprint": row.fingerprint,
            "scores": {suite: {
                "mean": _json_number(run.mean),
                "ci_low": _json_number(run.ci_low),
                "ci_high": _json_number(run.ci_high),
                "n": run.n,
                "n_empty": run.n_empty,
                "confidence": run.confidence,
                "ci_method": run.ci_method,
                "suite_fingerprint": run.suite_fingerprint,
                "run_id": run.run_id,
            } for suite, run in row.runs.items()},
            "mean_over_suites": _json_number(row.mean_over_suites),
            "missing_suites": section.missing_suites(row),
            "incomplete": row.incomplete,
            "baseline": {suite: _json_clean(run.baseline.to_dict()) for suite, run in row.runs.items() if run.baseline},
        } for row in section.rows],
    }


def _json_number(value: object) -> float | None:
    """NaN and infinities are not JSON: they become null rather than an unparsable file."""
    return float(value) if _is_number(value) else None


def _json_clean(value: object) -> object:
    if isinstance(value, float):
        return _json_number(value)
    if isinstance(value, Mapping):
        return {str(k): _json_clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_clean(v) for v in value]
    return value


# -- plot -----------------------------------------------------------------------------------------------
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
_LEGEND_NAME_CHARS = 36


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def render_plot(records: Sequence[RunRecord], path: str | Path) -> Path | None:
    """A PNG with one subplot per (embedder, fingerprint): suites on x, each candidate's mean with its CI.

    Candidates are dodged horizontally and named in the legend (ranked as in the markdown); incomplete
    candidates get hollow markers and an "INCOMPLETE" label. Returns None, writing nothing, when there is
    nothing to plot. The file is written atomically.
    """
    sections = _build_sections(records)
    if not sections:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    heights = [max(3.2, 1.2 + 0.24 * len(section.rows)) for section in sections]
    figure = Figure(figsize=(11, sum(heights)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(sections), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    # one colour and marker per candidate across all subplots, so a reader can follow it between embedders
    styles: dict[str, int] = {}
    for section in sections:
        for row in section.rows:
            styles.setdefault(row.fingerprint, len(styles))
    for ax, section in zip(axes, sections, strict=True):
        _plot_section(ax, section, styles)
    target = Path(path)
    write_atomic(target, lambda handle: figure.savefig(handle, format="png", dpi=110))
    return target


def _plot_section(ax, section: _Section, styles: Mapping[str, int]) -> None:
    """Draw one section on `ax`; `styles` maps candidate fingerprints to a colour/marker index."""
    from matplotlib import colormaps

    names = _display_names(section)
    count = len(section.rows)
    palette = colormaps["tab10" if len(styles) <= 10 else "tab20"]
    step = min(0.8 / max(count, 1), 0.18)
    for index, row in enumerate(section.rows):
        offset = (index - (count - 1) / 2) * step
        xs, means, below, above = [], [], [], []
        for position, suite in enumerate(section.suites):
            run = row.runs.get(suite)
            if run is None or not _is_number(run.mean):
                continue
            low = run.ci_low if _is_number(run.ci_low) else run.mean
            high = run.ci_high if _is_number(run.ci_high) else run.mean
            xs.append(position + offset)
            means.append(run.mean)
            below.append(max(run.mean - low, 0.0))
            above.append(max(high - run.mean, 0.0))
        style = styles[row.fingerprint]
        color = palette(style % palette.N)
        label = _truncate(names[row.fingerprint], _LEGEND_NAME_CHARS)  # long names would squeeze the axes
        if row.mean_over_suites is not None:
            label += f" ({_fmt(row.mean_over_suites)})"
        elif section.missing_suites(row):
            label += f" (missing {len(section.missing_suites(row))} suite(s))"
        if row.incomplete:
            label += " ⚠ INCOMPLETE"
        ax.errorbar(xs, means, yerr=[below, above], fmt=_MARKERS[style % len(_MARKERS)], color=color,
                    markerfacecolor="none" if row.incomplete else color, markersize=6, capsize=3,
                    elinewidth=1.2, label=label)
    sizes = _suite_sizes(section)
    ax.set_xticks(range(len(section.suites)))
    ax.set_xticklabels([f"{suite}\nn={sizes[suite]}" if sizes[suite] is not None else suite
                        for suite in section.suites],
                       rotation=20 if len(section.suites) > 6 else 0)
    ax.set_xlim(-0.6, len(section.suites) - 0.4)
    ax.set_ylabel("mean SCS")
    ax.grid(axis="y", alpha=0.3)
    title = f"{section.embedder} · {_short(section.fingerprint)}"
    if not section.comparable_with_kaggle:
        title += " (not comparable with Kaggle LB)"
    ax.set_title(title, color="black" if section.comparable_with_kaggle else "firebrick")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False,
              title="candidate (mean over suites)", title_fontsize="small")


# -- terminal -------------------------------------------------------------------------------------------
def rich_table(records: Sequence[RunRecord], *, title: str = "Prompt-recovery results") -> Table:
    """A terminal table of the latest records, one row per (candidate, suite, embedder).

    Cells are `rich.text.Text`, never markup strings, so a candidate named "[bold]x" prints literally.
    """
    from rich.table import Table
    from rich.text import Text

    sections = _build_sections(records)
    table = Table(title=title, show_lines=False)
    for header, justify in (("candidate", "left"), ("suite", "left"), ("embedder", "left"), ("mean", "right"),
                            ("CI", "right"), ("n", "right"), ("Δ vs baseline [CI]", "right"), ("verdict", "left")):
        table.add_column(header, justify=justify)
    if not sections:
        table.caption = "no runs yet"
        return table
    latest = [run for section in sections for row in section.rows for run in row.runs.values()]
    table.columns[4].header = f"{_confidence_label(latest)} CI"
    for section in sections:
        names = _display_names(section)
        embedder = Text(f"{section.embedder} ({_short(section.fingerprint)})")
        if not section.comparable_with_kaggle:
            embedder.append(" not Kaggle-comparable", style="yellow")
        for row in section.rows:
            for run in row.runs.values():
                baseline = run.baseline or _NO_COMPARISON
                status = run.baseline.status if run.baseline else None
                n_cell = Text(str(run.n))
                if run.n_empty > 0:
                    n_cell.append(f" ⚠ {run.n_empty} empty (INCOMPLETE)", style="bold red")
                table.add_row(
                    Text(names[row.fingerprint]), Text(run.suite), embedder.copy(), Text(_fmt(run.mean)),
                    Text(f"[{_fmt(run.ci_low)}, {_fmt(run.ci_high)}]"), n_cell,
                    Text(_fmt_interval(baseline.delta, baseline.delta_low, baseline.delta_high,
                                       signed=True)),
                    Text(_verdict(run), style=_VERDICT_STYLES.get(status, "")),
                )
    if any(not s.comparable_with_kaggle for s in sections):
        table.caption = "scores from non-Kaggle embedders are not comparable with the Kaggle leaderboard"
    return table


# -- files ----------------------------------------------------------------------------------------------
def write_reports(records: Sequence[RunRecord], directory: str | Path, *,
                  title: str = DEFAULT_TITLE, generated_at: datetime | None = None) -> list[Path]:
    """Write leaderboard.md, leaderboard.json and (when there is something to plot) leaderboard.png.

    Every file is written to a temporary file in `directory` and moved into place, so a reader (or a
    concurrent pytest-xdist worker) never sees half a report. With nothing to plot, an older
    leaderboard.png is removed rather than left contradicting the new markdown. Returns the paths written.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    moment = _generated_at(generated_at)
    markdown_path, json_path = folder / MARKDOWN_NAME, folder / JSON_NAME
    markdown = render_markdown(records, title=title, generated_at=moment)
    data = render_json(records, generated_at=moment)
    write_text_atomic(markdown_path, markdown)
    write_text_atomic(json_path, data)
    written = [markdown_path, json_path]
    plot = render_plot(records, folder / PLOT_NAME)
    if plot is not None:
        written.append(plot)
    else:
        (folder / PLOT_NAME).unlink(missing_ok=True)
    return written
