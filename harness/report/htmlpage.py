"""`reports/index.html`: the leaderboard and every candidate's drill-down in ONE self-contained file.

No server, no CDN, no external request (an offline Kaggle notebook must open it): the CSS and the sorting
script are inline, the CI bars are inline SVG, the histograms are `data:` URIs. Every text that comes from
the history (candidate and suite names, prompts, predictions, messages) goes through `html.escape`:
prompts are untrusted text.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone

from harness.report import text as t
from harness.report.model import (
    LEADERBOARD_NOISE,
    MISSING,
    CandidatePage,
    CandidateRow,
    PagePart,
    ReportView,
    Section,
    is_number,
    settings_label,
    short,
)
from harness.report.pages import selections
from harness.store import RunRecord, SubmissionRecord

#: characters of a prompt shown in the drill-down tables (the full text is in the cell's tooltip)
PROMPT_CHARS = 300
_BAR_WIDTH = 110

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1500px;
padding:0 18px 40px;color:#1d2430;background:#fff}
h1{font-size:24px;margin:18px 0 6px}h2{font-size:19px;margin:28px 0 8px;border-bottom:1px solid #d6dbe3}
h3{font-size:16px;margin:18px 0 6px}p.note{color:#4b5563;margin:4px 0 10px}
.warn{background:#fff4e5;border-left:4px solid #e8590c;padding:6px 10px;color:#7a2e00}
table{border-collapse:collapse;margin:6px 0 12px;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d6dbe3;padding:4px 7px;vertical-align:top;text-align:left}
th{background:#f1f4f8;white-space:nowrap}table.sortable th{cursor:pointer}
table.sortable th:after{content:" \\2195";color:#9aa3af}
table.sortable th[aria-sort=ascending]:after{content:" \\25B2"}
table.sortable th[aria-sort=descending]:after{content:" \\25BC"}
div.wide{overflow-x:auto;max-width:100%}p,h1,h2,h3,h4,summary,li{overflow-wrap:anywhere}
table.board th{white-space:normal}table.board td.num{white-space:normal}.nowrap{white-space:nowrap}
table.board td.name{max-width:220px;overflow-wrap:anywhere}table.board td.lb{max-width:180px}
td.num{text-align:right;white-space:nowrap}td.text{max-width:420px;word-wrap:break-word}
svg.ci{display:inline-block;vertical-align:middle}
.regression{color:#b42318;font-weight:600}.improvement{color:#067647;font-weight:600}.stale{color:#b54708}
.incomplete{color:#b42318}.dim{color:#6b7280}
details{border:1px solid #d6dbe3;border-radius:6px;margin:8px 0;padding:4px 10px}
summary{cursor:pointer;font-weight:600;font-size:15px}img.hist{max-width:100%;height:auto;margin:8px 0}
"""

_SCRIPT = """
(function(){
  function key(cell){var v=cell.getAttribute("data-sort");return v===null?cell.textContent:v;}
  document.querySelectorAll("table.sortable").forEach(function(table){
    var heads=table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads,function(th,col){
      th.addEventListener("click",function(){
        var asc=th.getAttribute("aria-sort")!=="ascending";
        Array.prototype.forEach.call(heads,function(h){h.setAttribute("aria-sort","none");});
        th.setAttribute("aria-sort",asc?"ascending":"descending");
        var body=table.tBodies[0];var rows=Array.prototype.slice.call(body.rows);
        rows.sort(function(a,b){
          var x=key(a.cells[col]),y=key(b.cells[col]);var nx=parseFloat(x),ny=parseFloat(y);
          if(isNaN(nx)!==isNaN(ny)){return isNaN(nx)?1:-1;}
          var r=isNaN(nx)?String(x).localeCompare(String(y)):nx-ny;return asc?r:-r;});
        rows.forEach(function(r){body.appendChild(r);});});});});
  function openTarget(){var id=decodeURIComponent(location.hash.slice(1));var el=id&&document.getElementById(id);
    if(el&&el.tagName==="DETAILS"){el.open=true;el.scrollIntoView();}}
  window.addEventListener("hashchange",openTarget);openTarget();
})();
"""


def e(value: object) -> str:
    """Escape any text for an element or a quoted attribute."""
    return html.escape(str(value), quote=True)


def render(view: ReportView, pages: Sequence[CandidatePage], histograms: Mapping[str, bytes] | None = None,
           submissions: Sequence[SubmissionRecord] = ()) -> str:
    """The whole page. `histograms`: PNG bytes by page stem, embedded as data: URIs. `submissions`: the files
    `prh predict` wrote, listed after the leaderboard."""
    anchors = {page.candidate: f"cand-{page.stem}" for page in pages}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(view.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(view.title)}</h1>",
        f'<p class="note">Scores are the sharpened cosine similarity (SCS) of the Kaggle <i>LLM Prompt Recovery</i> '
        "competition: the mean over rows of |cos|³ between the embeddings of the predicted and the true prompt "
        f"(higher is better), with {e(view.confidence)} bootstrap confidence intervals (the bars). On the "
        f"leaderboard's sentence-t5-base scale, differences under ~{LEADERBOARD_NOISE} are leaderboard noise. "
        "Scores from different embedders are never compared: each has its own section. Click a column "
        f"header to sort; click a candidate for its rows. Generated at {e(t.timestamp(view.generated_at))}.</p>",
    ]
    if not view.sections:
        parts.append('<p class="note"><i>No runs yet: score a candidate (<code>prh score</code> or '
                     "<code>pytest suites/</code>) to fill this report.</i></p>")
    for section in view.sections:
        parts += _section(section, view, anchors)
    if submissions:
        parts += _submissions(submissions, anchors)
    if pages:
        parts.append('<h2 id="candidates">Candidates: per-row drill-down</h2>')
        parts.append('<p class="note">Each candidate\'s newest run on each suite: the worst rows, and the rows '
                     "that lost and gained most against the baseline (Δ = row score − the baseline's score on the "
                     f"same row), the true prompt and the prediction side by side (cut at {PROMPT_CHARS} characters; "
                     "hover for the full text).</p>")
        for page in pages:
            parts += _page(page, anchors[page.candidate], (histograms or {}).get(page.stem))
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts) + "\n"


# -- submissions ----------------------------------------------------------------------------------------------
def _submissions(submissions: Sequence[SubmissionRecord], anchors: Mapping[str, str]) -> list[str]:
    """Which candidate was submitted when, newest first, and whether it had passed the gate."""
    parts = ['<h2 id="submissions">Submissions</h2>',
             '<p class="note">Files written by <code>prh predict</code>: the candidate (by fingerprint), the gate run '
             "it relied on, and the rows repaired with the fallback prompt.</p>",
             '<table><thead><tr><th>written</th><th>candidate</th><th>fingerprint</th><th>rows</th>'
             "<th>repaired</th><th>gate</th><th>file</th></tr></thead><tbody>"]
    for submission in sorted(submissions, key=lambda s: s.created, reverse=True):
        gate = (f'<span class="warn">FORCED: {e(submission.refusal)}</span>' if submission.forced
                else f"passed: {e(submission.gate_summary)}")
        parts.append(f"<tr><td>{e(t.timestamp(datetime.fromtimestamp(submission.created, timezone.utc)))}</td>"
                     f"<td>{_candidate_link(submission.candidate, submission.candidate, anchors)}</td>"
                     f"<td><code>{e(short(submission.candidate_fingerprint))}</code></td>"
                     f"<td>{submission.n_rows}</td><td>{submission.n_repaired}</td><td>{gate}</td>"
                     f"<td><code>{e(submission.output_path)}</code></td></tr>")
    parts.append("</tbody></table>")
    return parts


# -- leaderboard ----------------------------------------------------------------------------------------------
def _section(section: Section, view: ReportView, anchors: Mapping[str, str]) -> list[str]:
    parts = [f"<section><h2>Embedder {e(section.embedder)} · fingerprint <code>{e(short(section.fingerprint))}"
             "</code></h2>"]
    if section.comparable_with_kaggle:
        parts.append('<p class="note">Same embedder as the Kaggle scorer: scores are on the leaderboard\'s scale.</p>')
    else:
        parts.append(f'<p class="warn"><b>⚠ Not comparable with the Kaggle leaderboard.</b> {e(section.embedder)} '
                     "is not the Kaggle scorer's embedder (sentence-t5-base); its SCS scale is much lower. Compare "
                     "these scores only with each other.</p>")
    scale = max([r.ci_high for r in section.records if is_number(r.ci_high)] + [r.mean for r in section.records
                                                                               if is_number(r.mean)] + [1e-9])
    if section.rows:
        parts += _leaderboard(section, view, anchors, scale)
    if section.side_runs:
        parts += _side(section, anchors, scale)
    if any(run.baseline for _, run in section.compared_runs()):
        parts += _gate(section, anchors)
    parts.append("</section>")
    return parts


def _ci_bar(run: RunRecord | None, scale: float) -> str:
    """An inline SVG: the interval as a line from 0 to the section's highest score, the mean as a dot."""
    if run is None or not is_number(run.mean):
        return ""
    low = run.ci_low if is_number(run.ci_low) else run.mean
    high = run.ci_high if is_number(run.ci_high) else run.mean

    def x(value: float) -> float:
        return round(4 + (_BAR_WIDTH - 8) * min(max(value, 0.0), scale) / scale, 1)

    return (f'<svg class="ci" width="{_BAR_WIDTH}" height="12" viewBox="0 0 {_BAR_WIDTH} 12" role="img" '
            f'aria-label="{e(t.fmt_interval(run.mean, low, high))}"><line x1="4" y1="6" x2="{_BAR_WIDTH - 4}" y2="6" '
            f'stroke="#e5e7eb" stroke-width="2"/><line x1="{x(low)}" y1="6" x2="{x(high)}" y2="6" stroke="#2563eb" '
            f'stroke-width="3"/><circle cx="{x(run.mean)}" cy="6" r="3.5" fill="#1e3a8a"/></svg>')


def _num(value: object) -> str:
    return f"{float(value):.6f}" if is_number(value) else ""


def _score_td(run: RunRecord | None, scale: float, *, show_n: bool = False, verdict: bool = False) -> str:
    """A score cell: the CI bar, the mean [CI], and with `verdict` the suite's gate verdict under it."""
    if run is None:
        return f'<td class="num" data-sort="">{MISSING}</td>'
    # the mean, its interval and n each stay whole; the cell may break between them (narrow screens)
    interval = t.fmt_interval(run.mean, run.ci_low, run.ci_high)
    mean, _, bounds = interval.partition(" ")
    text = e(mean) + (f' <span class="nowrap">{e(bounds)}</span>' if bounds else "")
    if show_n:
        text += f' <span class="nowrap">(n={run.n})</span>'
    if run.n_empty:
        text += f' <span class="incomplete">{e(t.empty_flag(run))}</span>'
    if run.st5_estimate is not None:
        text += f'<br><span class="dim" title="{e(run.st5_estimate.note)}">{e(t.st5_estimate(run.st5_estimate))}</span>'
    if verdict and run.baseline is not None:
        text += f'<br><span class="verdict {e(run.baseline.status)}">{e(t.plain_verdict(run.baseline))}</span>'
    return f'<td class="num" data-sort="{_num(run.mean)}">{_ci_bar(run, scale)}<br>{text}</td>'


def _open_table(heads: Sequence[str], css_class: str = "sortable") -> str:
    """A table's start, inside its own horizontally scrolling box (a wide table never widens the page). The
    headers of a sortable table carry `aria-sort`, which the sorting script keeps current."""
    sortable = "sortable" in css_class.split()
    cells = "".join(f'<th aria-sort="none">{e(h)}</th>' if sortable else f"<th>{e(h)}</th>" for h in heads)
    class_attribute = f' class="{e(css_class)}"' if css_class else ""
    return f'<div class="wide"><table{class_attribute}><thead><tr>{cells}</tr></thead><tbody>'


_CLOSE_TABLE = "</tbody></table></div>"


def _candidate_link(name: str, label: str, anchors: Mapping[str, str]) -> str:
    anchor = anchors.get(name)
    return f'<a href="#{e(anchor)}">{e(label)}</a>' if anchor else e(label)


def _leaderboard(section: Section, view: ReportView, anchors: Mapping[str, str], scale: float) -> list[str]:
    sizes = section.suite_sizes()
    where = "the suites of the suites file" if view.main_suites is not None else "the named suites"
    with_prediction = any(row.predicted for row in section.rows)
    heads = ["#", "candidate", "version"] + [
        t.suite_header(section, s, f"n={sizes[s]}" if sizes[s] is not None else "n varies") for s in section.suites]
    heads.append(t.mean_header(section))
    if with_prediction:
        heads.append("predicted LB [CI] ±LOO error")
    parts = [f"<h3>Leaderboard over {e(where)}</h3>", f'<p class="note rule">{e(section.ranking_rule)}</p>',
             _open_table(heads, "sortable board")]
    for row in section.rows:
        parts.append("<tr>" + "".join(_board_cells(row, section, sizes, anchors, scale, with_prediction)) + "</tr>")
    parts.append(_CLOSE_TABLE)
    notes = ["Each score ends with the suite's gate verdict against its baseline. A row labelled with settings is "
             "a run with non-default settings."]
    for row in section.rows:
        if row.not_applicable:
            notes.append(f"{row.label} is not scored on {', '.join(row.not_applicable)}: it learned from "
                         f"{'it' if len(row.not_applicable) == 1 else 'them'} (a score there would measure memorisation).")
    if any(row.incomplete for row in section.rows):
        notes.append("⚠ INCOMPLETE candidates have empty predictions: Kaggle's scorer rejects such a submission, so "
                     "they are not ranked.")
    if with_prediction:
        notes.append("Predicted LB: the leaderboard model's estimate of the public score, its interval and its "
                     "leave-one-probe-out mean absolute error; information, never a verdict.")
    if any(run.st5_estimate is not None for run in section.records):
        notes.append(t.ST5_NOTE)
    parts += [f'<p class="note">{e(note)}</p>' for note in notes]
    return parts


def _board_cells(row: CandidateRow, section: Section, sizes, anchors, scale, with_prediction) -> list[str]:
    label = row.label + (" ⚠ INCOMPLETE" if row.incomplete else "")
    cells = [f'<td class="num" data-sort="{row.rank if row.rank is not None else ""}">'
             f'{row.rank if row.rank is not None else ("⚠" if row.incomplete else MISSING)}</td>',
             f'<td class="name" data-sort="{e(row.label)}">{_candidate_link(row.candidate, label, anchors)}</td>',
             f"<td><code>{e(short(row.fingerprint))}</code></td>"]
    for suite in section.suites:
        if suite in row.not_applicable:
            cells.append(f'<td class="dim" data-sort="">n/a: {e(row.not_applicable[suite])}</td>')
        else:
            cells.append(_score_td(row.runs.get(suite), scale, show_n=sizes[suite] is None, verdict=True))
    cells.append(f'<td class="num" data-sort="{_num(row.mean_over_suites)}"><b>{e(t.mean_cell(row))}</b></td>')
    if with_prediction:
        if row.predicted:
            suite, score = row.predicted
            cells.append(f'<td class="lb" data-sort="{_num(score.estimate)}" title="{e(score.note or score.model)}">'
                         f"{e(t.predicted(score))} <br><span class=\"dim\">(from {e(suite)})</span></td>")
        else:
            cells.append(f'<td class="num" data-sort="">{MISSING}</td>')
    return cells


def _side(section: Section, anchors: Mapping[str, str], scale: float) -> list[str]:
    parts = ["<h3>Ad-hoc suites</h3>",
             '<p class="note">Data files scored on the command line (and suites no longer in the suites file): '
             "not part of the ranking above.</p>",
             _open_table(["suite", "candidate", "SCS [CI]", "n", "scored"])]
    for run in section.side_runs:
        label = run.candidate + (f" · {s}" if (s := settings_label(run)) else "")
        parts.append(f'<tr><td data-sort="{e(run.suite)}">{e(run.suite)}</td>'
                     f'<td data-sort="{e(label)}">{_candidate_link(run.candidate, label, anchors)}</td>'
                     f'{_score_td(run, scale)}<td class="num">{run.n}</td>'
                     f'<td data-sort="{run.created}">{e(t.run_date(run))}</td></tr>')
    parts.append(_CLOSE_TABLE)
    return parts


def _verdict_html(run: RunRecord) -> str:
    c = run.baseline
    status = c.status if c else ""
    text = f'<span class="{e(status)}">{e(t.plain_verdict(c))}</span>'
    if c is not None and c.raw_status and c.raw_status != c.status:
        text += f' <span class="dim">({e(t.plain_verdict(c, raw=True))} before {e(c.correction or "correction")})</span>'
    if c is not None and c.small_sample:
        text += f' <span class="stale" title="{e(c.small_sample)}">(small n)</span>'
    return text


def _gate(section: Section, anchors: Mapping[str, str]) -> list[str]:
    heads = ["candidate", "suite", "baseline (its mean)", "Δ [CI]", "verdict", "p (adjusted)", "MDE", "W/T/L",
             "design effect"]
    parts = ["<h3>Against the baselines</h3>",
             '<p class="note">Δ = candidate − baseline on the same rows with its paired bootstrap CI. A regression '
             "means the whole interval lies below −tolerance after the correction for testing the run's suites "
             "together (the verdict the suite alone gave is shown when the correction changed it). p: one-sided "
             "p-value of a regression, then adjusted. MDE: the smallest drop the suite detects with 80% power. "
             "W/T/L: rows won, tied, lost. Design effect: variance inflation from the suite's groups.</p>",
             _open_table(heads)]
    for row, run in section.compared_runs():
        c = run.baseline
        reference = MISSING if c is None or c.baseline_candidate is None else str(c.baseline_candidate)
        if c is not None and is_number(c.baseline_mean):
            reference += f" ({t.fmt(c.baseline_mean)})"
        delta = t.fmt_interval(c.delta, c.delta_low, c.delta_high, signed=True) if c else MISSING
        parts.append(
            f'<tr><td data-sort="{e(row.label)}">{_candidate_link(row.candidate, row.label, anchors)}</td>'
            f"<td>{e(run.suite)}</td><td>{e(reference)}</td>"
            f'<td class="num" data-sort="{_num(c.delta if c else None)}">{e(delta)}</td>'
            f'<td data-sort="{e(c.status if c else "")}">{_verdict_html(run)}</td>'
            f'<td class="num" data-sort="{_num(c.p_adjusted if c else None)}">{e(t.p_values(c))}</td>'
            f'<td class="num" data-sort="{_num(c.minimum_detectable_effect if c else None)}">{e(t.mde(c))}</td>'
            f'<td class="num" data-sort="{c.wins if c and c.wins is not None else ""}">{e(t.win_tie_loss(c))}</td>'
            f'<td class="num" data-sort="{_num(c.design_effect if c else None)}">{e(t.design_effect(c))}</td></tr>')
    parts.append(_CLOSE_TABLE)
    small = {run.suite: run.baseline.small_sample for _, run in section.compared_runs()
             if run.baseline and run.baseline.small_sample}
    parts += [f'<p class="note">⚠ {e(suite)}: {e(warning)}</p>' for suite, warning in small.items()]
    return parts


# -- drill-down -----------------------------------------------------------------------------------------------
def _page(page: CandidatePage, anchor: str, histogram: bytes | None) -> list[str]:
    parts = [f'<details id="{e(anchor)}"><summary>{e(page.candidate)}</summary>']
    if histogram:
        data = base64.b64encode(histogram).decode("ascii")
        parts.append(f'<img class="hist" alt="{e("per-row score histograms of " + page.candidate)}" '
                     f'src="data:image/png;base64,{data}">')
    for part in page.parts:
        parts += _part(part, page.limit)
    parts.append("</details>")
    return parts


def _part(part: PagePart, limit: int) -> list[str]:
    parts = [f"<h3>{e(part.embedder)} · <code>{e(short(part.fingerprint))}</code>"
             + ("" if part.comparable_with_kaggle else ' <span class="stale">(not Kaggle-comparable)</span>') + "</h3>",
             _open_table(["suite", "scored", "settings", "SCS [CI]", "n", "Δ vs baseline [CI]", "verdict"], "")]
    for run in part.runs:
        c = run.baseline
        parts.append(f"<tr><td>{e(run.suite)}</td><td>{e(t.run_date(run))}</td>"
                     f"<td>{e(settings_label(run) or 'default')}</td>"
                     f'<td class="num">{e(t.fmt_interval(run.mean, run.ci_low, run.ci_high))}</td>'
                     f'<td class="num">{run.n}</td>'
                     f'<td class="num">{e(t.fmt_interval(c.delta, c.delta_low, c.delta_high, signed=True) if c else MISSING)}'
                     f"</td><td>{_verdict_html(run)}</td></tr>")
    parts.append(_CLOSE_TABLE)
    if part.without_rows:
        parts.append(f'<p class="note">No stored rows for {e(", ".join(part.without_rows))} (scored before rows '
                     "were recorded).</p>")
    for heading, rows, none in selections(part, limit):
        parts.append(f"<h4>{e(heading)}</h4>")
        if not rows:
            parts.append(f'<p class="note">{e(none)}</p>')
            continue
        parts.append(_open_table(["suite", "id", "group", "score", "Δ", "true prompt", "prediction"], "sortable rows"))
        for item in rows:
            row = item.row
            parts.append(
                f"<tr><td>{e(item.suite)}</td><td>{e(row.id)}</td><td>{e(row.group or MISSING)}</td>"
                f'<td class="num" data-sort="{_num(row.score)}">{e(t.fmt(row.score))}</td>'
                f'<td class="num" data-sort="{_num(item.delta)}">{e(t.fmt(item.delta, signed=True))}</td>'
                f'<td class="text" title="{e(row.truth)}">{e(t.clip(row.truth, PROMPT_CHARS))}</td>'
                f'<td class="text" title="{e(row.prediction)}">{e(t.clip(row.prediction, PROMPT_CHARS) or "(empty)")}'
                "</td></tr>")
        parts.append(_CLOSE_TABLE)
    return parts
