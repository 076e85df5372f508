"""TextGrad (Yuksekgonul et al., 2024, "TextGrad: Automatic 'Differentiation' via Text") as a backend: the
`textgrad` package's graph, backward pass and Textual Gradient Descent optimiser improving an
instruction of the harness.

Each step:
1. a seeded minibatch of TRAIN rows is scored with the current instruction by the session
   (`harness.evaluation`: Workspace store, embedder, prediction cache);
2. the loss is that SCS, turned into text by the harness: the minibatch mean and the worst rows with
   the model's answer, the true prompt (train rows: the split allows it) and each row's score. It is a
   `textgrad` `StringBasedFunction` of the instruction `Variable`, so `loss.backward(engine)` asks the
   proposer (TextGrad's backward engine) for a textual gradient, and `TGD.step()` asks it for the
   improved instruction between TextGrad's `<IMPROVED_VARIABLE>` tags;
3. the new instruction is scored on the DEV split; it becomes the current one when it is no worse than
   the current one's dev score, else the step is reverted (TextGrad's own validation-revert loop).

The engine is `HarnessEngine`, a textgrad `EngineLM` over the harness's `MeteredChatClient` (retries,
keys, usage, budgets; no key ever goes into the environment, as textgrad's external-client engine
would do). An unusable answer (a failed request, no tags, an empty or over-long text, an instruction
already tried) is recorded and reverted without spending metric calls. The held-out split is never
given to TextGrad.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.embedders import Embedder
from harness.errors import ConfigError
from harness.evaluation import Result
from harness.llm import ChatRequestError
from harness.optimize.extras import require
from harness.optimize.meta_prompt import check_instruction
from harness.optimize.metering import MeteredChatClient
from harness.optimize.session import OptimizationResult, OptimizationSession, proposer_seed
from harness.optimize.targets import InstructionTarget
from harness.splits import SuiteSplit

ROLE = "instruction given to a model that recovers the rewrite prompt behind a rewritten text"
LOSS_PURPOSE = ("scores the instruction by the mean sharpened cosine similarity (cube of the cosine between "
                "sentence embeddings of the model's answer and the true prompt; 0 to 1, higher is better) on a "
                "minibatch of rows, and lists the worst rows")


@dataclass(frozen=True)
class TextGradSettings:
    """Args:
        steps: optimisation steps at most.
        minibatch_size: TRAIN rows the loss is computed on per step.
        feedback_rows: worst rows of the minibatch shown in the loss text.
        temperature: the backward engine's sampling temperature.
        max_answer_tokens: cap on each engine answer (gradient and update).
        seed: minibatch draws and the engine's sampling seeds.
    """

    steps: int = 10
    minibatch_size: int = 3
    feedback_rows: int = 3
    temperature: float = 1.0
    max_answer_tokens: int | None = 1024
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "minibatch_size", "feedback_rows"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_answer_tokens is not None and self.max_answer_tokens < 1:
            raise ConfigError(f"max_answer_tokens must be >= 1, got {self.max_answer_tokens}")


def import_textgrad(log_dir: str | Path | None = None):
    """`textgrad`, imported once. Its import opens a JSONL log in $TEXTGRAD_LOG_DIR (default ./logs/):
    point it at `log_dir` (a temporary folder when None) rather than the current folder."""
    if "textgrad" not in sys.modules:
        os.environ.setdefault("TEXTGRAD_LOG_DIR", str(log_dir or tempfile.mkdtemp(prefix="prh-textgrad-")))
    return require("textgrad", what="prh optimize textgrad")


def harness_engine(client: MeteredChatClient, *, temperature: float, max_tokens: int | None, seed: int):
    """A textgrad `EngineLM` whose calls go through `client`; `.calls` keeps (system, prompt, answer)
    and `.step` picks the sampling seeds (distinct per step and call, the same on a rerun)."""
    from textgrad.engine import EngineLM

    class HarnessEngine(EngineLM):
        def __init__(self) -> None:
            self.model_string = client.model
            self.calls: list[tuple[str | None, str, str]] = []
            self.step = 0

        def generate(self, prompt, system_prompt: str | None = None, **kwargs: Any) -> str:
            if not isinstance(prompt, str):
                raise ConfigError("the harness's TextGrad engine is text-only")
            messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
                {"role": "user", "content": prompt}]
            answer = client.complete(messages, temperature=temperature, max_tokens=max_tokens,
                                     seed=proposer_seed(seed, self.step, len(self.calls))).texts[0]
            self.calls.append((system_prompt, prompt, answer))
            return answer

        def __call__(self, prompt, **kwargs: Any) -> str:
            return self.generate(prompt, **kwargs)

    return HarnessEngine()


def loss_text(result: Result, rows, *, feedback_rows: int, show_texts: bool) -> str:
    """The minibatch's SCS as text feedback: its mean, then the worst rows (answer, true prompt, score)."""
    order = np.argsort(result.scores, kind="stable")[:feedback_rows]
    lines = [f"Mean score on {result.n} rows: {result.mean:.4f} (1.0 would be a perfect recovery). Worst rows:"]
    for rank, i in enumerate(order, start=1):
        sample = rows[int(i)]
        if show_texts:
            lines.append(f"{rank}. Rewritten text: {sample.rewritten_text[:300]!r}")
        lines.append(f"   Model answer: {result.predictions[int(i)] or '(empty)'!r}")
        lines.append(f"   True prompt: {sample.rewrite_prompt!r}; score {float(result.scores[int(i)]):.4f}")
    return "\n".join(lines)


def run_textgrad(target: InstructionTarget, split: SuiteSplit, proposer: tuple[str, MeteredChatClient],
                 embedder: Embedder, *, settings: TextGradSettings = TextGradSettings(),
                 log_dir: str | Path | None = None, **session_options: Any) -> OptimizationResult:
    """Optimise `target`'s instruction with TextGrad (see the module docstring). `proposer`: (name, client)
    of the backward engine. `session_options`: those of `OptimizationSession`."""
    tg = import_textgrad(log_dir)
    from textgrad.autograd import StringBasedFunction

    proposer[1].preflight()
    session = OptimizationSession("textgrad", target, split, embedder, proposers=[proposer],
                                  settings=asdict(settings), needs_train=True, **session_options)
    engine = harness_engine(proposer[1], temperature=settings.temperature, max_tokens=settings.max_answer_tokens,
                            seed=settings.seed)
    train, dev = session.train.samples, session.dev
    batch = min(settings.minibatch_size, len(train))
    current = target.start
    current_dev = session.score(current, dev)
    session.record(0, None, "start", current, result=current_dev)
    current_score = current_dev.mean
    variable = tg.Variable(current, requires_grad=True, role_description=ROLE)
    optimizer = tg.TGD(parameters=[variable], engine=engine)
    stop_reason, steps_done = "", 0
    for step in range(1, settings.steps + 1):
        stop_reason = session.over_budget(batch + len(dev))
        if stop_reason:
            break
        steps_done, engine.step = step, step
        rng = np.random.default_rng([settings.seed, step])
        rows = [train[i] for i in sorted(rng.choice(len(train), size=batch, replace=False).tolist())]
        minibatch = session.score(current, rows, part="train")
        feedback = loss_text(minibatch, rows, feedback_rows=settings.feedback_rows,
                             show_texts=target.kind != "mean-prompt")
        variable.set_value(current)
        optimizer.zero_grad()
        loss = StringBasedFunction(lambda instruction, text=feedback: text, LOSS_PURPOSE)(
            inputs={"instruction": variable}, response_role_description="the instruction's loss on a minibatch")
        calls_before = len(engine.calls)
        problem, status, answer = None, "", None
        try:
            loss.backward(engine)
            optimizer.step()
        except ChatRequestError as error:
            problem, status = str(error), "failed"
        except IndexError:  # TGD found no <IMPROVED_VARIABLE> tags in the answer
            problem, status, answer = "no <IMPROVED_VARIABLE>…</IMPROVED_VARIABLE> in the answer", "invalid", \
                engine.calls[-1][2]
        sent = [prompt for _, prompt, _ in engine.calls[calls_before:]]
        session.round(step, sent[-1] if sent else "", [s.id for s in rows])
        proposal = variable.value if not status else None
        if not status and (problem := check_instruction(proposal)) is not None:
            status, answer = "invalid", engine.calls[-1][2]
        if status:
            session.record(step, proposer, status, None, problem=problem, answer=answer,
                           minibatch_score=minibatch.mean)
        elif session.dev_score_of(proposal) is not None:
            session.record(step, proposer, "duplicate", proposal, minibatch_score=minibatch.mean)
        elif stop_reason := session.over_budget(len(dev)):
            session.record(step, proposer, "over_budget", proposal, problem=stop_reason)
            break
        else:
            result = session.score(proposal, dev)
            accepted = result.mean >= current_score
            session.record(step, proposer, "scored", proposal, result=result, minibatch_score=minibatch.mean,
                           accepted=accepted, gradient=engine.calls[calls_before][2] if sent else None)
            if accepted:
                current, current_score = proposal, result.mean
    return session.finish(stop_reason=stop_reason or "steps", rounds_completed=steps_done)
