"""What every instruction optimiser (OPRO, GEPA, TextGrad) shares, so the three differ only in how they
propose instructions: scoring, budgets, the trajectory, and the one held-out report.

An `OptimizationSession` is handed to a backend. It gives the backend the TRAIN and DEV rows only (the
held-out split is kept private until `finish`), scores an instruction on any of those rows through the
real candidate pipeline (`target.candidate(...)` + `harness.evaluation`: the same Workspace store, embedder,
prediction cache and post-processing as any candidate), and counts what was spent:

- `metric_calls`: rows scored (one candidate evaluated on one row is one call, cached or not), GEPA's own
  budget unit, so that backends can be compared at equal budget;
- the tokens and dollars the metered clients (proposers and the target model) report;
- seconds of wall clock.

`Budget` says when to stop; a backend asks `over_budget(rows)` before each evaluation. `finish` scores
the best DEV instruction and the start once on the HELD-OUT rows (paired CI, not counted against the
budget), writes the `final` record and returns the `OptimizationResult` every `prh optimize` backend
prints.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.data import Suite
from harness.embedders import Embedder
from harness.errors import ConfigError, LearnedFromSuiteError
from harness.evaluation import DEFAULT_BOOTSTRAP, BootstrapSettings, Result, evaluate
from harness.optimize.heldout import HeldoutComparison, compare_on_heldout
from harness.optimize.metering import MeteredChatClient
from harness.optimize.targets import InstructionTarget
from harness.optimize.trajectory import TrajectoryLog
from harness.pricing import Usage
from harness.splits import SuiteSplit
from harness.store import Store

ANSWER_EXCERPT_CHARS = 500
#: proposal statuses: `start` and `scored` have a dev score; the others say why a proposal has none
STATUSES = ("start", "scored", "rejected", "invalid", "duplicate", "failed", "over_budget")
#: intervals of the dev scores in the trajectory: cheap settings, they inform and decide nothing
DEV_BOOTSTRAP = BootstrapSettings(n_resamples=2000, method="percentile")


@dataclass(frozen=True)
class Budget:
    """When an optimiser stops (None: no limit). Tokens and dollars count proposers and target together;
    the final held-out scoring is never counted (it is paid once, at the end)."""

    max_metric_calls: int | None = None
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_metric_calls", "max_tokens", "max_cost_usd", "max_seconds"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"{name} must be >= 0, got {value}")

    @property
    def unlimited(self) -> bool:
        return all(getattr(self, name) is None for name in ("max_metric_calls", "max_tokens", "max_cost_usd",
                                                              "max_seconds"))

    def exceeded(self, *, spent: Usage, metric_calls: int, seconds: float, rows: int = 0) -> str:
        """Why the budget is spent ("" while it is not); `rows`: metric calls the next evaluation needs."""
        if self.max_metric_calls is not None and metric_calls + rows > self.max_metric_calls:
            return f"max_metric_calls ({metric_calls} + {rows} > {self.max_metric_calls})" if rows else \
                f"max_metric_calls ({metric_calls} >= {self.max_metric_calls})"
        if self.max_tokens is not None and spent.tokens >= self.max_tokens:
            return f"max_tokens ({spent.tokens} >= {self.max_tokens})"
        if self.max_cost_usd is not None and spent.cost_usd >= self.max_cost_usd:
            return f"max_cost_usd ({spent.cost_usd:.4f} >= {self.max_cost_usd:g})"
        if self.max_seconds is not None and seconds >= self.max_seconds:
            return f"max_seconds ({seconds:.0f} >= {self.max_seconds:g})"
        return ""

    def to_dict(self) -> dict:
        return {"max_metric_calls": self.max_metric_calls, "max_tokens": self.max_tokens,
                "max_cost_usd": self.max_cost_usd, "max_seconds": self.max_seconds}


@dataclass(frozen=True)
class OptimizationResult:
    """A backend's outcome. `best_dev_score` is a DEV number (it chose the winner); `heldout` is the result."""

    backend: str
    run_id: str
    target_name: str
    best_instruction: str
    best_dev_score: float
    start_instruction: str
    start_dev_score: float
    heldout: HeldoutComparison
    proposals: list[dict]
    usage: Usage
    metric_calls: int
    seconds: float
    stop_reason: str
    rounds_completed: int
    candidates_toml: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        counts: dict[str, int] = {}
        for record in self.proposals:
            counts[record["status"]] = counts.get(record["status"], 0) + 1
        h = self.heldout
        return {"backend": self.backend, "run_id": self.run_id, "target": self.target_name,
                "best_instruction": self.best_instruction, "instruction": self.best_instruction,
                "start": self.start_instruction, "dev_score": self.best_dev_score,
                "start_dev_score": self.start_dev_score, **h.to_dict(),
                "heldout_delta": h.delta.estimate, "heldout_delta_ci": [h.delta.low, h.delta.high],
                "proposals": counts, "metric_calls": self.metric_calls, "usage": self.usage.to_dict(),
                "seconds": self.seconds, "stop_reason": self.stop_reason,
                "rounds_completed": self.rounds_completed, **self.extra, "candidates_toml": self.candidates_toml}


class OptimizationSession:
    """One optimiser run's shared machinery (see the module docstring). `proposers`: (name, client) of
    the models that write instructions; their usage and the target's are metered together."""

    def __init__(self, backend: str, target: InstructionTarget, split: SuiteSplit, embedder: Embedder, *,
                 proposers: Sequence[tuple[str, MeteredChatClient]], store: Store | None = None,
                 budget: Budget = Budget(), log: TrajectoryLog | None = None, settings: Mapping[str, Any] | None = None,
                 heldout_bootstrap: BootstrapSettings = DEFAULT_BOOTSTRAP, run_id: str | None = None,
                 on_record: Callable[[dict], None] | None = None, clock: Callable[[], float] = time.perf_counter,
                 needs_train: bool = False) -> None:
        self.backend = backend
        self.target = target
        self.embedder = embedder
        self.store = store
        self.budget = budget
        self.proposers = list(proposers)
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self._split = split
        self._log = log
        self._on_record = on_record
        self._clock = clock
        self._heldout_bootstrap = heldout_bootstrap
        self._check(needs_train)
        self.train = split.train
        self.dev = split.dev
        self._visible_ids = set(split.train.ids) | set(split.dev.ids)
        self.proposals: list[dict] = []
        self.dev_scores: dict[str, float] = {}  # normalised instruction → dev score
        self.metric_calls = 0
        self._meters = [client for _, client in self.proposers] + [
            c for c in [getattr(target, "client", None)] if c is not None]
        self._started = clock()
        self.emit({"type": "run", "backend": backend, "run_id": self.run_id, "target_kind": target.kind,
                   "target": target.name, "start": target.start, "suite": split.source, "split": split.describe(),
                   "embedder": embedder.name, "embedder_fingerprint": embedder.fingerprint,
                   "comparable_with_kaggle": embedder.comparable_with_kaggle,
                   "proposers": [{"name": name, "model": c.model, "base_url": c.base_url} for name, c in self.proposers],
                   "budget": budget.to_dict(), "settings": dict(settings or {})})

    # -- checks ------------------------------------------------------------------------------------
    def _check(self, needs_train: bool) -> None:
        split = self._split
        if len(split.dev) == 0:
            raise ConfigError(f"the dev split is empty: {self.backend} selects instructions on it (give it a "
                              "fraction > 0)")
        if len(split.heldout) == 0:
            raise ConfigError("the held-out split is empty: the result is reported on it (give it a fraction > 0)")
        if needs_train and len(split.train) == 0:
            raise ConfigError(f"the train split is empty: {self.backend} learns from its rows (give it a fraction > 0)")
        learned = set(getattr(self.target.candidate(self.target.start), "train_suites", ()) or ())
        if split.source in learned:
            raise LearnedFromSuiteError(f"the target learned from suite '{split.source}' (its few-shot examples come "
                                        "from it), so its dev and held-out splits would not be unseen rows; "
                                        "optimise it on another suite")

    # -- accounting --------------------------------------------------------------------------------
    def usage(self) -> Usage:
        total = Usage()
        for meter in self._meters:
            total = total + meter.usage
        return total

    def elapsed(self) -> float:
        return self._clock() - self._started

    def over_budget(self, rows: int = 0) -> str:
        """Why the budget does not allow an evaluation of `rows` more rows ("" when it does)."""
        return self.budget.exceeded(spent=self.usage(), metric_calls=self.metric_calls, seconds=self.elapsed(),
                                    rows=rows)

    # -- scoring -----------------------------------------------------------------------------------
    def score(self, instruction: str, rows: Suite | Sequence, *, part: str = "dev") -> Result:
        """`instruction`'s candidate scored on `rows` (the dev split, or train rows such as a minibatch)
        through `harness.evaluation`; counts len(rows) metric calls. Any other row is refused."""
        suite = rows if isinstance(rows, Suite) else Suite(f"{self._split.source}:{part}", tuple(rows))
        strangers = [i for i in suite.ids if i not in self._visible_ids]
        if strangers:  # the optimiser's view is train + dev; the held-out rows are read once, by finish()
            raise RuntimeError(f"an optimiser asked to score rows outside its train and dev splits: {strangers[:3]}")
        result = evaluate(self.target.candidate(instruction), suite, self.embedder, store=self.store,
                          bootstrap=DEV_BOOTSTRAP)
        self.metric_calls += len(suite)
        if suite is self.dev:
            self.dev_scores[key(instruction)] = result.mean
        return result

    def dev_score_of(self, instruction: str) -> float | None:
        return self.dev_scores.get(key(instruction))

    # -- the trajectory ----------------------------------------------------------------------------
    def emit(self, record: dict) -> dict:
        if self._log is not None:
            self._log.write(record)
        if self._on_record is not None:
            self._on_record(record)
        return record

    def round(self, number: int, meta_prompt: str, exemplar_ids: Sequence[str] = ()) -> None:
        """What the proposer(s) were sent in round (OPRO), iteration (GEPA) or step (TextGrad) `number`."""
        self.emit({"type": "round", "round": number, "meta_prompt": meta_prompt, "exemplar_ids": list(exemplar_ids)})

    def record(self, round_number: int, proposer: tuple[str, MeteredChatClient] | None, status: str,
               instruction: str | None, *, result: Result | None = None, problem: str | None = None,
               answer: str | None = None, **extra: Any) -> dict:
        """One `proposal` record: the start, a scored proposal (with its DEV `result`), or one that was not
        scored (`problem` says why)."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        data = {"type": "proposal", "round": round_number, "index": len(self.proposals),
                "proposer": proposer[0] if proposer else None, "model": proposer[1].model if proposer else None,
                "instruction": instruction, "status": status, "problem": problem,
                "answer": None if answer is None else answer[:ANSWER_EXCERPT_CHARS],
                "dev_score": None, "dev_ci_low": None, "dev_ci_high": None, "dev_n": None, "dev_n_empty": None}
        if result is not None:
            data.update(dev_score=result.mean, dev_ci_low=result.interval.low, dev_ci_high=result.interval.high,
                        dev_n=result.n, dev_n_empty=len(result.empty_prediction_ids))
        elif status == "duplicate" and instruction is not None:  # known already: not evaluated (or plotted) again
            data["duplicate_of_score"] = self.dev_score_of(instruction)
        data.update(extra)
        data["best_dev_score"] = max(self.dev_scores.values()) if self.dev_scores else None
        data["metric_calls"] = self.metric_calls
        data["usage"] = self.usage().to_dict()
        data["elapsed_s"] = self.elapsed()
        self.proposals.append(data)
        return self.emit(data)

    # -- the end -----------------------------------------------------------------------------------
    def best(self) -> tuple[str, float]:
        """The scored instruction with the best DEV score (the earliest on a tie)."""
        scored = [r for r in self.proposals if r["status"] in ("start", "scored") and r["dev_score"] is not None]
        if not scored:
            raise RuntimeError("no instruction was scored on the dev split (not even the start)")
        best = max(scored, key=lambda r: r["dev_score"])  # max keeps the first of equal scores
        return best["instruction"], best["dev_score"]

    def finish(self, *, stop_reason: str, rounds_completed: int, best: tuple[str, float] | None = None,
               extra: Mapping[str, Any] | None = None) -> OptimizationResult:
        """Score the best dev instruction (or `best`) and the start once on the held-out rows, write the
        `final` record, and return the result."""
        instruction, dev_score = best or self.best()
        start_dev = self.dev_score_of(self.target.start)
        seconds = self.elapsed()
        usage, metric_calls = self.usage(), self.metric_calls  # the held-out scoring is not counted
        comparison = compare_on_heldout(self.target.candidate(instruction), self.target.candidate(self.target.start),
                                        self._split.heldout, self.embedder, store=self.store,
                                        bootstrap=self._heldout_bootstrap)
        result = OptimizationResult(
            backend=self.backend, run_id=self.run_id, target_name=self.target.name, best_instruction=instruction,
            best_dev_score=dev_score, start_instruction=self.target.start,
            start_dev_score=start_dev if start_dev is not None else float("nan"), heldout=comparison,
            proposals=self.proposals, usage=usage, metric_calls=metric_calls, seconds=seconds,
            stop_reason=stop_reason, rounds_completed=rounds_completed, extra=dict(extra or {}),
            candidates_toml=self.target.candidates_entry(instruction, description=self._description(comparison)))
        self.emit({"type": "final", **result.to_dict()})
        return result

    def _description(self, h: HeldoutComparison) -> str:
        return (f"{self.backend} on '{self._split.source}' (dev split, seed {self._split.seed}, embedder "
                f"{h.found.embedder}): held-out {h.found.mean:.4f} [{h.found.interval.low:.4f}, "
                f"{h.found.interval.high:.4f}], vs start {h.delta.estimate:+.4f} [{h.delta.low:+.4f}, "
                f"{h.delta.high:+.4f}]")


def key(instruction: str) -> str:
    """An instruction's identity: whitespace collapsed (two proposals that differ only there are one)."""
    return " ".join(instruction.split())


def proposer_seed(seed: int, round_number: int, position: int) -> int:
    """The sampling seed of a proposer request: OPRO's proposer at `position` in round `round_number`,
    GEPA's reflection in an iteration, TextGrad's call in a step. Distinct per (round, position), so the
    same weights behind two endpoints still propose different instructions; the same on a rerun."""
    return (seed * 1000 + round_number) * 1000 + position
