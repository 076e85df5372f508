"""PNG figures: the leaderboard (means with CI bars, one subplot per embedder build) and a candidate's
per-row score histogram over its baseline's.

matplotlib is imported inside the functions only (importing the package must stay cheap), and through the
object-oriented Agg canvas, so no global pyplot backend is switched under the caller's feet. Scores are
drawn from 0, so a bar's height is never exaggerated by a cut axis; suite names are wrapped (never rotated
or overlapped) and the figure widens with the number of suites.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.files import write_png_atomic
from harness.report.model import CandidatePage, ReportView, Section, is_number, settings_label, short
from harness.report.text import clip, fmt
from harness.store import RunRecord

_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
_LEGEND_NAME_CHARS = 36
#: horizontal room per suite on the x axis, and the characters per line of its wrapped label
_INCHES_PER_SUITE = 1.15
_LABEL_CHARS = 14
_LABEL_LINES = 3
_DPI = 110


@dataclass
class _Series:
    """One candidate (version and settings) in one subplot: its runs by x position."""

    label: str
    style: tuple[str, str]
    hollow: bool = False
    points: dict[str, RunRecord] = field(default_factory=dict)


def suite_label(name: str, n: int | None = None) -> str:
    """A suite's tick label: wrapped to a few short lines, a path shortened to its end, n below."""
    text = name if len(name) <= _LABEL_CHARS * _LABEL_LINES else "…" + name[-(_LABEL_CHARS * _LABEL_LINES - 1):]
    lines = textwrap.wrap(text, _LABEL_CHARS, break_long_words=True, break_on_hyphens=True)[:_LABEL_LINES]
    if n is not None:
        lines.append(f"n={n}")
    return "\n".join(lines)


def leaderboard_figure(view: ReportView):
    """The leaderboard figure (a matplotlib Figure with an Agg canvas), or None with nothing to plot."""
    if not view.sections:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    plotted = [(section, _x_suites(section), _series(section)) for section in view.sections]
    width = 4.5 + _INCHES_PER_SUITE * max(max(len(xs) for _, xs, _ in plotted), 4)
    heights = [max(3.4, 1.4 + 0.24 * len(series)) for _, _, series in plotted]
    figure = Figure(figsize=(width, sum(heights)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(plotted), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    # one colour and marker per candidate across all subplots, so a reader can follow it between embedders
    styles: dict[tuple[str, str], int] = {}
    for _, _, series in plotted:
        for item in series:
            styles.setdefault(item.style, len(styles))
    for ax, (section, xs, series) in zip(axes, plotted, strict=True):
        _plot_section(ax, section, xs, series, styles)
    return figure


def render_plot(view: ReportView, path: str | Path) -> Path | None:
    """Write the leaderboard PNG atomically; None (nothing written) when there is nothing to plot."""
    return _write_figure(leaderboard_figure(view), path, dpi=_DPI)


def _write_figure(figure: Any, path: str | Path, *, dpi: int) -> Path | None:
    """Write `figure` as PNG atomically; None (nothing written) when there is no figure (nothing to plot)."""
    return None if figure is None else write_png_atomic(path, figure, dpi=dpi)


def _x_suites(section: Section) -> list[str]:
    """The main suites, then the ad-hoc ones (after a separator line)."""
    return list(section.suites) + list(dict.fromkeys(run.suite for run in section.side_runs))


def _series(section: Section) -> list[_Series]:
    series: dict[tuple[str, str], _Series] = {}
    for row in section.rows:
        label = clip(row.label, _LEGEND_NAME_CHARS)  # long names would squeeze the axes
        if row.mean_over_suites is not None and len(row.ranked_suites) < len(section.suites):
            label += f" ({fmt(row.mean_over_suites)} on {len(row.ranked_suites)}/{len(section.suites)} suites)"
        elif row.mean_over_suites is not None:
            label += f" ({fmt(row.mean_over_suites)})"
        elif row.missing:
            label += f" (missing {len(row.missing)} suite(s))"
        if row.incomplete:
            label += " ⚠ INCOMPLETE"
        series[(row.fingerprint, row.settings)] = _Series(label, (row.fingerprint, row.settings), row.incomplete,
                                                          dict(row.runs))
    for run in section.side_runs:
        key = (run.candidate_fingerprint, settings_label(run))
        if key not in series:
            name = run.candidate + (f" · {key[1]}" if key[1] else "")
            series[key] = _Series(clip(name, _LEGEND_NAME_CHARS) + " (ad-hoc only)", key)
        series[key].points[run.suite] = run
        series[key].hollow = series[key].hollow or run.n_empty > 0
    return list(series.values())


def _plot_section(ax, section: Section, xs: Sequence[str], series: Sequence[_Series],
                  styles: Mapping[tuple[str, str], int]) -> None:
    from matplotlib import colormaps

    palette = colormaps["tab10" if len(styles) <= 10 else "tab20"]
    count = len(series)
    step = min(0.8 / max(count, 1), 0.18)
    lows, highs = [0.0], [0.0]
    for index, item in enumerate(series):
        offset = (index - (count - 1) / 2) * step
        positions, means, below, above = [], [], [], []
        for position, suite in enumerate(xs):
            run = item.points.get(suite)
            if run is None or not is_number(run.mean):
                continue
            low = run.ci_low if is_number(run.ci_low) else run.mean
            high = run.ci_high if is_number(run.ci_high) else run.mean
            positions.append(position + offset)
            means.append(run.mean)
            below.append(max(run.mean - low, 0.0))
            above.append(max(high - run.mean, 0.0))
            lows.append(min(low, run.mean))
            highs.append(max(high, run.mean))
        style = styles[item.style]
        color = palette(style % palette.N)
        ax.errorbar(positions, means, yerr=[below, above], fmt=_MARKERS[style % len(_MARKERS)], color=color,
                    markerfacecolor="none" if item.hollow else color, markersize=6, capsize=3,
                    elinewidth=1.2, label=item.label)
    sizes = section.suite_sizes()
    side_sizes = {run.suite: run.n for run in section.side_runs}
    ax.set_xticks(range(len(xs)))
    ax.set_xticklabels([suite_label(s, sizes.get(s) if s in sizes else side_sizes.get(s)) for s in xs],
                       fontsize="small")
    if section.suites and len(xs) > len(section.suites):
        ax.axvline(len(section.suites) - 0.5, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlim(-0.6, len(xs) - 0.4)
    # from 0 (or below, for signed scores): a cut axis would exaggerate every difference
    top = max(highs)
    ax.set_ylim(min(lows), top + max(0.08 * top, 0.02))
    ax.set_ylabel("mean SCS")
    ax.grid(axis="y", alpha=0.3)
    title = f"{section.embedder} · {short(section.fingerprint)}"
    if not section.comparable_with_kaggle:
        title += " (not comparable with Kaggle LB)"
    ax.set_title(title, color="black" if section.comparable_with_kaggle else "firebrick")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False,
              title="candidate (mean over suites)", title_fontsize="small")


# -- candidate histogram --------------------------------------------------------------------------------------
def histogram_figure(page: CandidatePage):
    """Per suite, the histogram of the candidate's per-row scores over its baseline's on the same rows.
    None when no run of the page has stored rows."""
    panels = [(part, suite, rows) for part in page.parts for suite, rows in part.rows_by_suite.items() if rows]
    if not panels:
        return None
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    columns = min(3, len(panels))
    lines = -(-len(panels) // columns)
    width, height = 3.6 * columns + 0.4, 2.8 * lines + 0.4
    # fixed margins (in inches) rather than a constrained layout: laying the text out again costs more than
    # the drawing, and these panels are all alike
    figure = Figure(figsize=(width, height))
    figure.subplots_adjust(left=0.7 / width, right=1 - 0.15 / width, bottom=0.55 / height, top=1 - 0.35 / height,
                           wspace=0.35, hspace=0.75)
    FigureCanvasAgg(figure)
    axes = figure.subplots(lines, columns, squeeze=False).ravel()
    several_builds = len(page.parts) > 1
    for ax, (part, suite, rows) in zip(axes, panels):
        scores = np.array([r.score for r in rows])
        baseline = np.array([r.baseline_score for r in rows if r.baseline_score is not None])
        low = min(0.0, float(scores.min()), float(baseline.min()) if baseline.size else 0.0)
        edges = np.linspace(low, 1.0, 21)
        # stairs over precomputed counts: one artist per histogram instead of one patch per bar
        ax.stairs(np.histogram(scores, edges)[0], edges, fill=True, color="tab:blue", alpha=0.75,
                  label=f"{clip(page.candidate, 24)} ({fmt(scores.mean())})")
        if baseline.size:
            ax.stairs(np.histogram(baseline, edges)[0], edges, color="black", linewidth=1.4,
                      label=f"baseline ({fmt(baseline.mean())})")
        title = clip(suite, 34) + (f" · {part.embedder}" if several_builds else "")
        ax.set_title(f"{title} (n={len(rows)})", fontsize="medium")
        ax.set_xlabel("row SCS")
        ax.set_ylabel("rows")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # row counts are whole numbers
        ax.set_xlim(low, 1.0)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize="x-small", frameon=False)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    return figure


def render_histogram(page: CandidatePage, path: str | Path) -> Path | None:
    return _write_figure(histogram_figure(page), path, dpi=90)
