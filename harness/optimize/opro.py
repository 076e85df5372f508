"""An OPRO-style loop (Yang et al., 2023, "Large Language Models as Optimizers") for an instruction.

Each round: build the meta-prompt (task description, the best instructions so far with their DEV scores
sorted ascending, a few exemplars from the TRAIN split), send it to every proposer (at least two
different models, as in an arena battle), parse one instruction out of each answer, evaluate every new
valid one on the DEV split through the real candidate pipeline (`target.candidate(...)` +
`harness.evaluation`), and keep everything in the history. It stops after `rounds` rounds or when the
session's `Budget` (metric calls, tokens, dollars, seconds) is spent, checked before each round and before
each evaluation. Then the best dev instruction, and the start for a paired comparison, are scored once on
the HELD-OUT split: that is the reported result (`OptimizationSession.finish`, shared with GEPA and
TextGrad). The held-out scoring is not counted against the budget (it is paid once, at the end, and a
run must always end with it).

The loop never reads the held-out split before the final comparison, and the dev split never feeds the
meta-prompt's exemplars (those come from train), so the held-out numbers are honest.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from harness.embedders import Embedder
from harness.errors import ConfigError
from harness.llm import ChatRequestError, ChatResult
from harness.optimize.meta_prompt import ScoredInstruction, build_meta_prompt, parse_proposal
from harness.optimize.metering import MeteredChatClient
from harness.optimize.session import OptimizationResult, OptimizationSession, proposer_seed
from harness.optimize.targets import InstructionTarget
from harness.splits import SuiteSplit


@dataclass(frozen=True)
class Proposer:
    """A model that proposes instructions; `name` labels it in the trajectory and the plot."""

    name: str
    client: MeteredChatClient


@dataclass(frozen=True)
class OproSettings:
    """How the loop runs (budgets: the session's `Budget`).

    Args:
        rounds: rounds at most (each: one request per proposer).
        proposals_per_proposer: choices (`n`) asked of each proposer per round.
        temperature: proposers' sampling temperature (OPRO uses 1.0: diversity is the point).
        max_answer_tokens: cap on a proposer's answer (None: the server's default).
        history_limit: the best this-many instructions are shown in the meta-prompt.
        exemplars: train rows shown in each round's meta-prompt (drawn afresh each round).
        seed: seeds exemplar draws; proposers that honour a seed get one derived from it, the round and
            the proposer's position (never the same for two proposers: two endpoints serving the same
            weights would otherwise propose the same text every round).
    """

    rounds: int = 10
    proposals_per_proposer: int = 1
    temperature: float = 1.0
    max_answer_tokens: int | None = 1024
    history_limit: int = 20
    exemplars: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("rounds", "proposals_per_proposer", "history_limit"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.exemplars < 0:
            raise ConfigError(f"exemplars must be >= 0, got {self.exemplars}")
        if self.max_answer_tokens is not None and self.max_answer_tokens < 1:
            raise ConfigError(f"max_answer_tokens must be >= 1, got {self.max_answer_tokens}")


def check_proposers(proposers: Sequence[Proposer]) -> None:
    """OPRO's arena: at least two different models, distinct names. Raised before any request."""
    models = {(p.client.base_url, p.client.model) for p in proposers}
    if len(proposers) < 2 or len(models) < 2:
        raise ConfigError(f"OPRO needs at least two different proposer models per round; got {len(models)} "
                          f"distinct ({', '.join(p.name for p in proposers) or 'none'})")
    if len({p.name for p in proposers}) != len(proposers):
        raise ConfigError("proposer names must be distinct (they label the trajectory)")


def run_opro(target: InstructionTarget, split: SuiteSplit, proposers: Sequence[Proposer], embedder: Embedder, *,
             settings: OproSettings = OproSettings(), **session_options: Any) -> OptimizationResult:
    """Optimise `target`'s instruction (see the module docstring). `session_options`: those of
    `OptimizationSession` (store, budget, log, heldout_bootstrap, run_id, on_record, clock). Raises
    ConfigError before any request when there are fewer than two distinct proposer models, or the dev or
    held-out split is empty."""
    check_proposers(proposers)
    session = OptimizationSession("opro", target, split, embedder, proposers=[(p.name, p.client) for p in proposers],
                                  settings=asdict(settings), **session_options)
    for proposer in proposers:
        proposer.client.preflight()
    pairs = {p.name: (p.name, p.client) for p in proposers}
    history: list[ScoredInstruction] = []
    target, dev = session.target, session.dev

    def score(round_number: int, proposer: Proposer | None, instruction: str) -> None:
        result = session.score(instruction, dev)
        history.append(ScoredInstruction(instruction, result.mean))
        session.record(round_number, pairs[proposer.name] if proposer else None,
                       "scored" if proposer else "start", instruction, result=result)

    score(0, None, target.start)
    stop_reason, rounds_completed = "", 0
    for round_number in range(1, settings.rounds + 1):
        stop_reason = session.over_budget(len(dev))
        if stop_reason:
            break
        exemplars = _exemplars(session.train.samples, settings, round_number)
        meta_prompt = build_meta_prompt(target.task_description, history, exemplars,
                                        history_limit=settings.history_limit, show_texts=target.kind != "mean-prompt")
        session.round(round_number, meta_prompt, [s.id for s in exemplars])
        for proposer, outcome in zip(proposers, _ask_all(proposers, meta_prompt, settings, round_number)):
            who = pairs[proposer.name]
            if isinstance(outcome, ChatRequestError):
                session.record(round_number, who, "failed", None, problem=str(outcome))
                continue
            for answer in outcome.texts:
                parsed = parse_proposal(answer)
                if parsed.instruction is None:
                    session.record(round_number, who, "invalid", None, problem=parsed.problem, answer=answer)
                elif session.dev_score_of(parsed.instruction) is not None:
                    session.record(round_number, who, "duplicate", parsed.instruction)
                elif stop_reason or (stop_reason := session.over_budget(len(dev))):
                    session.record(round_number, who, "over_budget", parsed.instruction, problem=stop_reason)
                else:
                    score(round_number, proposer, parsed.instruction)
        rounds_completed = round_number
        if stop_reason:
            break
    return session.finish(stop_reason=stop_reason or "rounds", rounds_completed=rounds_completed)


def _exemplars(rows, settings: OproSettings, round_number: int):
    """`settings.exemplars` TRAIN rows, drawn afresh (seeded) each round."""
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
