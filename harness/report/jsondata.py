"""The leaderboard as data (`reports/leaderboard.json`): the markdown's content, same sections, same ranking,
with the full fingerprints, the run settings and every gate statistic."""

from __future__ import annotations

import json

from harness.report.model import ReportView, Section, settings_label
from harness.run import RunRecord, json_number, json_safe, run_json


def render(view: ReportView) -> str:
    payload = {
        "generated_at": view.generated_at.isoformat(timespec="seconds"),
        "main_suites": list(view.main_suites) if view.main_suites is not None else None,
        "sections": [_section(section) for section in view.sections],
    }
    return json.dumps(payload, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _score(run: RunRecord) -> dict:
    """One run, in the one JSON schema of a run (`harness.run.run_json`, also `prh score --json`'s)."""
    return run_json(run)


def _section(section: Section) -> dict:
    return {
        "embedder": section.embedder,
        "embedder_fingerprint": section.fingerprint,
        "comparable_with_kaggle": section.comparable_with_kaggle,
        "suites": list(section.suites),
        "ranked_suites": list(section.ranked_suites),
        "left_out": {suite: list(names) for suite, names in section.left_out.items()},
        "ranking_rule": section.ranking_rule,
        "candidates": [{
            "rank": row.rank,
            "candidate": row.candidate,
            "candidate_fingerprint": row.fingerprint,
            "settings": row.settings,
            "scores": {suite: _score(run) for suite, run in row.runs.items()},
            "mean_over_suites": number(row.mean_over_suites),
            "ranked_suites": list(row.ranked_suites),
            "not_applicable": dict(row.not_applicable),
            "missing_suites": row.missing,
            "incomplete": row.incomplete,
            "predicted_lb": ({"suite": row.predicted[0], **clean(row.predicted[1].to_dict())}
                             if row.predicted else None),
            "baseline": {suite: clean(run.baseline.to_dict()) for suite, run in row.runs.items() if run.baseline},
        } for row in section.rows],
        "adhoc": [{"suite": run.suite, "candidate": run.candidate, "candidate_fingerprint": run.candidate_fingerprint,
                   "settings": settings_label(run), **_score(run)} for run in section.side_runs],
    }


#: NaN and infinities become null (the one JSON-safe writer is harness.run's)
number, clean = json_number, json_safe
