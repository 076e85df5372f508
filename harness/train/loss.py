"""The training loss: next-token cross-entropy summed over labelled positions, normalised per step.

Why not the model's own `loss`: with gradient accumulation, averaging each micro-batch's mean loss gives
a short answer in a small micro-batch the same weight as many tokens in a large one. Summing over every
labelled token of the optimizer step and dividing once by their total count (`step_token_count`) makes
the step's loss the mean over its answer tokens, independent of how rows were split into micro-batches.
Which positions are labelled (the answer only, or the whole sequence) is decided when examples are
encoded (`harness.train.data.encode_examples`); this module only skips IGNORE_INDEX.
"""

from __future__ import annotations

from typing import Any

from harness.train.data import IGNORE_INDEX


def summed_token_loss(logits: Any, labels: Any) -> tuple[Any, int]:
    """(sum of -log p(label) over labelled positions, number of those positions).

    `logits` is (batch, length, vocab) from a causal LM; position t predicts label t+1, as in
    transformers' own loss. Computed in float32 whatever the model's dtype.
    """
    import torch.nn.functional as F

    shifted_logits = logits[:, :-1, :].float()
    shifted_labels = labels[:, 1:]
    total = F.cross_entropy(shifted_logits.reshape(-1, shifted_logits.shape[-1]), shifted_labels.reshape(-1),
                            ignore_index=IGNORE_INDEX, reduction="sum")
    return total, int((shifted_labels != IGNORE_INDEX).sum())


def mean_token_loss(model: Any, batches: list[dict[str, Any]]) -> float:
    """Mean -log p over all labelled tokens of `batches` (collated micro-batches), without gradients."""
    import torch

    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            loss, n = summed_token_loss(logits, batch["labels"])
            total, count = total + float(loss), count + n
    return total / max(count, 1)
