"""Score a checkpoint as the harness scores any candidate: the hf candidate's generation, then
`harness.evaluation` (SCS per row, mean, bootstrap CI).

The candidate is a real `HFCandidate` for (base, checkpoint adapter), with the prompt and generation
settings the final candidates.toml entry will have, so its fingerprint is that of the checkpoint and
its answers are produced by the very code `pytest suites/` runs. Only `load()` differs: it hands over the
model being trained instead of reading base and adapter from disk again, which for a 7B base would cost
more than the evaluation itself.

Evaluation runs under `torch.random.fork_rng`, so it never changes the random numbers training draws
next (dropout): a run that evaluates, or is resumed, trains exactly as one that does not.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.candidates.hf import HFCandidate
from harness.data import Suite
from harness.embedders import Embedder
from harness.evaluation import DEFAULT_BOOTSTRAP, BootstrapSettings, Result, evaluate
from harness.files import write_text_atomic
from harness.stats import ConfidenceInterval, paired_bootstrap_delta
from harness.store import Store
from harness.train.config import TrainConfig
from harness.train.data import Example, collate
from harness.train.history import EvalRecord
from harness.train.loss import mean_token_loss


class LiveModelCandidate(HFCandidate):
    """An hf candidate for a checkpoint whose model is already in memory (the one being trained).

    Everything but loading is HFCandidate's own: preflight (the checkpoint's adapter must fit the base),
    fingerprint (base and adapter files, prompt, generation settings), batching, stop tokens and answer
    post-processing.
    """

    def __init__(self, name: str, model_dir: Path, adapter_dir: Path, live: tuple[Any, Any], **options: Any) -> None:
        super().__init__(name, model_dir, adapter=adapter_dir, **options)
        self._live = live

    def load(self) -> tuple[Any, Any]:
        self.preflight()
        return self._live


def candidate_options(config: TrainConfig, dtype: str, train_suites: Sequence[str]) -> dict[str, Any]:
    """HFCandidate keyword arguments that make it ask exactly what the adapter was trained on."""
    return {"dtype": dtype, "batch_size": config.eval_batch_size, "max_new_tokens": config.eval_max_new_tokens,
            "system": config.system, "user_template": config.user_template,
            "max_text_chars": config.max_text_chars, "load_in_4bit": config.load_in_4bit,
            "train_suites": list(train_suites)}


def generation_tokenizer(tokenizer: Any) -> Any:
    """A copy of `tokenizer` set up as the hf candidate sets up its own: left padding, a pad token."""
    import copy

    generation = copy.deepcopy(tokenizer)
    generation.padding_side = "left"
    if generation.pad_token is None:
        generation.pad_token = generation.eos_token
    return generation


@dataclass(frozen=True)
class CheckpointScore:
    record: EvalRecord
    result: Result


def score_checkpoint(
    *,
    step: int,
    checkpoint_name: str,
    model: Any,
    tokenizer: Any,
    model_dir: Path,
    adapter_dir: Path,
    device: str,
    suite: Suite,
    eval_examples: Sequence[Example],
    embedder: Embedder,
    store: Store | None,
    options: dict[str, Any],
    train_loss: float,
    bootstrap: BootstrapSettings = DEFAULT_BOOTSTRAP,
) -> CheckpointScore:
    """Generate on `suite` with the live model and score the answers; also the loss of the suite's true
    answers (`eval_examples`, answer-only labels). The model is left in training mode."""
    import torch

    started = time.perf_counter()
    candidate = LiveModelCandidate(f"checkpoint {checkpoint_name}", model_dir, adapter_dir,
                                   (model, generation_tokenizer(tokenizer)), device=device, **options)
    model.eval()
    try:
        with torch.random.fork_rng(devices=[torch.device(device)] if device.startswith("cuda") else []):
            result = evaluate(candidate, suite, embedder, store=store, bootstrap=bootstrap)
            pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
            batch_size = options["batch_size"]
            batches = [collate(eval_examples[i:i + batch_size], pad_id, device)
                       for i in range(0, len(eval_examples), batch_size)]
            loss = mean_token_loss(model, batches)
    finally:
        model.train()
    record = EvalRecord(step=step, scs=result.mean, ci_low=result.interval.low, ci_high=result.interval.high,
                        confidence=result.interval.confidence, n=result.n, n_empty=len(result.empty_prediction_ids),
                        eval_loss=loss, train_loss=train_loss, seconds=time.perf_counter() - started,
                        checkpoint=checkpoint_name)
    return CheckpointScore(record, result)


def write_eval_rows(path: Path, result: Result) -> Path:
    """One JSON line per eval row (id, score, prediction, truth): what the checkpoint answered, kept
    after the checkpoint itself is pruned, and what `paired_delta` compares."""
    lines = [json.dumps({"id": i, "score": float(s), "prediction": p, "truth": t}, ensure_ascii=False)
             for i, s, p, t in zip(result.ids, result.scores, result.predictions, result.truths)]
    return write_text_atomic(path, "\n".join(lines) + "\n")


def read_eval_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def paired_delta(selected: Path, other: Path, *, groups: Sequence[str] | None = None,
                 bootstrap: BootstrapSettings = DEFAULT_BOOTSTRAP) -> ConfidenceInterval:
    """Paired bootstrap CI of mean(selected − other) over the same eval rows (files of `write_eval_rows`):
    whether the selection gained anything beyond noise."""
    a, b = read_eval_rows(selected), read_eval_rows(other)
    if [r["id"] for r in a] != [r["id"] for r in b]:
        raise ValueError(f"{selected} and {other} do not score the same rows")
    return paired_bootstrap_delta(np.array([r["score"] for r in a]), np.array([r["score"] for r in b]),
                                  groups=groups, confidence=bootstrap.confidence, n_resamples=bootstrap.n_resamples,
                                  method=bootstrap.method, seed=bootstrap.seed)
