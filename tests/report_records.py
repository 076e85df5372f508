"""Run records and stored rows built by hand for the report tests: every number is known in advance."""

from __future__ import annotations

from harness.store import RunRecord, RunRow
from harness.verdict import Comparison

MINILM = ("minilm", "minilm-fingerprint")
SHIPPED = ("public", "leaked", "synthetic-hard")


def record(candidate: str, suite: str, mean: float, *, run_id: int, embedder: tuple[str, str] = MINILM,
           baseline: Comparison | None = None, n: int = 10, created: float = 1_700_000_000.0, **extra) -> RunRecord:
    name, fingerprint = embedder
    return RunRecord(candidate=candidate, candidate_fingerprint=f"fp-{candidate}", suite=suite,
                     suite_fingerprint=f"sfp-{suite}", embedder=name, embedder_fingerprint=fingerprint,
                     comparable_with_kaggle=name == "sentence-t5-base", n=n, mean=mean, ci_low=mean - 0.01,
                     ci_high=mean + 0.01, baseline=baseline, run_id=run_id, created=created, **extra)


def rows(suite: str, scores: list[float], baseline: list[float | None] | None = None, *,
         truth: str = "Rewrite this as a {i}-line poem.", prediction: str = "Make it a poem, take {i}.",
         groups: bool = False) -> list[RunRow]:
    """Rows `{suite}-{i}` with the given scores (and the baseline's scores on the same rows)."""
    baseline = baseline or [None] * len(scores)
    return [RunRow(i, f"{suite}-{i}", f"g{i % 3}" if groups else None, score, prediction.format(i=i),
                   truth.format(i=i), base) for i, (score, base) in enumerate(zip(scores, baseline))]


def compared(delta: float = -0.02, **extra) -> Comparison:
    return Comparison("no-difference", "see the paired CI", baseline_candidate="base", baseline_mean=0.5, delta=delta,
                      delta_low=delta - 0.01, delta_high=delta + 0.01, **extra)
