"""Calibration results as markdown, JSON and a scatter plot. Formats only: every number was computed in
`harness.leaderboard.calibrate`. Tables follow `harness.report`'s style (GitHub markdown via tabulate)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from tabulate import tabulate

from harness.files import write_atomic, write_text_atomic
from harness.leaderboard.calibrate import CalibrationRow, Correlation, rank_rows
from harness.leaderboard.probes import Probe

MARKDOWN_NAME = "calibration.md"
JSON_NAME = "calibration.json"
PLOT_NAME = "calibration.png"


def _num(value: float, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _corr(value: Correlation) -> str:
    if not math.isfinite(value.estimate):
        return "undefined"
    return f"{_num(value.estimate, True)} [{_num(value.low, True)}, {_num(value.high, True)}]"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(rows: Sequence[CalibrationRow], probes: Sequence[Probe], *, notes: Sequence[str] = (),
                    probes_source: str = "", leaderboard_noise: float = 0.01) -> str:
    """The ranking of (suite, embedder) pairs as leaderboard predictors, then every probe's scores."""
    ranked = rank_rows(rows)
    confidence = f"{ranked[0].spearman.confidence:.0%}" if ranked else "95%"
    lines = ["# Leaderboard calibration", "",
             f"{len(probes)} probes{f' from `{probes_source}`' if probes_source else ''}. For each suite and "
             "embedder: the correlation, across probes, of the probes' local mean SCS with their public "
             f"leaderboard scores. {confidence} intervals resample the suite's rows (whole groups where it has "
             f"groups) and add N(0, {leaderboard_noise:g}²) noise to the leaderboard scores. With few probes a "
             "correlation can take only a few values: add probes (docs/optimize.md) before trusting a ranking.",
             "", "Offsets (local − leaderboard) mean something only for a Kaggle-comparable embedder "
             "(sentence-t5-base); other embedders have their own scale.", ""]
    table = []
    for rank, row in enumerate(ranked, start=1):
        table.append([str(rank), _md(row.suite), _md(row.embedder) + ("" if row.comparable_with_kaggle
                                                                      else " (not Kaggle-comparable)"),
                      str(row.n_rows) + (f" ({row.n_groups} groups)" if row.n_groups else ""), _corr(row.spearman),
                      _corr(row.pearson), _num(row.mean_offset, True), _num(row.mean_abs_offset)])
    headers = ["rank", "suite", "embedder", "rows", f"Spearman [{confidence} CI]", f"Pearson [{confidence} CI]",
               "mean offset", "mean abs offset"]
    lines += [tabulate(table, headers=headers, tablefmt="github", disable_numparse=True), ""]
    for note in notes:
        lines.append(f"- {_md(note)}")
    incomplete = [(row, p) for row in ranked for p in row.probes if p.n_empty]
    for row, p in incomplete:
        lines.append(f"- probe {_md(p.probe)} on {_md(row.suite)}: {p.n_empty} empty predictions (scored 0; the "
                     "suite lacks the texts the probe needs)")
    if notes or incomplete:
        lines.append("")
    lines += ["## Probe scores (mean SCS on each suite)", ""]
    columns = [(row.suite, row.embedder) for row in ranked]
    by_cell = {(row.suite, row.embedder, p.probe): p for row in ranked for p in row.probes}
    probe_table = []
    for probe in probes:
        cells = []
        for suite, embedder in columns:
            score = by_cell.get((suite, embedder, probe.name))
            cells.append("—" if score is None else f"{_num(score.mean)} [{_num(score.ci_low)}, {_num(score.ci_high)}]")
        probe_table.append([_md(probe.name), _num(probe.leaderboard_score), *cells])
    headers = ["probe", "leaderboard", *[f"{_md(s)} · {_md(e)}" for s, e in columns]]
    lines += [tabulate(probe_table, headers=headers, tablefmt="github", disable_numparse=True), ""]
    return "\n".join(lines)


def render_json(rows: Sequence[CalibrationRow], probes: Sequence[Probe], *, notes: Sequence[str] = ()) -> str:
    def clean(value):
        if isinstance(value, float):
            return value if math.isfinite(value) else None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    payload = {"probes": [{"name": p.name, "prompt": p.prompt, "leaderboard_score": p.leaderboard_score,
                           "row_dependent": p.row_dependent, "note": p.note} for p in probes],
               "results": [clean(row.to_dict()) for row in rank_rows(rows)], "notes": list(notes)}
    return json.dumps(payload, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def render_plot(rows: Sequence[CalibrationRow], path: str | Path) -> Path | None:
    """Leaderboard score (x) against local mean SCS with CI (y): one subplot per embedder (their scales
    differ), one series per suite, probes labelled; the diagonal where the embedder is Kaggle's."""
    if not rows:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    embedders = list(dict.fromkeys((row.embedder, row.embedder_fingerprint) for row in rows))
    figure = Figure(figsize=(6.5 * len(embedders), 5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(embedders), squeeze=False)[0]
    for ax, (name, fingerprint) in zip(axes, embedders):
        mine = [row for row in rows if (row.embedder, row.embedder_fingerprint) == (name, fingerprint)]
        for index, row in enumerate(mine):
            xs = [p.leaderboard_score for p in row.probes]
            ys = [p.mean for p in row.probes]
            errors = [[max(p.mean - p.ci_low, 0.0) for p in row.probes], [max(p.ci_high - p.mean, 0.0) for p in row.probes]]
            label = f"{row.suite} (ρ={_num(row.spearman.estimate, True)}, r={_num(row.pearson.estimate, True)})"
            ax.errorbar(xs, ys, yerr=errors, fmt="o", capsize=3, color=f"C{index}", label=label)
        for p in mine[0].probes:
            ax.annotate(p.probe if len(p.probe) <= 28 else p.probe[:27] + "…", (p.leaderboard_score, p.mean),
                        textcoords="offset points", xytext=(4, 4), fontsize="x-small")
        comparable = mine[0].comparable_with_kaggle
        if comparable:
            low, high = ax.get_xlim()
            ax.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=0.8, label="local = leaderboard")
        ax.set_xlabel("public leaderboard score")
        ax.set_ylabel("local mean SCS")
        ax.set_title(f"{name} · {fingerprint[:12]}" + ("" if comparable else "\n(not comparable with Kaggle LB)"),
                     color="black" if comparable else "firebrick", fontsize="medium")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small", loc="best")
    return write_atomic(path, lambda handle: figure.savefig(handle, format="png", dpi=110))


def write_calibration(rows: Sequence[CalibrationRow], probes: Sequence[Probe], directory: str | Path, *,
                      notes: Sequence[str] = (), probes_source: str = "", leaderboard_noise: float = 0.01) -> list[Path]:
    """calibration.md, calibration.json and calibration.png in `directory`; returns the paths written."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    markdown = folder / MARKDOWN_NAME
    write_text_atomic(markdown, render_markdown(rows, probes, notes=notes, probes_source=probes_source,
                                                leaderboard_noise=leaderboard_noise))
    data = folder / JSON_NAME
    write_text_atomic(data, render_json(rows, probes, notes=notes))
    written = [markdown, data]
    plot = render_plot(rows, folder / PLOT_NAME)
    if plot is not None:
        written.append(plot)
    return written
