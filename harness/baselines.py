"""Baselines: the stored reference a candidate must not fall significantly below.

A baseline is a JSON file per (embedder, suite), `baselines/<embedder>/<suite>.json`, holding the
reference candidate's per-row scores, so a reviewer reads a change in a diff and the comparison can be
*paired* (same rows, candidate − baseline), which is far more sensitive than comparing two means.

Verdict: a regression is when the whole paired 95% CI of (candidate − baseline) lies below
−tolerance, never merely "the mean went down". A baseline made on other rows (the suite changed) or by
another build of the embedder is stale: comparing with it would be meaningless, so it is reported as
such and must be refreshed with --update-baselines.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from harness.errors import DataError
from harness.evaluate import DEFAULT_BOOTSTRAP, BootstrapSettings, Result
from harness.stats import paired_bootstrap_delta

#: Differences smaller than this are numerical noise (stored scores are rounded to 6 decimals), not news.
DEFAULT_TOLERANCE = 0.001
_SCORE_DECIMALS = 6


@dataclass(frozen=True)
class Baseline:
    suite: str
    suite_fingerprint: str
    embedder: str
    embedder_fingerprint: str
    candidate: str
    candidate_fingerprint: str
    candidate_spec: str
    n: int
    mean: float
    ci_low: float
    ci_high: float
    created: str
    scores: dict[str, float]


@dataclass(frozen=True)
class Comparison:
    """The paired comparison of a result with its baseline (see the module docstring for statuses)."""

    status: str  # regression | improvement | no-difference | no-baseline | stale
    message: str
    baseline_candidate: str | None = None
    baseline_mean: float | None = None
    delta: float | None = None
    delta_low: float | None = None
    delta_high: float | None = None

    @property
    def is_regression(self) -> bool:
        return self.status == "regression"

    def to_dict(self) -> dict:
        return asdict(self)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def baseline_path(directory: str | Path, embedder: str, suite: str) -> Path:
    return Path(directory) / _safe_name(embedder) / f"{_safe_name(suite)}.json"


def load_baseline(directory: str | Path, embedder: str, suite: str) -> Baseline | None:
    """The stored baseline, or None when there is none. A malformed file is an error naming it."""
    path = baseline_path(directory, embedder, suite)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        data["scores"] = {str(k): float(v) for k, v in data["scores"].items()}
        return Baseline(**{k: data[k] for k in Baseline.__dataclass_fields__})
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
        raise DataError(path, f"not a valid baseline file ({type(exc).__name__}: {exc}); "
                              "regenerate it with --update-baselines") from None


def write_baseline(directory: str | Path, result: Result) -> Path:
    """Accept `result` as the new baseline. Refuses incomplete results: a reference with missing answers
    would make every later comparison look better than it is."""
    if not result.complete:
        raise ValueError(f"refusing to store an incomplete result as the baseline of suite '{result.suite}': "
                         f"{len(result.empty_prediction_ids)} empty predictions")
    path = baseline_path(directory, result.embedder, result.suite)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "suite": result.suite, "suite_fingerprint": result.suite_fingerprint,
        "embedder": result.embedder, "embedder_fingerprint": result.embedder_fingerprint,
        "candidate": result.candidate, "candidate_fingerprint": result.candidate_fingerprint,
        "candidate_spec": result.candidate_spec, "n": result.n,
        "mean": round(result.mean, _SCORE_DECIMALS), "ci_low": round(result.interval.low, _SCORE_DECIMALS),
        "ci_high": round(result.interval.high, _SCORE_DECIMALS),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "scores": {i: round(float(s), _SCORE_DECIMALS) for i, s in zip(result.ids, result.scores)},
    }
    # One score per line keeps diffs readable; write-then-rename keeps the file whole if interrupted.
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".baseline-", suffix=".json")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(temp, path)
    return path


def compare_with_baseline(
    result: Result,
    baseline: Baseline | None,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    bootstrap: BootstrapSettings = DEFAULT_BOOTSTRAP,
) -> Comparison:
    """Paired bootstrap CI of (candidate − baseline) on the suite's rows, resampled by group if any."""
    if baseline is None:
        return Comparison("no-baseline", f"no baseline for suite '{result.suite}' under embedder "
                                         f"'{result.embedder}'; create one with --update-baselines")
    common = dict(baseline_candidate=baseline.candidate, baseline_mean=baseline.mean)
    if baseline.embedder_fingerprint != result.embedder_fingerprint:
        return Comparison("stale", f"the baseline of suite '{result.suite}' was scored by another build of "
                                   f"embedder '{result.embedder}' (fingerprint {baseline.embedder_fingerprint}, "
                                   f"now {result.embedder_fingerprint}); refresh it with --update-baselines", **common)
    if baseline.suite_fingerprint != result.suite_fingerprint or set(baseline.scores) != set(result.ids):
        return Comparison("stale", f"suite '{result.suite}' changed since its baseline was stored "
                                   f"(fingerprint {baseline.suite_fingerprint}, now {result.suite_fingerprint}); "
                                   "refresh it with --update-baselines", **common)
    reference = np.array([baseline.scores[i] for i in result.ids])
    interval = paired_bootstrap_delta(result.scores, reference, groups=result.groups,
                                      confidence=bootstrap.confidence, n_resamples=bootstrap.n_resamples,
                                      method=bootstrap.method, seed=bootstrap.seed)
    numbers = dict(delta=interval.estimate, delta_low=interval.low, delta_high=interval.high, **common)
    summary = (f"'{result.candidate}' {result.mean:.4f} vs baseline '{baseline.candidate}' {baseline.mean:.4f} "
               f"on suite '{result.suite}': Δ = {interval.estimate:+.4f}, "
               f"{interval.confidence:.0%} CI [{interval.low:+.4f}, {interval.high:+.4f}]")
    if interval.high < -tolerance:
        return Comparison("regression", f"significantly worse: {summary}", **numbers)
    if interval.low > tolerance:
        return Comparison("improvement", f"significantly better: {summary}", **numbers)
    return Comparison("no-difference", f"no significant difference: {summary}", **numbers)
