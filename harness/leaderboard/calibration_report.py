"""Calibration results as markdown, JSON and a scatter plot. Formats only: every number was computed in
`harness.leaderboard.calibrate`. Tables follow `harness.report`'s style (GitHub markdown via tabulate)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from tabulate import tabulate

from harness.files import write_png_atomic, write_text_atomic
from harness.leaderboard.book import Probe
from harness.leaderboard.calibrate import CalibrationRow, Correlation, rank_rows

MARKDOWN_NAME = "calibration.md"
JSON_NAME = "calibration.json"
PLOT_NAME = "calibration.png"


def _num(value: float | None, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _corr(value: Correlation) -> str:
    if not math.isfinite(value.estimate):
        return "undefined"
    return f"{_num(value.estimate, True)} [{_num(value.low, True)}, {_num(value.high, True)}]"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _short(text: str, width: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[:width - 1] + "…"


#: Shown beside an offline embedder's probe correlations (issue 16): both numbers are honest, and they
#: answer different questions. The figures come from bench/st5_scale.py on the public st5-scored rows.
OFFLINE_RANKING_NOTE = (
    "Why an offline embedder's Spearman with the public probes is low or negative, while the README says to "
    "rank candidates with it: most public probes are constant strings searched against sentence-t5 "
    "(their gains exist only under sentence-t5), and the natural-language constants span only 0.56-0.66 on "
    "the leaderboard, too narrow a range for another embedder to order. That is a statement about constant "
    "strings, not about generated answers: on 500 real rows with per-row sentence-t5 scores "
    "(st5_scored/dolly_gemini_500.csv), MiniLM's per-row SCS orders rows as sentence-t5 does with Spearman "
    "0.77 (Pearson 0.75; `python bench/st5_scale.py`). Rank generated candidates offline; do not rank "
    "constant or searched strings with an embedder other than sentence-t5.")


def embedder_notes(rows: Sequence[CalibrationRow]) -> list[str]:
    """The notes a reader needs beside these rows: the offline-ranking note when any row's embedder is not
    Kaggle's scorer."""
    return [OFFLINE_RANKING_NOTE] if any(not row.comparable_with_kaggle for row in rows) else []


def render_markdown(rows: Sequence[CalibrationRow], probes: Sequence[Probe], *, notes: Sequence[str] = (),
                    probes_source: str = "", leaderboard_noise: float = 0.01) -> str:
    """The (suite, embedder) pairs ranked by their leaderboard model's leave-one-probe-out error, then per
    pair: the LOO table, the probes set aside and why, and every probe's local scores."""
    ranked = rank_rows(rows)
    confidence = f"{ranked[0].spearman.confidence:.0%}" if ranked else "95%"
    lines = ["# Leaderboard calibration", "",
             f"{len(probes)} probes{f' from `{probes_source}`' if probes_source else ''}. For each suite and "
             "embedder: the leaderboard model (local mean SCS → public leaderboard) fitted on the probes the "
             "embedder can judge, with its **leave-one-probe-out** (LOO) error, its honest accuracy; and the "
             "correlation across probes of local and leaderboard scores. "
             f"{confidence} intervals resample the suite's rows (whole groups where it has groups), the probes, "
             f"and add N(0, {leaderboard_noise:g}²) leaderboard noise.", ""]
    table = []
    for rank, row in enumerate(ranked, start=1):
        fit = row.fit
        table.append([str(rank), _md(row.suite), _md(row.embedder) + ("" if row.comparable_with_kaggle
                                                                      else " (not Kaggle-comparable)"),
                      str(row.n_rows) + (f" ({row.n_groups} groups)" if row.n_groups else ""),
                      f"{len(fit.fitted)} / {len(row.probes)}" if fit else f"0 / {len(row.probes)}",
                      _num(fit.loo_mae) if fit else "refused", _num(fit.loo_max_error) if fit else "—",
                      _num(fit.loo_spearman, True) if fit else "—", _corr(row.spearman), f"{row.seconds:.1f}"])
    headers = ["rank", "suite", "embedder", "rows", "probes fitted / scored", "LOO MAE", "LOO max", "LOO Spearman",
               f"Spearman, all scored [{confidence} CI]", "seconds"]
    lines += [tabulate(table, headers=headers, tablefmt="github", disable_numparse=True), ""]
    notes = [*notes, *embedder_notes(rows)]
    for note in notes:
        lines.append(f"- {_md(note)}")
    if notes:
        lines.append("")
    for row in ranked:
        lines += [f"## {_md(row.suite)} · {_md(row.embedder)}", ""]
        if row.fit is None:
            lines += [f"No model: {_md(row.refused or '')}", ""]
        else:
            fit = row.fit
            lines += [f"Map: {fit.map.describe()}, fitted on local means in [{fit.x_range[0]:.4f}, "
                      f"{fit.x_range[1]:.4f}]. LOO over every scored probe, set-aside ones included: MAE "
                      f"{fit.loo_mae_all:.3f}.", ""]
            loo = [[_md(p.probe), _num(p.leaderboard_score), _num(p.local_mean), _num(p.predicted),
                    f"[{_num(p.low)}, {_num(p.high)}]", _num(p.error, True),
                    "fitted" + (" (extrapolated)" if p.extrapolating else "") if p.fitted else f"set aside: {p.rule}"]
                   for p in fit.probes]
            lines += [tabulate(loo, headers=["probe", "leaderboard", "local mean", "LOO predicted", "interval",
                                             "error", "status"], tablefmt="github", disable_numparse=True), ""]
            for aside in fit.set_aside:
                lines.append(f"- set aside **{_md(aside.probe)}** ({aside.rule}): {_md(aside.reason)}")
        for excluded in row.excluded:
            lines.append(f"- left out **{_md(excluded['probe'])}**: {_md(excluded['reason'])}")
        for p in row.probes:
            if p.n_empty:
                lines.append(f"- probe {_md(p.probe)}: {p.n_empty} empty predictions (scored 0; the suite lacks the "
                             "texts the probe needs)")
        lines.append("")
    return "\n".join(lines)


def _clean(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def render_json(rows: Sequence[CalibrationRow], probes: Sequence[Probe], *, notes: Sequence[str] = (),
                models: Sequence[str] = ()) -> str:
    """`probes` (the book), `results` (one per suite × embedder, see CalibrationRow.to_dict), `notes`, and
    `models` (what was written, old → new)."""
    payload = {"probes": [{"name": p.name, "kind": p.kind, "submission": p.submission, "public": p.public,
                           "private": p.private, "reproducible": p.reproducible, "exclude": p.exclude,
                           "note": p.note, "source": p.source} for p in probes],
               "results": [_clean(row.to_dict()) for row in rank_rows(rows)],
               "notes": [*notes, *embedder_notes(rows)],
               "models": list(models)}
    return json.dumps(payload, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def render_plot(rows: Sequence[CalibrationRow], path: str | Path) -> Path | None:
    """Local mean SCS (x) against leaderboard score (y), one subplot per (suite, embedder): fitted probes
    as dots, set-aside probes as crosses, the fitted map as a line."""
    fitted_rows = [row for row in rows if row.probes]
    if not fitted_rows:
        return None
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.5 * len(fitted_rows), 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(fitted_rows), squeeze=False)[0]
    for ax, row in zip(axes, fitted_rows):
        aside = {s.probe for s in row.fit.set_aside} if row.fit else set()
        for p in row.probes:
            marker, color = ("x", "firebrick") if p.probe in aside else ("o", "C0")
            ax.errorbar([p.mean], [p.leaderboard_score], xerr=[[max(p.mean - p.ci_low, 0)], [max(p.ci_high - p.mean, 0)]],
                        fmt=marker, color=color, capsize=2)
            ax.annotate(_short(p.probe, 24), (p.mean, p.leaderboard_score), textcoords="offset points", xytext=(3, 3),
                        fontsize="xx-small")
        if row.fit is not None:
            grid = np.linspace(min(p.mean for p in row.probes), max(p.mean for p in row.probes), 50)
            ax.plot(grid, row.fit.map.predict(grid), color="grey", linewidth=1,
                    label=f"{row.fit.map.kind}, LOO MAE {row.fit.loo_mae:.3f}")
            ax.legend(fontsize="x-small", loc="best")
        ax.set_xlabel(f"local mean SCS ({row.embedder})")
        ax.set_ylabel("public leaderboard score")
        ax.set_title(f"{row.suite} · {row.embedder}" + ("" if row.comparable_with_kaggle else " (not Kaggle's scorer)"),
                     fontsize="medium")
        ax.grid(alpha=0.3)
    return write_png_atomic(path, figure, dpi=110)


def write_calibration(rows: Sequence[CalibrationRow], probes: Sequence[Probe], directory: str | Path, *,
                      notes: Sequence[str] = (), probes_source: str = "", leaderboard_noise: float = 0.01,
                      models: Sequence[str] = ()) -> list[Path]:
    """calibration.md, calibration.json and calibration.png in `directory`; returns the paths written."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    markdown = folder / MARKDOWN_NAME
    write_text_atomic(markdown, render_markdown(rows, probes, notes=notes, probes_source=probes_source,
                                                leaderboard_noise=leaderboard_noise))
    data = folder / JSON_NAME
    write_text_atomic(data, render_json(rows, probes, notes=notes, models=models))
    written = [markdown, data]
    plot = render_plot(rows, folder / PLOT_NAME)
    if plot is not None:
        written.append(plot)
    return written
