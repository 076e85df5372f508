"""One candidate scored on one suite: its identity (`RunSpec`), what the history keeps of it (`RunRecord`),
and the one JSON schema of a run (`run_json`, for `prh score --json` and `reports/leaderboard.json`).

The identity of a run (which candidate, which suite, which embedder, each with its fingerprint, and the
settings that change the numbers) is written once, in `RunSpec`, and *held* by every type that talks about
the run: `harness.evaluation.Result` (the scored rows), `RunRecord` (the history's row), and through them the
Workspace's `Scored` and the reports. They read it through `SpecView`'s read-only properties
(`record.candidate` is `record.spec.candidate`), so no field is copied from one type into another and no
copy can drift. (inspect_ai's `EvalSpec` plays this part for its `EvalLog`.)

Stored records carry a format number: `RunRecord.from_dict` reads both today's nested form and the flat
form the store wrote before `RunSpec` existed, so old histories keep loading.

Standard library only: the store, the reports and the pytest plugin import it without numpy.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Protocol

from harness.verdict import Comparison, PredictedScore, ScorerParity, St5Estimate

#: the layout of a stored `RunRecord` (absent in records written before it existed: the flat layout, 1)
RUN_FORMAT = 2
#: where a run's suite came from: a suite of the suites file, or a data file named on the command line
NAMED, FILE = "named", "file"


@dataclass(frozen=True)
class BootstrapSettings:
    """How intervals are computed: seeded, so the same rows always give the same interval."""

    n_resamples: int = 10_000
    #: harness.stats.DEFAULT_METHOD, spelled out: this module imports no numpy (tests check they agree)
    method: str = "studentized"
    confidence: float = 0.95
    seed: int = 0


DEFAULT_BOOTSTRAP = BootstrapSettings()


@dataclass(frozen=True)
class RunSpec:
    """What was scored, by what, and how: everything that must match for two runs' numbers to be the same
    question. Two runs with different fingerprints or settings are never mixed (reports keep them apart)."""

    candidate: str
    candidate_fingerprint: str
    suite: str
    suite_fingerprint: str
    embedder: str
    embedder_fingerprint: str
    comparable_with_kaggle: bool
    #: how the candidate was asked for (a candidates-file name, `mean:TEXT`, `file:PATH`): rebuilds it later
    candidate_spec: str = ""
    #: NAMED (a suite of the suites file) or FILE (an ad-hoc data file given on the command line)
    suite_kind: str = NAMED
    #: signed cosine instead of |cos| (another metric: never ranked with unsigned runs)
    signed: bool = False
    bootstrap: BootstrapSettings = DEFAULT_BOOTSTRAP

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSpec:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if isinstance(values.get("bootstrap"), Mapping):
            values["bootstrap"] = _known(BootstrapSettings, values["bootstrap"])
        return cls(**values)


def _known(cls, data: Mapping[str, Any]):
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


def _from_spec(name: str, doc: str) -> property:
    return property(lambda self: getattr(self.spec, name), doc=doc)


def _from_bootstrap(name: str, doc: str) -> property:
    return property(lambda self: getattr(self.spec.bootstrap, name), doc=doc)


class SpecView:
    """Read-only names for the identity a type holds in its `spec` (one home, many readers)."""

    spec: RunSpec
    candidate = _from_spec("candidate", "the candidate's name")
    candidate_fingerprint = _from_spec("candidate_fingerprint", "the candidate version's fingerprint")
    candidate_spec = _from_spec("candidate_spec", "how the candidate was asked for")
    suite = _from_spec("suite", "the suite's name (or the data file's path)")
    suite_fingerprint = _from_spec("suite_fingerprint", "the fingerprint of the suite's rows")
    suite_kind = _from_spec("suite_kind", "'named' or 'file'")
    embedder = _from_spec("embedder", "the embedder's name")
    embedder_fingerprint = _from_spec("embedder_fingerprint", "the embedder build's fingerprint")
    comparable_with_kaggle = _from_spec("comparable_with_kaggle", "whether the scale is the leaderboard's")
    signed = _from_spec("signed", "signed cosine instead of |cos|")
    n_resamples = _from_bootstrap("n_resamples", "bootstrap resamples")
    seed = _from_bootstrap("seed", "bootstrap seed")
    ci_method = _from_bootstrap("method", "studentized, bca or percentile")
    confidence = _from_bootstrap("confidence", "the intervals' confidence level")


@dataclass(frozen=True)
class RunRecord(SpecView):
    """What the history keeps of one scoring: the run's identity, its summary and its verdicts, enough to
    render a leaderboard row without rescoring (the rows themselves are `harness.store.RunRow`s)."""

    spec: RunSpec
    n: int
    mean: float
    ci_low: float
    ci_high: float
    n_empty: int = 0
    seconds: float = 0.0
    #: the paired comparison with the stored baseline, if any: the run's one verdict
    baseline: Comparison | None = None
    #: rows Kaggle's scorer would read differently (special-token strings, over 128 tokens), when checked
    scorer_parity: ScorerParity | None = None
    #: the predicted public-leaderboard score, where a leaderboard model exists for the suite and embedder
    predicted_lb: PredictedScore | None = None
    #: the mean estimated on Kaggle's scale, where the embedder has an st5 scale map
    st5_estimate: St5Estimate | None = None
    session: str = ""
    created: float = field(default_factory=time.time)
    run_id: int | None = None

    @property
    def complete(self) -> bool:
        return self.n_empty == 0

    def with_spec(self, **changes: Any) -> RunRecord:
        """This record with some identity fields changed (e.g. another candidate fingerprint)."""
        return replace(self, spec=replace(self.spec, **changes))

    def to_dict(self) -> dict[str, Any]:
        """The stored form (versioned; `from_dict` reads every version)."""
        return {"format": RUN_FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        """A stored record of any format: today's (`format` 2, the identity nested under `spec`) or the flat
        one written before (no `format`: identity and settings side by side with the numbers)."""
        values = dict(data)
        if values.get("format", 1) == 1:
            values["spec"] = _flat_spec(values)
        else:
            values["spec"] = RunSpec.from_dict(values["spec"])
        for key, kind in (("baseline", Comparison), ("scorer_parity", ScorerParity), ("predicted_lb", PredictedScore),
                          ("st5_estimate", St5Estimate)):
            if isinstance(values.get(key), Mapping):
                values[key] = kind.from_dict(values[key])
        return _known(cls, values)


def _flat_spec(data: Mapping[str, Any]) -> RunSpec:
    """The identity of a format-1 record (the flat layout of the store before `RunSpec`)."""
    bootstrap = BootstrapSettings(n_resamples=data.get("n_resamples", DEFAULT_BOOTSTRAP.n_resamples),
                                  method=data.get("ci_method", DEFAULT_BOOTSTRAP.method),
                                  confidence=data.get("confidence", DEFAULT_BOOTSTRAP.confidence),
                                  seed=data.get("seed", DEFAULT_BOOTSTRAP.seed))
    return RunSpec(candidate=data["candidate"], candidate_fingerprint=data["candidate_fingerprint"],
                   suite=data["suite"], suite_fingerprint=data["suite_fingerprint"], embedder=data["embedder"],
                   embedder_fingerprint=data["embedder_fingerprint"],
                   comparable_with_kaggle=data["comparable_with_kaggle"], candidate_spec=data.get("candidate_spec", ""),
                   suite_kind=data.get("suite_kind", NAMED), signed=data.get("signed", False), bootstrap=bootstrap)


# -- the JSON schema of a run --------------------------------------------------------------------------------
class ScoredRows(Protocol):
    """What `run_json` reads from a scored result (`harness.evaluation.Result` is one): named here, not
    imported, so that this module stays below evaluation in the import graph."""

    ids: Sequence[str]
    scores: Any  # a numpy array of per-row SCS
    predictions: Sequence[str]
    empty_prediction_ids: Sequence[str]
    timings: Mapping[str, float]

    @property
    def interval(self) -> Any: ...


def run_json(record: RunRecord, result: ScoredRows | None = None, *, rows: bool = False,
             predicted_lb_note: str | None = None) -> dict[str, Any]:
    """A run as JSON, the one schema of `prh score --json` and of each score in `reports/leaderboard.json`.

    Keys (stable; new ones are added, none renamed): the identity (`suite`, `suite_fingerprint`,
    `suite_kind`, `candidate`, `candidate_fingerprint`, `candidate_spec`, `embedder`, `embedder_fingerprint`,
    `comparable_with_kaggle`), the settings (`signed`, `n_resamples`, `seed`, `ci_method`, `confidence`), the
    score (`n`, `mean`, `ci_low`, `ci_high`, `n_empty`, `complete`), `run_id`, and the verdicts (`baseline`,
    `scorer_parity`, `predicted_lb`, `st5_estimate`; null when there is none). With the scored `result` (`prh score`), also
    `n_groups`, `empty_prediction_ids`, `timings`, and with `rows` the per-row `{id, score, prediction}`.
    NaN and infinities are written as null, never as an unparsable file.
    """
    spec = record.spec
    data: dict[str, Any] = {
        "suite": spec.suite, "suite_fingerprint": spec.suite_fingerprint, "suite_kind": spec.suite_kind,
        "candidate": spec.candidate, "candidate_fingerprint": spec.candidate_fingerprint,
        "candidate_spec": spec.candidate_spec, "embedder": spec.embedder,
        "embedder_fingerprint": spec.embedder_fingerprint, "comparable_with_kaggle": spec.comparable_with_kaggle,
        "signed": spec.signed, "n_resamples": spec.bootstrap.n_resamples, "seed": spec.bootstrap.seed,
        "ci_method": spec.bootstrap.method, "confidence": spec.bootstrap.confidence,
        "n": record.n, "mean": record.mean, "ci_low": record.ci_low, "ci_high": record.ci_high,
        "n_empty": record.n_empty, "complete": record.complete, "run_id": record.run_id,
        "baseline": record.baseline.to_dict() if record.baseline else None,
        "scorer_parity": record.scorer_parity.to_dict() if record.scorer_parity else None,
        "predicted_lb": record.predicted_lb.to_dict() if record.predicted_lb else None,
        "st5_estimate": record.st5_estimate.to_dict() if record.st5_estimate else None,
    }
    if predicted_lb_note is not None:
        data["predicted_lb_note"] = predicted_lb_note
    if result is not None:
        data.update(n_groups=result.interval.n_groups, empty_prediction_ids=list(result.empty_prediction_ids),
                    timings=dict(result.timings))
        if rows:
            data["rows"] = [{"id": i, "score": float(s), "prediction": p}
                            for i, s, p in zip(result.ids, result.scores, result.predictions)]
    return json_safe(data)


def json_number(value: object) -> float | None:
    """NaN and infinities are not JSON: they become null."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def json_safe(value: Any) -> Any:
    """`value` with every non-finite float replaced by None and tuples made lists (JSON-ready)."""
    if isinstance(value, float):
        return json_number(value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
