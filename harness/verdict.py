"""What one scoring run concludes, as typed data: the gate's verdict against the baseline (`Comparison`),
what Kaggle's scorer would read differently (`ScorerParity`), the predicted leaderboard score
(`PredictedScore`) and the mean estimated on Kaggle's scale (`St5Estimate`).

Each travels unchanged from where it is computed (`harness.baselines`, the embedder, the leaderboard
model) through the run history (`harness.store.RunRecord`) to the reports and the pytest checks, which
only display or act on it. Plain data with no maths and no imports above the standard library, so every
layer may hold one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

REGRESSION = "regression"
IMPROVEMENT = "improvement"
NO_DIFFERENCE = "no-difference"
NO_BASELINE = "no-baseline"
STALE = "stale"
#: the embedder cannot see what the candidate's answers rely on (e.g. the lucrarea suffix under MiniLM)
NOT_JUDGED = "not-judged"
STATUSES = (REGRESSION, IMPROVEMENT, NO_DIFFERENCE, NO_BASELINE, STALE, NOT_JUDGED)
#: statuses that fail the no-regression check
FAILING = (REGRESSION, STALE)


@dataclass(frozen=True)
class Comparison:
    """The paired comparison of a result with its baseline.

    `status` is the verdict after the run's multiple-suite correction; `raw_status` the verdict of this
    suite alone (they differ only when the correction turned a per-suite regression into "no
    difference"). Δ = candidate − baseline on the same rows, with its paired CI; `p_regression` is the
    one-sided p-value of "worse by more than the tolerance", `p_adjusted` that p-value after the
    correction. The power figures say what this suite *could* have detected.
    """

    status: str
    message: str
    baseline_candidate: str | None = None
    baseline_mean: float | None = None
    delta: float | None = None
    delta_low: float | None = None
    delta_high: float | None = None
    tolerance: float | None = None
    raw_status: str | None = None
    p_regression: float | None = None
    p_adjusted: float | None = None
    correction: str | None = None
    #: the smallest true Δ this suite detects with 80% power (one-sided, at the gate's level)
    minimum_detectable_effect: float | None = None
    wins: int | None = None
    ties: int | None = None
    losses: int | None = None
    design_effect: float | None = None
    small_sample: str | None = None
    #: which baseline the verdict compared with: its candidate's fingerprint, its content fingerprint
    #: (`harness.baselines.Baseline.fingerprint`) and its rows (None in verdicts stored before they existed)
    baseline_candidate_fingerprint: str | None = None
    baseline_fingerprint: str | None = None
    baseline_n: int | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown verdict status {self.status!r}; expected one of {', '.join(STATUSES)}")

    @property
    def is_regression(self) -> bool:
        return self.status == REGRESSION

    @property
    def fails(self) -> bool:
        """Whether the no-regression check fails on this verdict."""
        return self.status in FAILING

    def with_changes(self, **changes: Any) -> Comparison:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Comparison:
        """Read a stored verdict; keys unknown to this version are ignored (older stores keep working)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})



def _from_dict(cls, data: Mapping[str, Any]):
    known = {f.name for f in fields(cls)}
    values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in known}
    return cls(**values)


@dataclass(frozen=True)
class ScorerParity:
    """Rows whose prediction Kaggle's scorer (TF-Hub sentence-t5-base) would read differently from the local
    embedder: special-token strings (`</s>`, `<pad>`, `<unk>`, `<extra_id_N>`), which its plain SentencePiece
    read as ordinary characters, and predictions beyond its 128-token window, which it cut."""

    special_token_rows: tuple[str, ...] = ()
    over_limit_rows: tuple[str, ...] = ()
    max_tokens: int | None = None
    tokenizer: str = ""

    @property
    def clean(self) -> bool:
        return not self.special_token_rows and not self.over_limit_rows

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScorerParity:
        return _from_dict(cls, data)


@dataclass(frozen=True)
class PredictedScore:
    """A predicted public-leaderboard score: the estimate and its interval, and how far the leaderboard
    model that made it is to be trusted (its leave-one-probe-out error on the probes it was fitted on).
    It is information beside the local score, never a gate."""

    estimate: float
    low: float
    high: float
    model: str
    probe_book: str
    n_probes: int
    loo_mae: float
    loo_max_error: float | None = None
    loo_spearman: float | None = None
    extrapolating: bool = False
    set_aside: tuple[str, ...] = ()
    note: str = ""
    #: the LOO error of predicting each probe by the other probes' mean: the bar a model must clear to
    #: carry any information about the leaderboard
    loo_mae_mean_alone: float | None = None

    @property
    def informative(self) -> bool | None:
        """Whether the model predicted its probes better than their mean did (None: not known)."""
        return None if self.loo_mae_mean_alone is None else self.loo_mae < self.loo_mae_mean_alone

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "informative": self.informative}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PredictedScore:
        return _from_dict(cls, data)


@dataclass(frozen=True)
class St5Estimate:
    """The result's mean estimated on Kaggle's scale (sentence-t5-base) from an offline embedder's per-row
    scores, through the embedder's fitted scale map (`harness.leaderboard.scale`). The interval covers the
    shift between generators measured by the map's cross-file validation and the suite's row sampling.
    Out of the map's domain (constant or near-constant answers, scorer tricks) there is no estimate:
    `in_domain` is false and `note` says why. Information beside the local score, never a gate."""

    estimate: float | None
    low: float | None
    high: float | None
    in_domain: bool
    note: str
    #: where the map came from: its description and file
    map: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> St5Estimate:
        return _from_dict(cls, data)
