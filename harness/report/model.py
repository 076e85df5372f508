"""The report's view model: what every output shows, decided once from the run history.

Markdown, JSON, PNG, HTML, the terminal and the candidate pages all read a `ReportView` (leaderboard) or
a `CandidatePage` (drill-down); none of them ranks, filters or picks runs itself, so they cannot
disagree. Nothing here computes a score, an interval or a verdict: those travel in the `RunRecord`s.

The rules of the leaderboard:
- scores from different embedders, or different builds (fingerprints) of one, never share a table: each
  (embedder, fingerprint) is a `Section`;
- the main ranking is over the *suite set of the suites file* (`main_suites`); runs on ad-hoc data files
  (and on suites no longer in the file) are listed apart and never empty the ranking;
- a ranking never orders means taken over different rows: it is over the suites every ranked candidate
  has (`Section.ranked_suites`), so a suite some candidate learned from is left out of every candidate's
  mean (with a note naming it), and a candidate missing a ranked suite is listed unranked, with what it misses;
- a run with non-default settings (signed, resamples, CI method, seed, confidence) is its own row,
  labelled with them, never replacing a default run;
- a candidate with empty predictions is flagged and not ranked (Kaggle's scorer rejects it).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from harness.stats import DEFAULT_METHOD, TIE_EPSILON
from harness.store import RunRecord, RunRow
from harness.verdict import PredictedScore

DEFAULT_TITLE = "Prompt-recovery leaderboard"
#: below this, a difference in mean SCS is within the noise of the Kaggle leaderboard (sentence-t5 scale)
LEADERBOARD_NOISE = 0.02
MISSING = "—"
SHORT_FINGERPRINT = 12
#: the settings of a default run; any other value makes a run its own, labelled row
DEFAULT_RESAMPLES = 10_000
DEFAULT_CI_METHOD = DEFAULT_METHOD
DEFAULT_SEED = 0
DEFAULT_CONFIDENCE = 0.95
#: rows per table of a candidate page (worst, lost most, gained most)
PAGE_ROWS = 15
LEARNED_FROM = "learned from it"
#: part of every page's content key: bump it when a page's layout changes, so written pages are redrawn
PAGE_FORMAT = 3

RowSource = Callable[[Sequence[int]], Mapping[int, Sequence[RunRow]]] | Mapping[int, Sequence[RunRow]]


# -- labels -------------------------------------------------------------------------------------------------
def settings_label(record: RunRecord) -> str:
    """The run's non-default settings, e.g. "signed · 2,000 resamples · percentile"; "" for a default run."""
    parts = []
    if record.signed:
        parts.append("signed")
    if record.n_resamples != DEFAULT_RESAMPLES:
        parts.append(f"{record.n_resamples:,} resamples")
    if record.ci_method != DEFAULT_CI_METHOD:
        parts.append(record.ci_method)
    if record.seed != DEFAULT_SEED:
        parts.append(f"seed {record.seed}")
    if not math.isclose(record.confidence, DEFAULT_CONFIDENCE):
        parts.append(f"{record.confidence * 100:g}% CI")
    return " · ".join(parts)


def short(fingerprint: str, length: int = SHORT_FINGERPRINT) -> str:
    return fingerprint[:length]


def safe_file_stem(name: str) -> str:
    """A file name for a candidate that cannot escape its folder or collide with another candidate's:
    characters other than letters, digits, `.`, `_` and `-` become `_`, and a short hash of the real name
    is added whenever anything was changed (so "a:b" and "a/b" get different files)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip(".") or "candidate"
    if stem == name and len(stem) <= 80:
        return stem
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return f"{stem[:80]}-{digest}"


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def confidence_label(records: Iterable[RunRecord]) -> str:
    levels = sorted({round(r.confidence * 100, 6) for r in records})
    return " / ".join(f"{level:g}%" for level in levels) if levels else "95%"


# -- picking runs -------------------------------------------------------------------------------------------
def run_key(record: RunRecord) -> tuple[str, str, str, str, str]:
    """What makes two runs the same leaderboard cell: embedder build, suite, candidate version, settings."""
    return (record.embedder, record.embedder_fingerprint, record.suite, record.candidate_fingerprint,
            settings_label(record))


def is_older(record: RunRecord, other: RunRecord) -> bool:
    if record.run_id is not None and other.run_id is not None:
        return record.run_id < other.run_id
    return record.created < other.created


def latest_runs(records: Sequence[RunRecord]) -> list[RunRecord]:
    """The newest record per (embedder, embedder fingerprint, suite, candidate fingerprint, settings).

    The history keeps every scoring ever made; a leaderboard shows each candidate's current score only.
    Newest means the highest `run_id` when both records were stored, else the latest `created`; on a tie
    the later record in `records` wins. Records keep the order in which their key first appeared.
    """
    kept: dict[tuple[str, str, str, str, str], RunRecord] = {}
    for record in records:
        key = run_key(record)
        current = kept.get(key)
        if current is None or not is_older(record, current):
            kept[key] = record
    return list(kept.values())


# -- the leaderboard ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CandidateRow:
    """One candidate version with one set of settings, in one section: its latest run per main suite."""

    candidate: str
    fingerprint: str
    settings: str
    runs: Mapping[str, RunRecord]
    #: main suites it is not ranked on, with why (it learned from them)
    not_applicable: Mapping[str, str]
    #: the suites the ranking is over (the section's `ranked_suites`: the same for every row)
    ranked_suites: tuple[str, ...]
    #: its mean over `ranked_suites`; None when it misses one of them (then it is not ranked)
    mean_over_suites: float | None
    display_name: str = ""
    rank: int | None = None
    #: the predicted leaderboard score to show: the one of the most trusted model (lowest LOO error)
    predicted: tuple[str, PredictedScore] | None = None

    @property
    def n_empty(self) -> int:
        return sum(run.n_empty for run in self.runs.values())

    @property
    def incomplete(self) -> bool:
        return self.n_empty > 0

    @property
    def missing(self) -> list[str]:
        """Ranked suites it has no run on: why it is not ranked."""
        return [suite for suite in self.ranked_suites if suite not in self.runs]

    @property
    def label(self) -> str:
        """The name as tables show it: display name, then the settings when not the default."""
        return f"{self.display_name} · {self.settings}" if self.settings else self.display_name


@dataclass(frozen=True)
class EmbedderBuild:
    """The embedder build (name and fingerprint) a group of runs was scored with: scores of different
    builds are never compared, so the leaderboard's sections and a candidate page's parts are one each."""

    embedder: str
    fingerprint: str
    comparable_with_kaggle: bool

    @property
    def build_order(self) -> tuple[bool, str, str]:
        """Sort key: Kaggle-comparable builds first (they are the ones a reader will quote), then by name."""
        return (not self.comparable_with_kaggle, self.embedder, self.fingerprint)


@dataclass(frozen=True)
class Section(EmbedderBuild):
    """All runs scored by one embedder with one fingerprint: the only scores that may share a table."""

    #: main suites with at least one run here, in suites-file order
    suites: tuple[str, ...]
    rows: tuple[CandidateRow, ...]
    #: latest runs on ad-hoc data files and on suites outside the suites file, by suite then best first
    side_runs: tuple[RunRecord, ...]
    #: the suites the ranking is over: `suites` less those some candidate learned from
    ranked_suites: tuple[str, ...] = ()
    #: suites left out of the ranking → the candidates that learned from them
    left_out: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def ranking_rule(self) -> str:
        """The rule the ranking follows, in words, as every output states it."""
        rule = (f"Ranked by the unweighted mean over {', '.join(self.ranked_suites) or 'no suite'}: the suites every "
                "ranked candidate was scored on, so every mean is over the same rows")
        if self.left_out:
            rule += " (left out: " + "; ".join(
                f"{suite}, which {', '.join(names)} learned from" for suite, names in self.left_out.items()) + ")"
        rule += "."
        if any(row.rank is None for row in self.rows):
            rule += " Candidates missing one of them, or with empty predictions, are listed below, unranked."
        return rule

    def suite_sizes(self) -> dict[str, int | None]:
        """n per main suite when every candidate was scored on the same number of rows, else None."""
        sizes: dict[str, int | None] = {}
        for suite in self.suites:
            ns = {row.runs[suite].n for row in self.rows if suite in row.runs}
            sizes[suite] = ns.pop() if len(ns) == 1 else None
        return sizes

    def compared_runs(self) -> list[tuple[CandidateRow, RunRecord]]:
        """Main runs in ranking order, suite by suite."""
        return [(row, row.runs[suite]) for row in self.rows for suite in self.suites if suite in row.runs]

    @property
    def records(self) -> list[RunRecord]:
        return [run for row in self.rows for run in row.runs.values()] + list(self.side_runs)


@dataclass(frozen=True)
class ReportView:
    """Everything the leaderboard outputs show."""

    title: str
    generated_at: datetime
    sections: tuple[Section, ...]
    #: the suites file's suites (None: every named suite in the history counts as main)
    main_suites: tuple[str, ...] | None

    @property
    def records(self) -> list[RunRecord]:
        return [record for section in self.sections for record in section.records]

    @property
    def confidence(self) -> str:
        return confidence_label(self.records)


def build_view(records: Sequence[RunRecord], *, main_suites: Sequence[str] | None = None,
               learned_from: Mapping[str, Collection[str]] | None = None, title: str = DEFAULT_TITLE,
               generated_at: datetime | None = None) -> ReportView:
    """The leaderboard of `records` (the whole history may be passed: only the latest runs are shown).

    `main_suites`: the suite set the main ranking is over (the suites file's); None counts every named
    suite. `learned_from`: candidate fingerprint → suites it learned from (ranked on the others).
    `generated_at` defaults to now (UTC); pass it for reproducible output.
    """
    latest = latest_runs(records)
    main = tuple(dict.fromkeys(main_suites)) if main_suites is not None else None
    grouped: dict[tuple[str, str], list[RunRecord]] = {}
    for record in latest:
        grouped.setdefault((record.embedder, record.embedder_fingerprint), []).append(record)
    sections = [_section(embedder, fingerprint, section_records, main, learned_from or {})
                for (embedder, fingerprint), section_records in grouped.items()]
    sections.sort(key=lambda s: s.build_order)
    moment = generated_at if generated_at is not None else datetime.now(timezone.utc)
    return ReportView(title, moment, tuple(sections), main)


def _is_main(record: RunRecord, main: tuple[str, ...] | None) -> bool:
    return record.suite_kind == "named" and (main is None or record.suite in main)


def _section(embedder: str, fingerprint: str, records: list[RunRecord], main: tuple[str, ...] | None,
             learned_from: Mapping[str, Collection[str]]) -> Section:
    main_records = [r for r in records if _is_main(r, main)]
    present = {r.suite for r in main_records}
    suites = tuple(s for s in main if s in present) if main is not None else tuple(sorted(present))
    by_row: dict[tuple[str, str], dict[str, RunRecord]] = {}
    for record in main_records:
        by_row.setdefault((record.candidate_fingerprint, settings_label(record)), {})[record.suite] = record
    # The ranking is over the suites every ranked candidate has: a suite some candidate learned from is left
    # out for all, so no mean is ever taken over other rows than another's.
    left_out: dict[str, list[str]] = {}
    for (candidate_fingerprint, _), runs in by_row.items():
        for suite in suites:
            if suite in learned_from.get(candidate_fingerprint, ()):
                name = next(iter(runs.values())).candidate
                left_out.setdefault(suite, [])
                if name not in left_out[suite]:
                    left_out[suite].append(name)
    ranked_suites = tuple(s for s in suites if s not in left_out)
    rows = [_candidate_row(runs, settings, suites, ranked_suites, learned_from.get(fp, ()))
            for (fp, settings), runs in by_row.items()]
    rows.sort(key=lambda row: (row.mean_over_suites is None or row.incomplete, -(row.mean_over_suites or 0.0),
                               row.candidate, row.fingerprint, row.settings))
    names = _display_names(rows)
    ranked, rank = [], 0
    for row in rows:
        number = None
        if row.mean_over_suites is not None and not row.incomplete:
            rank += 1
            number = rank
        ranked.append(replace(row, display_name=names[row.fingerprint], rank=number))
    side = [r for r in records if not _is_main(r, main)]
    side.sort(key=lambda r: (r.suite, not is_number(r.mean), -(r.mean if is_number(r.mean) else 0.0), r.candidate))
    return Section(
        embedder=embedder, fingerprint=fingerprint,
        # one record claiming non-comparability is enough to warn: better loud than misleading
        comparable_with_kaggle=all(r.comparable_with_kaggle for r in records),
        suites=suites, rows=tuple(ranked), side_runs=tuple(side), ranked_suites=ranked_suites,
        left_out={suite: tuple(names) for suite, names in left_out.items()})


def _candidate_row(runs: dict[str, RunRecord], settings: str, suites: Sequence[str], ranked_suites: Sequence[str],
                   learned: Collection[str]) -> CandidateRow:
    newest = max(runs.values(), key=lambda r: (r.run_id if r.run_id is not None else -1, r.created))
    not_applicable = {suite: LEARNED_FROM for suite in suites if suite in learned}
    mean = None
    if ranked_suites and all(suite in runs for suite in ranked_suites):
        means = [runs[suite].mean for suite in ranked_suites]
        # each suite weighs the same whatever its size: suites are different questions, not more rows
        mean = math.fsum(means) / len(means) if all(map(is_number, means)) else None
    ordered = {suite: runs[suite] for suite in suites if suite in runs}
    predictions = [(suite, run.predicted_lb) for suite, run in ordered.items()
                   if run.predicted_lb is not None and suite not in not_applicable]
    predicted = min(predictions, key=lambda p: p[1].loo_mae) if predictions else None
    return CandidateRow(newest.candidate, newest.candidate_fingerprint, settings, ordered, not_applicable,
                        tuple(ranked_suites), mean, predicted=predicted)


def _display_names(rows: Sequence[CandidateRow]) -> dict[str, str]:
    """Candidate names by fingerprint, with a short fingerprint added where two versions share a name."""
    versions: dict[str, set[str]] = {}
    for row in rows:
        versions.setdefault(row.candidate, set()).add(row.fingerprint)
    return {row.fingerprint: row.candidate if len(versions[row.candidate]) == 1
            else f"{row.candidate} ({short(row.fingerprint)})" for row in rows}


# -- candidate pages ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PageRow:
    """One row of a candidate page: where it comes from and how it scored."""

    suite: str
    row: RunRow

    @property
    def delta(self) -> float | None:
        return self.row.delta


@dataclass(frozen=True)
class PagePart(EmbedderBuild):
    """A candidate's rows under one embedder build: the runs they come from and the three selections."""

    runs: tuple[RunRecord, ...]
    rows_by_suite: Mapping[str, tuple[RunRow, ...]]
    worst: tuple[PageRow, ...]
    lost: tuple[PageRow, ...]
    gained: tuple[PageRow, ...]
    #: suites whose run has no stored rows (scored before rows were recorded)
    without_rows: tuple[str, ...] = ()

    @property
    def has_baseline(self) -> bool:
        return any(r.baseline_score is not None for rows in self.rows_by_suite.values() for r in rows)


@dataclass(frozen=True)
class CandidatePage:
    """The drill-down of one candidate name: per embedder build, its newest run on each suite."""

    candidate: str
    stem: str
    parts: tuple[PagePart, ...]
    limit: int = PAGE_ROWS
    key: str = field(default="", compare=False)


def page_runs(records: Sequence[RunRecord], candidate: str, *, suite: str | None = None) -> dict[tuple[str, str], list[RunRecord]]:
    """The runs a candidate's page shows: per (embedder, fingerprint) and suite, its newest unsigned run (a
    signed run only where there is no unsigned one: signed scores are another metric)."""
    chosen: dict[tuple[str, str, str], RunRecord] = {}
    for record in records:
        if record.candidate != candidate or (suite is not None and record.suite != suite):
            continue
        key = (record.embedder, record.embedder_fingerprint, record.suite)
        current = chosen.get(key)
        if current is None or _preferred(record, current):
            chosen[key] = record
    parts: dict[tuple[str, str], list[RunRecord]] = {}
    for (embedder, fingerprint, _), record in chosen.items():
        parts.setdefault((embedder, fingerprint), []).append(record)
    return parts


def _preferred(record: RunRecord, current: RunRecord) -> bool:
    """Whether `record` should replace `current` on a page: unsigned beats signed, then newer beats older."""
    if record.signed != current.signed:
        return not record.signed
    return not is_older(record, current)


def build_page(records: Sequence[RunRecord], candidate: str, rows: RowSource | None, *,
               suite: str | None = None, limit: int = PAGE_ROWS,
               suite_order: Sequence[str] = ()) -> CandidatePage:
    """The drill-down of `candidate` (a name) from the history and the runs' stored rows.

    Worst: lowest scores. Lost / gained: the most negative / positive Δ = score − the baseline's score on
    the same row (only runs compared with a baseline have one). Rows of all suites compete in one list.
    """
    grouped = page_runs(records, candidate, suite=suite)
    wanted = [r.run_id for runs in grouped.values() for r in runs if r.run_id is not None]
    fetched = _fetch(rows, wanted)
    order = {name: i for i, name in enumerate(suite_order)}
    parts = []
    for (embedder, fingerprint), runs in grouped.items():
        runs.sort(key=lambda r: (r.suite_kind != "named", order.get(r.suite, len(order)), r.suite))
        by_suite = {run.suite: tuple(fetched.get(run.run_id, ())) for run in runs}
        pooled = [PageRow(s, r) for s, suite_rows in by_suite.items() for r in suite_rows]
        with_delta = [p for p in pooled if p.delta is not None]
        parts.append(PagePart(
            embedder=embedder, fingerprint=fingerprint,
            comparable_with_kaggle=all(r.comparable_with_kaggle for r in runs), runs=tuple(runs),
            rows_by_suite=by_suite,
            worst=tuple(sorted(pooled, key=lambda p: (p.row.score, p.suite, p.row.position))[:limit]),
            # a tie is a tie as win/tie/loss counts it (float32 noise and the baselines' 6-decimal rounding)
            lost=tuple(sorted((p for p in with_delta if p.delta < -TIE_EPSILON),
                              key=lambda p: (p.delta, p.suite, p.row.position))[:limit]),
            gained=tuple(sorted((p for p in with_delta if p.delta > TIE_EPSILON),
                                key=lambda p: (-p.delta, p.suite, p.row.position))[:limit]),
            without_rows=tuple(s for s, suite_rows in by_suite.items() if not suite_rows)))
    parts.sort(key=lambda p: p.build_order)
    key_text = repr((PAGE_FORMAT, candidate, limit, [(p.embedder, p.fingerprint, [(r.run_id, r.suite, r.created) for r in p.runs],
                                         {s: len(v) for s, v in p.rows_by_suite.items()}) for p in parts]))
    return CandidatePage(candidate, safe_file_stem(candidate), tuple(parts), limit,
                         key=hashlib.sha256(key_text.encode("utf-8")).hexdigest()[:16])


def _fetch(rows: RowSource | None, run_ids: Sequence[int]) -> Mapping[int, Sequence[RunRow]]:
    if rows is None or not run_ids:
        return {}
    if isinstance(rows, Mapping):
        return {i: rows[i] for i in run_ids if i in rows}
    return rows(run_ids)


def candidate_names(view: ReportView) -> list[str]:
    """Every candidate name with a page, in leaderboard order (ranked sections first), then side runs."""
    names: dict[str, None] = {}
    for section in view.sections:
        for row in section.rows:
            names.setdefault(row.candidate)
    for section in view.sections:
        for run in section.side_runs:
            names.setdefault(run.candidate)
    return list(names)
