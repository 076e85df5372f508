"""What happened during a run, as plain data: a loss per optimizer step, a score per evaluation, and
the model-selection rule.

The rule is the point of this module: the best checkpoint is the one with the highest mean SCS on the
held-out suite, not the one with the lowest loss. The two disagree often enough (a lower loss can come
with longer, hedged answers that embed worse) that the card reports both, plus the last checkpoint.
Ties in SCS go to the earlier step: the less-trained adapter that scores as well.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class StepRecord:
    """One optimizer step: mean loss over its labelled tokens, the learning rate it used, real (non-pad)
    tokens processed, wall seconds, and the data passes completed after it."""

    step: int
    loss: float
    learning_rate: float
    tokens: int
    seconds: float
    epoch: float


@dataclass(frozen=True)
class EvalRecord:
    """One evaluation of a checkpoint on the held-out suite.

    `scs`, `ci_low`, `ci_high`: mean SCS and its bootstrap interval (harness.evaluation); `eval_loss`: mean
    -log p of the eval suite's true answers (answer tokens only, whatever the training loss covered);
    `train_loss`: mean step loss since the previous evaluation.
    """

    step: int
    scs: float
    ci_low: float
    ci_high: float
    confidence: float
    n: int
    n_empty: int
    eval_loss: float
    train_loss: float
    seconds: float
    checkpoint: str


@dataclass
class History:
    """The run so far. Saved in every checkpoint, so a resumed run continues its own history."""

    steps: list[StepRecord] = field(default_factory=list)
    evals: list[EvalRecord] = field(default_factory=list)
    #: wall seconds in training steps, in evaluations, and in checkpoint writing
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    save_seconds: float = 0.0

    @property
    def train_tokens(self) -> int:
        return sum(s.tokens for s in self.steps)

    def evaluated(self, step: int) -> bool:
        return any(e.step == step for e in self.evals)

    def mean_loss_since_last_eval(self) -> float:
        """Mean step loss over the steps after the latest evaluation (NaN when there are none)."""
        since = self.evals[-1].step if self.evals else 0
        losses = [s.loss for s in self.steps if s.step > since]
        return sum(losses) / len(losses) if losses else float("nan")

    def best_by_scs(self) -> EvalRecord | None:
        """The selected checkpoint: highest mean SCS, earliest on ties."""
        return max(self.evals, key=lambda e: (e.scs, -e.step), default=None)

    def lowest_eval_loss(self) -> EvalRecord | None:
        """The checkpoint a loss-based selection would have picked (for comparison only)."""
        return min(self.evals, key=lambda e: (e.eval_loss, e.step), default=None)

    def lowest_train_loss_step(self) -> int | None:
        return min(self.steps, key=lambda s: (s.loss, s.step)).step if self.steps else None

    def last_eval(self) -> EvalRecord | None:
        return self.evals[-1] if self.evals else None

    def to_dict(self) -> dict[str, Any]:
        return {"steps": [asdict(s) for s in self.steps], "evals": [asdict(e) for e in self.evals],
                "train_seconds": self.train_seconds, "eval_seconds": self.eval_seconds,
                "save_seconds": self.save_seconds}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> History:
        return cls(steps=[StepRecord(**s) for s in data.get("steps", [])],
                   evals=[EvalRecord(**e) for e in data.get("evals", [])],
                   train_seconds=float(data.get("train_seconds", 0.0)),
                   eval_seconds=float(data.get("eval_seconds", 0.0)),
                   save_seconds=float(data.get("save_seconds", 0.0)))
