"""Training data: which rows, how they become token ids, and in which order they are seen.

- `check_disjoint` refuses an eval suite that is the training suite or shares rows with it: fine-tuning
  never sees the split it is scored on, otherwise the selected checkpoint is the best memoriser;
- `encode_examples` formats rows with `harness.prompting.encode_training_example`, the code the hf
  candidate's prompts come from, so training and inference cannot drift apart;
- `BatchPlan` fixes which rows make up each optimizer step from (seed, epoch) alone, so a resumed run
  sees exactly the batches the interrupted one would have seen, with no sampler state to save.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.candidates.cache import input_hash
from harness.data import Sample, Suite
from harness.errors import ConfigError, DataError
from harness.hashing import json_fingerprint
from harness.prompting import encode_training_example

#: Label of positions the loss ignores (PyTorch's cross-entropy `ignore_index`, as in transformers).
IGNORE_INDEX = -100


def check_disjoint(train: Suite, evaluation: Suite) -> None:
    """Raise ConfigError when the eval suite is the training suite, or shares a row with it (the same
    original and rewritten text, whatever the ids: ids are often just row numbers)."""
    if train.name == evaluation.name or (train.source and train.source == evaluation.source):
        raise ConfigError(f"the eval suite '{evaluation.name}' is the training suite ({train.source}): "
                          "fine-tuning must never see the split it is scored on; hold out another suite")
    train_rows = {input_hash(s): s.id for s in train.samples}
    shared = [(s.id, train_rows[input_hash(s)]) for s in evaluation.samples if input_hash(s) in train_rows]
    if shared:
        shown = ", ".join(f"eval row {e!r} = train row {t!r}" for e, t in shared[:5])
        more = f" and {len(shared) - 5} more" if len(shared) > 5 else ""
        raise ConfigError(f"{len(shared)} of {len(evaluation)} rows of eval suite '{evaluation.name}' "
                          f"({evaluation.source}) are also in training suite '{train.name}' ({train.source}): "
                          f"{shown}{more}. Remove them from one side: the eval suite must be held out.")


@dataclass(frozen=True)
class Example:
    """One tokenized training row: ids of prompt + answer, and labels (IGNORE_INDEX where no loss)."""

    id: str
    input_ids: list[int]
    labels: list[int]

    @property
    def label_tokens(self) -> int:
        """Positions that contribute to the loss: labels are predicted from the previous position, so
        the first token never is."""
        return sum(1 for label in self.labels[1:] if label != IGNORE_INDEX)


def encode_examples(tokenizer: Any, samples: Sequence[Sample], *, prompt_options: Mapping[str, Any],
                    full_sequence_loss: bool = False, max_length: int | None = None) -> tuple[list[Example], list[str]]:
    """Tokenize `samples` for training; returns (examples, ids of rows left out for exceeding `max_length`).

    Labels are -100 on the prompt (loss on the answer only) unless `full_sequence_loss`, which trains on
    every token. Rows are never cut: a cut prompt is one the model never sees at inference.
    """
    examples: list[Example] = []
    too_long: list[str] = []
    for sample in samples:
        encoded = encode_training_example(tokenizer, sample, **prompt_options)
        ids = encoded["input_ids"]
        if max_length is not None and len(ids) > max_length:
            too_long.append(sample.id)
            continue
        labels = list(ids) if full_sequence_loss else encoded["labels"]
        examples.append(Example(sample.id, list(ids), list(labels)))
    return examples, too_long


def examples_fingerprint(examples: Sequence[Example]) -> str:
    """Hash of exactly what the model is trained on (token ids and labels): it changes with the rows, the
    prompt format, the tokenizer and the loss mode."""
    return json_fingerprint([[e.input_ids, e.labels] for e in examples])


def require_examples(examples: Sequence[Example], too_long: Sequence[str], suite: Suite, max_length: int) -> None:
    """Raise DataError when no row is left to train on."""
    if not examples:
        raise DataError(suite.source or suite.name, f"all {len(too_long)} rows are longer than max_length="
                        f"{max_length} tokens; raise --max-length or lower --max-text-chars")


@dataclass(frozen=True)
class BatchPlan:
    """Which rows each optimizer step trains on, from the seed alone.

    The rows are shuffled once per epoch (numpy generator seeded with (seed, epoch)) and cut into
    micro-batches of `batch_size`; optimizer step s (1-based) uses micro-batches (s-1)*A … s*A-1 of that
    endless stream, A = `gradient_accumulation`, so an epoch boundary may fall inside a step.
    """

    n_rows: int
    batch_size: int
    gradient_accumulation: int
    seed: int

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(self.n_rows / self.batch_size)

    def total_steps(self, *, epochs: float, max_steps: int | None) -> int:
        """Optimizer steps of the run: `max_steps` when given, else enough for `epochs` passes."""
        if max_steps is not None:
            return max_steps
        return max(1, math.ceil(epochs * self.batches_per_epoch / self.gradient_accumulation))

    def epoch_at(self, step: int) -> float:
        """Passes over the data completed after optimizer step `step`."""
        return step * self.gradient_accumulation / self.batches_per_epoch

    def micro_batches(self, step: int) -> list[list[int]]:
        """Row indices of each micro-batch of optimizer step `step` (1-based)."""
        batches = []
        for micro in range((step - 1) * self.gradient_accumulation, step * self.gradient_accumulation):
            epoch, index = divmod(micro, self.batches_per_epoch)
            order = np.random.default_rng([self.seed, epoch]).permutation(self.n_rows)
            batches.append([int(i) for i in order[index * self.batch_size:(index + 1) * self.batch_size]])
        return batches


def collate(examples: Sequence[Example], pad_id: int, device: Any = "cpu") -> dict[str, Any]:
    """Right-padded tensors (input_ids, attention_mask, labels) for one micro-batch on `device`."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        length = len(example.input_ids)
        input_ids[row, :length] = torch.tensor(example.input_ids)
        labels[row, :length] = torch.tensor(example.labels)
        attention_mask[row, :length] = 1
    return {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device), "labels": labels.to(device)}
