"""Run records and stored rows built by hand for the report tests: every number is known in advance."""

from __future__ import annotations

from dataclasses import fields

from harness.run import BootstrapSettings, RunRecord, RunSpec
from harness.store import RunRow
from harness.verdict import Comparison

MINILM = ("minilm", "minilm-fingerprint")
SHIPPED = ("public", "leaked", "synthetic-hard")


#: RunRecord's settings by their record names, and where they live in the run's identity
_BOOTSTRAP_NAMES = {"n_resamples": "n_resamples", "ci_method": "method", "confidence": "confidence", "seed": "seed"}
_SPEC_NAMES = {f.name for f in fields(RunSpec)} - {"bootstrap"}


def record(candidate: str, suite: str, mean: float, *, run_id: int | None = None,
           embedder: tuple[str, str] = MINILM, fingerprint: str | None = None, baseline: Comparison | None = None,
           n: int = 10, half_width: float = 0.01, created: float = 1_700_000_000.0, **extra) -> RunRecord:
    """THE RunRecord builder of the tests: a run of `candidate` on `suite` with `mean` and a CI of ±`half_width`.
    `extra` may name identity fields (`suite_kind`, `signed`, `candidate_spec`, …), settings by their record
    names (`n_resamples`, `ci_method`, `confidence`, `seed`) or record fields (`n_empty`, `session`, …)."""
    name, embedder_fingerprint = embedder
    spec_values = {key: extra.pop(key) for key in list(extra) if key in _SPEC_NAMES}
    bootstrap = {_BOOTSTRAP_NAMES[key]: extra.pop(key) for key in list(extra) if key in _BOOTSTRAP_NAMES}
    spec = RunSpec(candidate=candidate, candidate_fingerprint=fingerprint or f"fp-{candidate}", suite=suite,
                   suite_fingerprint=f"sfp-{suite}", embedder=name, embedder_fingerprint=embedder_fingerprint,
                   comparable_with_kaggle=name == "sentence-t5-base", bootstrap=BootstrapSettings(**bootstrap),
                   **spec_values)
    return RunRecord(spec=spec, n=n, mean=mean, ci_low=mean - half_width, ci_high=mean + half_width,
                     baseline=baseline, run_id=run_id, created=created, **extra)


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
