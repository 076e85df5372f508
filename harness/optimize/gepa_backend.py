"""GEPA (Agrawal et al., 2025, "GEPA: Reflective Prompt Evolution Can Outperform Reinforcement Learning")
as a backend: the `gepa` package's engine (Pareto candidate selection, reflective mutation, minibatch
acceptance) driving an instruction of the harness, through GEPA's adapter interface.

`HarnessAdapter` is the one integration point (`gepa.core.adapter.GEPAAdapter`):

- `evaluate(batch, candidate)`: the instruction's candidate scored on the batch's rows by the session
  (`harness.evaluation`: Workspace store, embedder, prediction cache), per-row SCS as GEPA's scores. GEPA's
  trainset is the TRAIN split (reflection minibatches), its valset the DEV split (Pareto front and the
  choice of the best); the held-out split is never given to GEPA.
- `make_reflective_dataset`: the harness's own feedback per row, worst rows first: the row's score and
  what SCS means, the model's answer, and the true prompt (these are train rows: the split allows it).
- `propose_new_texts`: GEPA's own reflection prompt (`InstructionProposalSignature`, rendered and parsed
  by the library) sent to the proposer through the harness's client (`MeteredChatClient`: retries,
  keys, usage, budgets). An unusable answer (failed request, empty or over-long text, an instruction
  already tried) is recorded and proposes nothing, so GEPA spends no metric calls on it.

Budgets: GEPA's own `max_metric_calls`, plus a stopper that ends the run before an iteration the
session's `Budget` (metric calls, tokens, dollars, seconds) could not pay for in full (two minibatch
evaluations and one dev evaluation), so a GEPA run never exceeds `--max-metric-calls`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from harness.data import Sample
from harness.embedders import Embedder
from harness.errors import ConfigError
from harness.llm import ChatRequestError
from harness.optimize.extras import require
from harness.optimize.meta_prompt import EMPTY_INSTRUCTION, check_instruction
from harness.optimize.metering import MeteredChatClient
from harness.optimize.session import Budget, OptimizationResult, OptimizationSession, proposer_seed
from harness.optimize.targets import InstructionTarget
from harness.splits import SuiteSplit

COMPONENT = "instruction"
_METRIC_NOTE = ("scores are sharpened cosine similarity (cube of the cosine between sentence embeddings of the "
                "answer and the true prompt; 0 to 1, higher is better)")


@dataclass(frozen=True)
class GepaSettings:
    """GEPA's knobs that the harness exposes (the rest are the library's defaults).

    Args:
        minibatch_size: TRAIN rows per reflection minibatch (GEPA's `reflection_minibatch_size`).
        temperature: the reflection model's sampling temperature.
        max_answer_tokens: cap on each reflection answer.
        feedback_rows: rows shown to the reflection model per minibatch (the worst first).
        candidate_selection: GEPA's `candidate_selection_strategy` ("pareto", "current_best", ...).
        seed: GEPA's seed, and the reflection model's sampling seeds.
    """

    minibatch_size: int = 3
    temperature: float = 1.0
    max_answer_tokens: int | None = 1024
    feedback_rows: int = 3
    candidate_selection: str = "pareto"
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("minibatch_size", "feedback_rows"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_answer_tokens is not None and self.max_answer_tokens < 1:
            raise ConfigError(f"max_answer_tokens must be >= 1, got {self.max_answer_tokens}")


class _Log:
    """GEPA's logger protocol, kept off stdout (a `--json` run prints one object there)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, message: str) -> None:
        self.lines.append(str(message))


class HarnessAdapter:
    """GEPA's adapter over an `OptimizationSession` (see the module docstring)."""

    def __init__(self, session: OptimizationSession, proposer: tuple[str, MeteredChatClient],
                 settings: GepaSettings) -> None:
        self.session = session
        self.proposer = proposer
        self.settings = settings
        self.iteration = 0
        self.pending: str | None = None  # the last usable proposal, until it is scored on dev or rejected
        self.pending_minibatch: float | None = None
        self._dev_ids = set(session.dev.ids)
        self._last_batch_ids: list[str] = []

    # -- GEPAAdapter ---------------------------------------------------------------------------------
    def evaluate(self, batch: list[Sample], candidate: dict[str, str], capture_traces: bool = False):
        from gepa.core.adapter import EvaluationBatch

        instruction = candidate[COMPONENT]
        ids = [s.id for s in batch]
        on_dev = len(ids) == len(self._dev_ids) and set(ids) == self._dev_ids
        result = self.session.score(instruction, self.session.dev if on_dev else batch,
                                    part="dev" if on_dev else "train")
        scores = [float(x) for x in result.scores]
        if on_dev:
            self._record_dev(instruction, result)
        elif instruction == self.pending:
            self.pending_minibatch = float(result.mean)
        if capture_traces:
            self._last_batch_ids = ids
        trajectories = ([{"sample": s, "prediction": p, "score": x} for s, p, x in
                         zip(batch, result.predictions, scores)] if capture_traces else None)
        return EvaluationBatch(outputs=list(result.predictions), scores=scores, trajectories=trajectories)

    def make_reflective_dataset(self, candidate: dict[str, str], eval_batch, components_to_update: list[str]
                                ) -> Mapping[str, Sequence[Mapping[str, Any]]]:
        rows = sorted(eval_batch.trajectories or [], key=lambda t: t["score"])[:self.settings.feedback_rows]
        mean = sum(eval_batch.scores) / max(1, len(eval_batch.scores))
        records = [feedback_record(t["sample"], t["prediction"], t["score"], mean=mean,
                                   show_texts=self.session.target.kind != "mean-prompt",
                                   rank=rank, of=len(eval_batch.scores)) for rank, t in enumerate(rows, start=1)]
        return {name: records for name in components_to_update}

    def propose_new_texts(self, candidate: dict[str, str], reflective_dataset: Mapping[str, Sequence[Mapping]],
                          components_to_update: list[str]) -> dict[str, str]:
        from gepa.strategies.instruction_proposal import InstructionProposalSignature

        self._close_pending("not accepted on its minibatch")
        self.iteration += 1
        current = candidate[COMPONENT]
        prompt = InstructionProposalSignature.prompt_renderer({
            "current_instruction_doc": current or EMPTY_INSTRUCTION,
            "dataset_with_feedback": reflective_dataset[COMPONENT], "prompt_template": None})
        self.session.round(self.iteration, prompt, self._last_batch_ids)
        name, client = self.proposer
        try:
            answer = client.complete([{"role": "user", "content": prompt}], temperature=self.settings.temperature,
                                     max_tokens=self.settings.max_answer_tokens,
                                     seed=proposer_seed(self.settings.seed, self.iteration, 0)).texts[0]
        except ChatRequestError as error:
            self.session.record(self.iteration, self.proposer, "failed", None, problem=str(error))
            return {}
        instruction = InstructionProposalSignature.output_extractor(answer.strip())["new_instruction"]
        problem = check_instruction(instruction)
        if problem is not None:
            self.session.record(self.iteration, self.proposer, "invalid", None, problem=problem, answer=answer)
            return {}
        if self.session.dev_score_of(instruction) is not None or instruction == current:
            self.session.record(self.iteration, self.proposer, "duplicate", instruction)
            return {}
        self.pending, self.pending_minibatch = instruction, None
        return {COMPONENT: instruction}

    # -- trajectory ----------------------------------------------------------------------------------
    def _record_dev(self, instruction: str, result) -> None:
        if self.iteration == 0 and instruction == self.session.target.start:
            self.session.record(0, None, "start", instruction, result=result)
        elif instruction == self.pending:
            self.session.record(self.iteration, self.proposer, "scored", instruction, result=result,
                                minibatch_score=self.pending_minibatch)
            self.pending = None

    def _close_pending(self, problem: str, *, with_score: bool = True) -> None:
        """The pending proposal was evaluated on its minibatch only: GEPA rejected it there."""
        if self.pending is not None:
            score = self.pending_minibatch
            if with_score and score is not None:
                problem += f" (minibatch mean {score:.4f})"
            self.session.record(self.iteration, self.proposer, "rejected", self.pending, problem=problem,
                                minibatch_score=score)
            self.pending = None


def feedback_record(sample: Sample, prediction: str, score: float, *, mean: float, show_texts: bool,
                    rank: int, of: int) -> dict:
    """One row of the reflection model's dataset: the harness's own feedback (TRAIN rows only)."""
    inputs = ({"Original text": sample.original_text, "Rewritten text": sample.rewritten_text} if show_texts
              else {"Note": "the answer is the same fixed sentence for every row (a mean prompt)"})
    feedback = (f"Score {score:.4f} (row {rank} of {of} from the worst; minibatch mean {mean:.4f}); {_METRIC_NOTE}. "
                f"The true prompt was: {sample.rewrite_prompt!r}. A better answer says what the true prompt says, "
                "in similar words.")
    return {"Inputs": inputs, "Generated Outputs": prediction or "(empty answer)", "Feedback": feedback}


def run_gepa(target: InstructionTarget, split: SuiteSplit, proposer: tuple[str, MeteredChatClient],
             embedder: Embedder, *, settings: GepaSettings = GepaSettings(), **session_options: Any
             ) -> OptimizationResult:
    """Optimise `target`'s instruction with GEPA (see the module docstring). `proposer`: (name, client)
    of the reflection model. `session_options`: those of `OptimizationSession`; its budget must set at
    least one limit (GEPA needs a stop)."""
    gepa = require("gepa", what="prh optimize gepa")
    if session_options.get("budget", Budget()).unlimited:
        raise ConfigError("GEPA needs a stop: give --max-metric-calls (or a token, cost or seconds budget)")
    proposer[1].preflight()
    session = OptimizationSession("gepa", target, split, embedder, proposers=[proposer], settings=asdict(settings),
                                  needs_train=True, **session_options)
    adapter = HarnessAdapter(session, proposer, settings)
    per_iteration = 2 * min(settings.minibatch_size, len(session.train)) + len(session.dev)
    stop = {"reason": ""}

    def stopper(_state) -> bool:
        stop["reason"] = stop["reason"] or session.over_budget(per_iteration)
        return bool(stop["reason"])

    class Callbacks:
        def on_candidate_rejected(self, event) -> None:
            adapter._close_pending(f"minibatch sum {event['new_score']:.4f} not above its parent's "
                                   f"{event['old_score']:.4f}", with_score=False)

    outcome = gepa.optimize(seed_candidate={COMPONENT: target.start}, trainset=list(session.train.samples),
                            valset=list(session.dev.samples), adapter=adapter,
                            candidate_selection_strategy=settings.candidate_selection,
                            reflection_minibatch_size=settings.minibatch_size, stop_callbacks=[stopper],
                            max_metric_calls=None, logger=_Log(), callbacks=[Callbacks()], seed=settings.seed,
                            raise_on_exception=True, skip_perfect_score=True, perfect_score=1.0)
    adapter._close_pending("not accepted before the run stopped")
    best = outcome.best_candidate[COMPONENT] if isinstance(outcome.best_candidate, dict) else outcome.best_candidate
    best_dev = session.dev_score_of(best)
    return session.finish(stop_reason=stop["reason"] or "gepa", rounds_completed=adapter.iteration,
                          best=(best, best_dev) if best_dev is not None else None,
                          extra={"gepa_candidates": len(outcome.candidates),
                                 "gepa_metric_calls": outcome.total_metric_calls})

