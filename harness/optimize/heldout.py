"""The one way an optimiser reports a result: the found candidate and its starting point, each scored
once on the held-out split through `harness.evaluation`, with a paired bootstrap CI of the difference.

Kept apart from the optimisers on purpose: they receive the train (and dev) split only, and this module
is the only one that reads the held-out rows, after the optimisation has finished.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.candidates.base import Candidate
from harness.data import Suite
from harness.embedders import Embedder
from harness.errors import ConfigError
from harness.evaluation import DEFAULT_BOOTSTRAP, BootstrapSettings, Result, evaluate
from harness.stats import ConfidenceInterval, paired_bootstrap_delta
from harness.store import Store


@dataclass(frozen=True)
class HeldoutComparison:
    """The found candidate vs the start on the same held-out rows."""

    found: Result
    start: Result
    delta: ConfidenceInterval

    def to_dict(self) -> dict:
        """The held-out numbers, flat, as the CLIs print them."""
        return {
            "heldout_suite": self.found.suite, "heldout_n": self.found.n,
            "heldout_n_groups": self.found.interval.n_groups,
            "heldout_score": self.found.mean, "heldout_ci_low": self.found.interval.low,
            "heldout_ci_high": self.found.interval.high,
            "start_heldout_score": self.start.mean, "start_heldout_ci_low": self.start.interval.low,
            "start_heldout_ci_high": self.start.interval.high,
            "delta": self.delta.estimate, "delta_ci_low": self.delta.low, "delta_ci_high": self.delta.high,
            "confidence": self.delta.confidence, "ci_method": self.delta.method,
            "heldout_complete": self.found.complete and self.start.complete,
            "embedder": self.found.embedder, "embedder_fingerprint": self.found.embedder_fingerprint,
            "comparable_with_kaggle": self.found.comparable_with_kaggle,
        }


def compare_on_heldout(found: Candidate, start: Candidate, heldout: Suite, embedder: Embedder, *,
                       store: Store | None = None, bootstrap: BootstrapSettings = DEFAULT_BOOTSTRAP) -> HeldoutComparison:
    """Score both candidates on `heldout` (clustered by group when it has groups) and the paired CI of
    found − start. Call it once, after the optimisation: it is the only look at the held-out rows."""
    if len(heldout) == 0:
        raise ConfigError("the held-out split is empty: give it a fraction > 0 (e.g. --split 0.7,0,0.3)")
    found_result = evaluate(found, heldout, embedder, store=store, bootstrap=bootstrap)
    start_result = evaluate(start, heldout, embedder, store=store, bootstrap=bootstrap)
    delta = paired_bootstrap_delta(found_result.scores, start_result.scores, groups=heldout.groups,
                                   confidence=bootstrap.confidence, n_resamples=bootstrap.n_resamples,
                                   method=bootstrap.method, seed=bootstrap.seed)
    return HeldoutComparison(found_result, start_result, delta)
