"""An OPRO-style loop (Yang et al., 2023, "Large Language Models as Optimizers") for an instruction.

Each round: build the meta-prompt (task description, the best instructions so far with their DEV scores
sorted ascending, a few exemplars from the TRAIN split), send it to every proposer (at least two
different models, as in an arena battle), parse one instruction out of each answer, evaluate every new
valid one on the DEV split through the real candidate pipeline (`target.candidate(...)` +
`harness.evaluate`), and keep everything in the history. It stops after `rounds` rounds or when the
metered tokens or dollars pass their budget (checked before each round and before each evaluation).
Then the best dev instruction, and the start for a paired comparison, are scored once on the HELD-OUT
split: that is the reported result. The held-out scoring is not counted against the budget (it is paid
once, at the end, and a run must always end with it).

The loop never reads the held-out split before the final comparison, and the dev split never feeds the
meta-prompt's exemplars (those come from train), so the held-out numbers are honest.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np

from harness.embedders import Embedder
from harness.errors import ConfigError, LearnedFromSuiteError
from harness.evaluate import DEFAULT_BOOTSTRAP, BootstrapSettings, Result, evaluate
from harness.llm import ChatRequestError, ChatResult
from harness.optimize.heldout import HeldoutComparison, compare_on_heldout
from harness.optimize.meta_prompt import ScoredInstruction, build_meta_prompt, parse_proposal
from harness.optimize.metering import MeteredChatClient
from harness.optimize.targets import InstructionTarget
from harness.optimize.trajectory import TrajectoryLog
from harness.pricing import Usage
from harness.splits import SuiteSplit
from harness.store import Store

ANSWER_EXCERPT_CHARS = 500


@dataclass(frozen=True)
class Proposer:
    """A model that proposes instructions; `name` labels it in the trajectory and the plot."""

    name: str
    client: MeteredChatClient


@dataclass(frozen=True)
class OproSettings:
    """How the loop runs.

    Args:
        rounds: rounds at most (each: one request per proposer).
        proposals_per_proposer: choices (`n`) asked of each proposer per round.
        temperature: proposers' sampling temperature (OPRO uses 1.0: diversity is the point).
        max_answer_tokens: cap on a proposer's answer (None: the server's default).
        history_limit: the best this-many instructions are shown in the meta-prompt.
        exemplars: train rows shown in each round's meta-prompt (drawn afresh each round).
        max_tokens: budget of tokens reported by proposers and the target model together (None: none).
        max_cost_usd: budget in dollars at the proposers' and target's prices (None: none).
        seed: seeds exemplar draws; proposers that honour a seed get one derived from it, the round and
            the proposer's position (never the same for two proposers: two endpoints serving the same
            weights would otherwise propose the same text every round).
        dev_bootstrap: intervals of the dev scores in the trajectory (cheap settings: they inform, they
            decide nothing).
    """

    rounds: int = 10
    proposals_per_proposer: int = 1
    temperature: float = 1.0
    max_answer_tokens: int | None = 1024
    history_limit: int = 20
    exemplars: int = 3
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    seed: int = 0
    dev_bootstrap: BootstrapSettings = field(default_factory=lambda: BootstrapSettings(n_resamples=2000,
                                                                                         method="percentile"))

    def __post_init__(self) -> None:
        for name in ("rounds", "proposals_per_proposer", "history_limit"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.exemplars < 0:
            raise ConfigError(f"exemplars must be >= 0, got {self.exemplars}")
        if self.max_answer_tokens is not None and self.max_answer_tokens < 1:
            raise ConfigError(f"max_answer_tokens must be >= 1, got {self.max_answer_tokens}")
        for name in ("max_tokens", "max_cost_usd"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"{name} must be >= 0, got {value}")


@dataclass(frozen=True)
class OproResult:
    """The loop's outcome. `best_dev_score` is a DEV number (it chose the winner); `heldout` is the result."""

    run_id: str
    best_instruction: str
    best_dev_score: float
    start_instruction: str
    start_dev_score: float
    heldout: HeldoutComparison
    proposals: list[dict]
    usage: Usage
    stop_reason: str
    rounds_completed: int

    def to_dict(self) -> dict:
        counts: dict[str, int] = {}
        for record in self.proposals:
            counts[record["status"]] = counts.get(record["status"], 0) + 1
        return {"run_id": self.run_id, "instruction": self.best_instruction, "start": self.start_instruction,
                "dev_score": self.best_dev_score, "start_dev_score": self.start_dev_score,
                **self.heldout.to_dict(), "proposals": counts, "usage": self.usage.to_dict(),
                "stop_reason": self.stop_reason, "rounds_completed": self.rounds_completed}


def run_opro(target: InstructionTarget, split: SuiteSplit, proposers: Sequence[Proposer], embedder: Embedder, *,
             store: Store | None = None, settings: OproSettings = OproSettings(), log: TrajectoryLog | None = None,
             heldout_bootstrap: BootstrapSettings = DEFAULT_BOOTSTRAP, run_id: str | None = None,
             on_record: Callable[[dict], None] | None = None, clock: Callable[[], float] = time.perf_counter
             ) -> OproResult:
    """Optimise `target`'s instruction (see the module docstring). Raises ConfigError before any request
    when there are fewer than two distinct proposer models, or the dev or held-out split is empty."""
    _check(target, split, proposers)
    for proposer in proposers:
        proposer.client.preflight()
    run_id = run_id or uuid.uuid4().hex[:12]
    started = clock()
    meters = [p.client for p in proposers] + [c for c in [getattr(target, "client", None)] if c is not None]

    def usage() -> Usage:
        total = Usage()
        for meter in meters:
            total = total + meter.usage
        return total

    def emit(record: dict) -> dict:
        if log is not None:
            log.write(record)
        if on_record is not None:
            on_record(record)
        return record

    emit({"type": "run", "run_id": run_id, "target_kind": target.kind, "target": target.name,
          "start": target.start, "suite": split.source, "split": split.describe(), "embedder": embedder.name,
          "embedder_fingerprint": embedder.fingerprint, "comparable_with_kaggle": embedder.comparable_with_kaggle,
          "proposers": [{"name": p.name, "model": p.client.model, "base_url": p.client.base_url} for p in proposers],
          "settings": {k: v for k, v in asdict(settings).items() if k != "dev_bootstrap"}})
    proposals: list[dict] = []
    scores: dict[str, float] = {}  # normalised instruction → dev score
    history: list[ScoredInstruction] = []

    def record(round_number: int, proposer: Proposer | None, status: str, instruction: str | None, *,
               result: Result | None = None, problem: str | None = None, answer: str | None = None) -> dict:
        data = {"type": "proposal", "round": round_number, "index": len(proposals),
                "proposer": proposer.name if proposer else None, "model": proposer.client.model if proposer else None,
                "instruction": instruction, "status": status, "problem": problem,
                "answer": None if answer is None else answer[:ANSWER_EXCERPT_CHARS],
                "dev_score": None, "dev_ci_low": None, "dev_ci_high": None, "dev_n": None, "dev_n_empty": None}
        if result is not None:
            data.update(dev_score=result.mean, dev_ci_low=result.interval.low, dev_ci_high=result.interval.high,
                        dev_n=result.n, dev_n_empty=len(result.empty_prediction_ids))
        elif status == "duplicate" and instruction is not None:  # known already: not evaluated (or plotted) again
            data["duplicate_of_score"] = scores.get(_key(instruction))
        data["best_dev_score"] = max(scores.values()) if scores else None
        data["usage"] = usage().to_dict()
        data["elapsed_s"] = clock() - started
        proposals.append(data)
        return emit(data)

    def score(instruction: str) -> Result:
        result = evaluate(target.candidate(instruction), split.dev, embedder, store=store,
                          bootstrap=settings.dev_bootstrap)
        scores[_key(instruction)] = result.mean
        history.append(ScoredInstruction(instruction, result.mean))
        return result

    record(0, None, "start", target.start, result=score(target.start))
    stop_reason, rounds_completed = "", 0
    for round_number in range(1, settings.rounds + 1):
        stop_reason = _over_budget(settings, usage())
        if stop_reason:
            break
        exemplars = _exemplars(split, settings, round_number)
        meta_prompt = build_meta_prompt(target.task_description, history, exemplars,
                                        history_limit=settings.history_limit, show_texts=target.kind != "mean-prompt")
        emit({"type": "round", "round": round_number, "meta_prompt": meta_prompt,
              "exemplar_ids": [s.id for s in exemplars]})
        for proposer, outcome in zip(proposers, _ask_all(proposers, meta_prompt, settings, round_number)):
            if isinstance(outcome, ChatRequestError):
                record(round_number, proposer, "failed", None, problem=str(outcome))
                continue
            for answer in outcome.texts:
                parsed = parse_proposal(answer)
                if parsed.instruction is None:
                    record(round_number, proposer, "invalid", None, problem=parsed.problem, answer=answer)
                elif _key(parsed.instruction) in scores:
                    record(round_number, proposer, "duplicate", parsed.instruction)
                elif stop_reason or (stop_reason := _over_budget(settings, usage())):
                    record(round_number, proposer, "over_budget", parsed.instruction, problem=stop_reason)
                else:
                    record(round_number, proposer, "scored", parsed.instruction, result=score(parsed.instruction))
        rounds_completed = round_number
        if stop_reason:
            break
    stop_reason = stop_reason or "rounds"
    best = max(history, key=lambda item: item.score)  # max keeps the first of equal scores: the earliest
    comparison = compare_on_heldout(target.candidate(best.instruction), target.candidate(target.start),
                                    split.heldout, embedder, store=store, bootstrap=heldout_bootstrap)
    result = OproResult(run_id=run_id, best_instruction=best.instruction, best_dev_score=best.score,
                        start_instruction=target.start, start_dev_score=history[0].score, heldout=comparison,
                        proposals=proposals, usage=usage(), stop_reason=stop_reason,
                        rounds_completed=rounds_completed)
    emit({"type": "final", **result.to_dict()})
    return result


def _key(instruction: str) -> str:
    return " ".join(instruction.split())


def _check(target: InstructionTarget, split: SuiteSplit, proposers: Sequence[Proposer]) -> None:
    models = {(p.client.base_url, p.client.model) for p in proposers}
    if len(proposers) < 2 or len(models) < 2:
        raise ConfigError(f"OPRO needs at least two different proposer models per round; got {len(models)} "
                          f"distinct ({', '.join(p.name for p in proposers) or 'none'})")
    if len({p.name for p in proposers}) != len(proposers):
        raise ConfigError("proposer names must be distinct (they label the trajectory)")
    if len(split.dev) == 0:
        raise ConfigError("the dev split is empty: OPRO scores proposals on it (give it a fraction > 0)")
    if len(split.heldout) == 0:
        raise ConfigError("the held-out split is empty: the result is reported on it (give it a fraction > 0)")
    learned = set(getattr(target.candidate(target.start), "train_suites", ()) or ())
    if split.source in learned:
        raise LearnedFromSuiteError(f"the target learned from suite '{split.source}' (its few-shot examples come "
                                    "from it), so its dev and held-out splits would not be unseen rows; "
                                    "optimise it on another suite")


def _over_budget(settings: OproSettings, spent: Usage) -> str:
    if settings.max_tokens is not None and spent.tokens >= settings.max_tokens:
        return f"max_tokens ({spent.tokens} >= {settings.max_tokens})"
    if settings.max_cost_usd is not None and spent.cost_usd >= settings.max_cost_usd:
        return f"max_cost_usd ({spent.cost_usd:.4f} >= {settings.max_cost_usd:g})"
    return ""


def _exemplars(split: SuiteSplit, settings: OproSettings, round_number: int):
    """`settings.exemplars` TRAIN rows, drawn afresh (seeded) each round."""
    rows = split.train.samples
    if not rows or settings.exemplars == 0:
        return []
    rng = np.random.default_rng([settings.seed, round_number])
    picked = rng.choice(len(rows), size=min(settings.exemplars, len(rows)), replace=False)
    return [rows[i] for i in sorted(picked.tolist())]


def _ask_all(proposers: Sequence[Proposer], meta_prompt: str, settings: OproSettings,
             round_number: int) -> list[ChatResult | ChatRequestError]:
    """Every proposer's answer to the meta-prompt, asked at once, returned in proposer order."""
    messages = [{"role": "user", "content": meta_prompt}]

    def ask(position: int, proposer: Proposer) -> ChatResult | ChatRequestError:
        try:
            return proposer.client.complete(messages, temperature=settings.temperature,
                                            n=settings.proposals_per_proposer,
                                            max_tokens=settings.max_answer_tokens,
                                            seed=proposer_seed(settings.seed, round_number, position))
        except ChatRequestError as error:
            return error

    with ThreadPoolExecutor(max_workers=len(proposers), thread_name_prefix="proposer") as pool:
        return list(pool.map(ask, range(len(proposers)), proposers))


def proposer_seed(seed: int, round_number: int, position: int) -> int:
    """The sampling seed of the proposer at `position` in round `round_number`: distinct per (round,
    proposer), so the same weights behind two endpoints still propose different instructions."""
    return (seed * 1000 + round_number) * 1000 + position
