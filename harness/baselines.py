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
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from harness.errors import DataError
from harness.evaluation import DEFAULT_BOOTSTRAP, BootstrapSettings, Result
from harness.files import write_json_atomic
from harness.hashing import json_fingerprint
from harness.stats import (
    DEFAULT_METHOD,
    design_effect,
    minimum_detectable_effect,
    paired_bootstrap_test,
    small_sample_warning,
    win_tie_loss,
)
from harness.verdict import IMPROVEMENT, NO_BASELINE, NO_DIFFERENCE, REGRESSION, STALE, Comparison

#: The paired gate uses the studentized interval whatever `--ci-method` the suite's own interval uses:
#: bench/coverage.py measured its one-sided test closest to its level on real pairs of equal mean at the
#: shipped suite shapes (family-wise with Holm: 6.9% where percentile gave 9.3% and BCa 9.3%, for two
#: different prompts; ≤ 3.1% for a prompt and its paraphrase), and its paired Δ interval closest to 95%.
GATE_METHOD = DEFAULT_METHOD
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

    @property
    def fingerprint(self) -> str:
        """Which baseline this is, by content: its reference candidate, builds and per-row scores. A verdict
        records it (`Comparison.baseline_fingerprint`), so its rows are known to be this baseline's."""
        return json_fingerprint({"candidate_fingerprint": self.candidate_fingerprint, "scores": self.scores,
                                 "embedder_fingerprint": self.embedder_fingerprint,
                                 "suite_fingerprint": self.suite_fingerprint})


@dataclass(frozen=True)
class BaselineUpdate:
    """What `--update-baselines` did to one suite's baseline: written (old → new) or refused."""

    suite: str
    embedder: str
    path: Path
    new_candidate: str
    new_mean: float
    old_candidate: str | None = None
    old_mean: float | None = None
    comparison: Comparison | None = None
    #: why this suite's new baseline was refused (it would hide a regression, or it is incomplete)
    refused: str | None = None
    #: why an acceptable update was not written: another suite of the same update was refused
    held_back: str | None = None

    @property
    def written(self) -> bool:
        return self.refused is None and self.held_back is None

    def describe(self) -> str:
        """One line for the terminal: suite, old → new, and the paired Δ with its CI when there was one."""
        old = "none" if self.old_mean is None else f"{self.old_candidate} {self.old_mean:.4f}"
        line = f"{self.suite} ({self.embedder}): {old} → {self.new_candidate} {self.new_mean:.4f}"
        c = self.comparison
        if c is not None and c.delta is not None:
            line += f", Δ {c.delta:+.4f} [{c.delta_low:+.4f}, {c.delta_high:+.4f}] ({c.raw_status or c.status})"
        if self.refused:
            return f"REFUSED {line}: {self.refused}"
        if self.held_back:
            return f"NOT WRITTEN {line}: {self.held_back}"
        return f"{line} → {self.path}"


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
    return write_json_atomic(path, data)


def compare_with_baseline(
    result: Result,
    baseline: Baseline | None,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    bootstrap: BootstrapSettings = DEFAULT_BOOTSTRAP,
) -> Comparison:
    """Paired bootstrap CI of (candidate − baseline) on the suite's rows, resampled by group if any."""
    if baseline is None:
        return Comparison(NO_BASELINE, f"no baseline for suite '{result.suite}' under embedder "
                                         f"'{result.embedder}'; create one with --update-baselines")
    common = dict(baseline_candidate=baseline.candidate, baseline_mean=baseline.mean,
                  baseline_candidate_fingerprint=baseline.candidate_fingerprint,
                  baseline_fingerprint=baseline.fingerprint, baseline_n=baseline.n)
    if baseline.embedder_fingerprint != result.embedder_fingerprint:
        return Comparison(STALE, f"the baseline of suite '{result.suite}' was scored by another build of "
                                   f"embedder '{result.embedder}' (fingerprint {baseline.embedder_fingerprint}, "
                                   f"now {result.embedder_fingerprint}); refresh it with --update-baselines", **common)
    if baseline.suite_fingerprint != result.suite_fingerprint or set(baseline.scores) != set(result.ids):
        return Comparison(STALE, f"suite '{result.suite}' changed since its baseline was stored "
                                   f"(fingerprint {baseline.suite_fingerprint}, now {result.suite_fingerprint}); "
                                   "refresh it with --update-baselines", **common)
    reference = np.array([baseline.scores[i] for i in result.ids])
    test = paired_bootstrap_test(result.scores, reference, tolerance=tolerance, groups=result.groups,
                                 confidence=bootstrap.confidence, n_resamples=bootstrap.n_resamples,
                                 method=GATE_METHOD, seed=bootstrap.seed)
    interval = test.interval
    counts = win_tie_loss(result.scores, reference)
    n_groups = interval.n_groups
    numbers = dict(
        delta=interval.estimate, delta_low=interval.low, delta_high=interval.high, tolerance=tolerance,
        p_regression=test.p_regression, wins=counts.wins, ties=counts.ties, losses=counts.losses,
        # Identical answers (every row tied) have no paired spread: an MDE from rounding noise would claim a
        # sensitivity the suite does not have, so there is none.
        minimum_detectable_effect=None if counts.wins == counts.losses == 0 else minimum_detectable_effect(
            result.scores, reference, groups=result.groups, tolerance=tolerance, alpha=(1 - bootstrap.confidence) / 2),
        # how much the suite's clustering inflates the variance of its mean score (1 = as good as independent rows)
        design_effect=design_effect(result.scores, result.groups) if result.groups else None,
        small_sample=small_sample_warning(result.n, n_groups), **common)
    summary = (f"'{result.candidate}' {result.mean:.4f} vs baseline '{baseline.candidate}' {baseline.mean:.4f} "
               f"on suite '{result.suite}': Δ = {interval.estimate:+.4f}, "
               f"{interval.confidence:.0%} CI [{interval.low:+.4f}, {interval.high:+.4f}]")
    if interval.high < -tolerance:
        status, text = REGRESSION, f"significantly worse: {summary}"
    elif interval.low > tolerance:
        status, text = IMPROVEMENT, f"significantly better: {summary}"
    else:
        status, text = NO_DIFFERENCE, f"no significant difference: {summary}"
    return Comparison(status, text, raw_status=status, **numbers)


def update_baselines(directory: str | Path, family: Sequence[tuple[Result, Comparison | None]], *,
                     force: bool = False) -> list[BaselineUpdate]:
    """Accept each result as its suite's new baseline, all or nothing.

    A candidate significantly worse than the current baseline on a suite (the per-suite verdict, before any
    multiple-suite correction: a lost reference costs more than a refused update) is refused unless `force`;
    an incomplete result is always refused. When any suite is refused, no file is written at all (the others
    are held back, saying so): a set of baselines from two different references would make the next run's
    verdicts disagree with each other. Every update says old → new either way.
    """
    updates = [_planned_update(directory, result, comparison, force=force) for result, comparison in family]
    refused = [update.suite for update in updates if update.refused]
    if refused:
        reason = (f"held back, baselines are updated all or nothing and {', '.join(refused)} was refused; no "
                  "baseline file changed")
        return [update if update.refused else replace(update, held_back=reason) for update in updates]
    for result, _ in family:  # decided first, written after: nothing is written unless everything is
        write_baseline(directory, result)
    return updates


def update_baseline(directory: str | Path, result: Result, comparison: Comparison | None, *,
                    force: bool = False) -> BaselineUpdate:
    """One suite's `update_baselines`."""
    return update_baselines(directory, [(result, comparison)], force=force)[0]


def _planned_update(directory: str | Path, result: Result, comparison: Comparison | None, *,
                    force: bool) -> BaselineUpdate:
    """What updating this suite's baseline would do (old → new), or why it is refused; writes nothing."""
    old = load_baseline(directory, result.embedder, result.suite)
    update = BaselineUpdate(result.suite, result.embedder, baseline_path(directory, result.embedder, result.suite),
                            result.candidate, result.mean, old.candidate if old else None,
                            old.mean if old else None, comparison)
    if not result.complete:
        return replace(update, refused=f"{len(result.empty_prediction_ids)} empty predictions")
    if not force and comparison is not None and (comparison.raw_status or comparison.status) == REGRESSION:
        return replace(update, refused="significantly worse than the current baseline; "
                                       "use --update-baselines=force to replace it anyway")
    return update


#: one-sided level of the gate: "the 95% two-sided CI lies entirely below −tolerance"
GATE_ALPHA = 0.025


def apply_correction(comparisons: Sequence[Comparison | None], correction: str = "holm") -> list[Comparison | None]:
    """Correct the regression verdicts of one run's suites for testing several suites at once.

    With `holm`, a suite is a regression only when its Holm-adjusted one-sided p-value is below the gate's
    level, which keeps the chance that an unchanged candidate fails *any* suite of the run at most that
    level. A suite that was a regression on its own but not after the correction becomes "no difference",
    keeping `raw_status` so reports show both. `none` gates each suite on its own.
    """
    if correction == "none":
        return [c if c is None else c.with_changes(correction="none", p_adjusted=c.p_regression)
                for c in comparisons]
    from harness.stats import holm_adjust

    tested = [i for i, c in enumerate(comparisons) if c is not None and c.p_regression is not None]
    adjusted = dict(zip(tested, holm_adjust([comparisons[i].p_regression for i in tested]))) if tested else {}
    corrected: list[Comparison | None] = []
    for index, comparison in enumerate(comparisons):
        if index not in adjusted:
            corrected.append(comparison)
            continue
        p_adjusted = float(adjusted[index])
        status = comparison.status
        message = comparison.message
        if comparison.raw_status == REGRESSION and p_adjusted >= GATE_ALPHA:
            status = NO_DIFFERENCE
            message = (f"not significant after the {correction} correction over {len(tested)} suites "
                       f"(p = {comparison.p_regression:.4f}, adjusted {p_adjusted:.4f}): {message}")
        corrected.append(comparison.with_changes(status=status, message=message, p_adjusted=p_adjusted,
                                                 correction=correction))
    return corrected
