"""The leaderboard as data (`reports/leaderboard.json`): the markdown's content, same sections, same ranking,
with the full fingerprints, the run settings and every gate statistic."""

from __future__ import annotations

import json
from collections.abc import Mapping

from harness.report.model import ReportView, Section, is_number, settings_label
from harness.store import RunRecord


def render(view: ReportView) -> str:
    payload = {
        "generated_at": view.generated_at.isoformat(timespec="seconds"),
        "main_suites": list(view.main_suites) if view.main_suites is not None else None,
        "sections": [_section(section) for section in view.sections],
    }
    return json.dumps(payload, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _score(run: RunRecord) -> dict:
    return {
        "mean": number(run.mean),
        "ci_low": number(run.ci_low),
        "ci_high": number(run.ci_high),
        "n": run.n,
        "n_empty": run.n_empty,
        "confidence": run.confidence,
        "ci_method": run.ci_method,
        "n_resamples": run.n_resamples,
        "seed": run.seed,
        "signed": run.signed,
        "suite_kind": run.suite_kind,
        "suite_fingerprint": run.suite_fingerprint,
        "run_id": run.run_id,
        "predicted_lb": clean(run.predicted_lb.to_dict()) if run.predicted_lb else None,
        "scorer_parity": clean(run.scorer_parity.to_dict()) if run.scorer_parity else None,
        "st5_estimate": clean(run.st5_estimate.to_dict()) if run.st5_estimate else None,
    }


def _section(section: Section) -> dict:
    return {
        "embedder": section.embedder,
        "embedder_fingerprint": section.fingerprint,
        "comparable_with_kaggle": section.comparable_with_kaggle,
        "suites": list(section.suites),
        "candidates": [{
            "rank": row.rank,
            "candidate": row.candidate,
            "candidate_fingerprint": row.fingerprint,
            "settings": row.settings,
            "scores": {suite: _score(run) for suite, run in row.runs.items()},
            "mean_over_suites": number(row.mean_over_suites),
            "ranked_suites": list(row.ranked_suites),
            "not_applicable": dict(row.not_applicable),
            "missing_suites": section.missing_suites(row),
            "incomplete": row.incomplete,
            "predicted_lb": ({"suite": row.predicted[0], **clean(row.predicted[1].to_dict())}
                             if row.predicted else None),
            "baseline": {suite: clean(run.baseline.to_dict()) for suite, run in row.runs.items() if run.baseline},
        } for row in section.rows],
        "adhoc": [{"suite": run.suite, "candidate": run.candidate, "candidate_fingerprint": run.candidate_fingerprint,
                   "settings": settings_label(run), **_score(run)} for run in section.side_runs],
    }


def number(value: object) -> float | None:
    """NaN and infinities are not JSON: they become null rather than an unparsable file."""
    return float(value) if is_number(value) else None


def clean(value: object) -> object:
    if isinstance(value, float):
        return number(value)
    if isinstance(value, Mapping):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value
