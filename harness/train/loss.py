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


def batch_token_loss(model: Any, batch: dict[str, Any]) -> tuple[Any, int]:
    """`summed_token_loss` of a collated micro-batch, computing logits only where a label follows.

    Why: a causal LM's output head multiplies every position by the whole vocabulary (262k rows for
    Gemma-3: on a 270M model that head costs more than all layers together), while answer-only loss needs
    the few answer positions. transformers' `logits_to_keep` takes a boolean (batch, length) mask and
    returns the kept positions' logits flattened in row-major order, the order in which the labels are
    gathered here, so the sum is the same as over the full logits. A model whose forward does not take
    that mask (or returns another shape) gets the full logits instead.
    """
    import torch
    import torch.nn.functional as F

    labels = batch["labels"]
    targets_mask = labels[:, 1:] != IGNORE_INDEX
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = targets_mask
    count = int(targets_mask.sum())
    try:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=keep).logits
    except TypeError:  # a forward without logits_to_keep
        logits = None
    if logits is None or logits.dim() != 2 or logits.shape[0] != count:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return summed_token_loss(logits, labels)
    total = F.cross_entropy(logits.float(), labels[:, 1:][targets_mask], reduction="sum")
    return total, count


def mean_token_loss(model: Any, batches: list[dict[str, Any]]) -> float:
    """Mean -log p over all labelled tokens of `batches` (collated micro-batches), without gradients."""
    import torch

    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            loss, n = batch_token_loss(model, batch)
            total, count = total + float(loss), count + n
    return total / max(count, 1)
