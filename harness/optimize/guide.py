"""Gradient-guided token proposals (HotFlip / GCG style) for the token search.

Sampling tokens from a prior wastes most of a step's batch on edits that a first-order look would
reject. The guide differentiates the objective with respect to the *input embeddings* of each beam
prompt (one batched forward and backward pass through the embedder, cheap next to scoring a step's
thousands of candidates), and ranks every usable token v for a slot p by the linearised gain
g_p · e_v. A replace move then draws its token among the top-k of its position, an append or insert move
among the top-k of a placeholder token put in that gap. Each proposal is still decoded to text and
scored exactly; the gradient only decides which few of the vocabulary's tokens are tried where.

It needs a sentence-transformers model whose first module wraps a Hugging Face model (`auto_model`
with input embeddings), and an objective that can score embeddings as a differentiable torch function
(`MeanScsObjective.torch_values`, `DirectionObjective.torch_values`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from harness.optimize.tokens import TokenSpace


class GradientGuide:
    """Ranks a token space's single-token entries per slot of each beam prompt by the objective's gradient.

    Args:
        model: the loaded SentenceTransformer (`embedder.load()`).
        space: the token space whose single-token entries may be proposed.
        values: torch function (sentence embeddings n×d) → objective values (n,), differentiable.
        top_k: tokens kept per slot.
        gaps: insert slots (gaps with a placeholder) looked at per prompt and step, drawn at random.
    """

    def __init__(self, model: Any, space: TokenSpace, values: Callable[[Any], Any], *, top_k: int = 32,
                 gaps: int = 2) -> None:
        import torch

        self.model = model
        self.space = space
        self.values = values
        self.top_k = top_k
        self.gaps = gaps
        self.embeddings = model[0].auto_model.get_input_embeddings().weight.detach()
        singles = [(index, entry[0]) for index, entry in enumerate(space.entries) if len(entry) == 1]
        self.entry_index = np.array([index for index, _ in singles])
        self.token_ids = torch.tensor([token for _, token in singles], device=self.embeddings.device)
        self.allowed = self.embeddings[self.token_ids]  # (V, d_in)
        tokenizer = space.tokenizer
        anchor = space.anchor_id()
        wrapped = tokenizer([tokenizer.decode([anchor])], add_special_tokens=True)["input_ids"][0]
        at = wrapped.index(anchor)
        self.prefix, self.suffix = list(wrapped[:at]), list(wrapped[at + 1:])
        self.placeholder = anchor
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    @classmethod
    def available(cls, model: Any) -> bool:
        """Whether `model` exposes what the guide needs (a Hugging Face model with input embeddings)."""
        try:
            return model[0].auto_model.get_input_embeddings() is not None
        except (AttributeError, IndexError, TypeError, NotImplementedError):
            return False

    def prepare(self, prompts: list[list[int]], rng: np.random.Generator) -> None:
        """Rank the top-k entries of every slot of every prompt of a step (its beam) in ONE batched
        forward/backward pass: ("replace", p) for each position, ("append", n), and ("insert", q) for a few
        random gaps q."""
        import torch

        sequences: list[tuple[int, list[int], tuple[str, int] | None]] = []
        for k, units in enumerate(prompts):
            n = len(units)
            gaps = sorted(set(rng.integers(0, n + 1, size=min(self.gaps, n + 1)).tolist())) if self.gaps else []
            sequences.append((k, list(units), None))
            sequences.append((k, list(units) + [self.placeholder], ("append", n)))
            sequences += [(k, units[:q] + [self.placeholder] + units[q:], ("insert", q)) for q in gaps]
        full = [self.prefix + ids + self.suffix for _, ids, _ in sequences]
        length = max(len(ids) for ids in full)
        device = self.embeddings.device
        input_ids = torch.tensor([ids + [self.pad_id] * (length - len(ids)) for ids in full], device=device)
        mask = torch.tensor([[1] * len(ids) + [0] * (length - len(ids)) for ids in full], device=device)
        inputs = self.embeddings[input_ids].clone().requires_grad_(True)
        with torch.enable_grad():
            out = self.model({"inputs_embeds": inputs, "attention_mask": mask})["sentence_embedding"]
            # only the inputs' gradient: no weight gradients computed, none left behind on the model
            (gradient,) = torch.autograd.grad(self.values(out).sum(), [inputs])
        offset = len(self.prefix)
        rows, keys = [], []
        for s, (k, ids, key) in enumerate(sequences):
            if key is None:  # the prompt itself: one replace slot per position
                rows.extend(gradient[s, offset + p] for p in range(len(ids)))
                keys.extend((k, "replace", p) for p in range(len(ids)))
            else:
                rows.append(gradient[s, offset + key[1]])
                keys.append((k, *key))
        gains = torch.stack(rows) @ self.allowed.T  # (slots, V): linearised gain of each token per slot
        top = torch.topk(gains, min(self.top_k, gains.shape[1]), dim=1).indices.cpu().numpy()
        self._slots = {tuple(prompts[k]): {} for k in range(len(prompts))}
        for (k, kind, position), row in zip(keys, top):
            self._slots[tuple(prompts[k])][(kind, position)] = self.entry_index[row]

    def slots(self, units: list[int], rng: np.random.Generator) -> dict[tuple[str, int], np.ndarray]:
        """The ranked slots of `units` (from the last `prepare`, or a pass of its own)."""
        if tuple(units) not in getattr(self, "_slots", {}):
            self.prepare([units], rng)
        return self._slots[tuple(units)]

    def edits(self, units: list[int], moves: tuple[str, ...], attempts: int, rng: np.random.Generator) -> list[list[int]]:
        """`attempts` edits of `units`: moves drawn uniformly, tokens among their slot's top-k."""
        slots = self.slots(units, rng)
        inserts = [q for kind, q in slots if kind == "insert"]
        out: list[list[int]] = []
        move_codes = rng.integers(0, len(moves), size=attempts)
        picks = rng.random((attempts, 2))
        for code, (where, which) in zip(move_codes, picks):
            move = moves[code]
            if move == "delete":
                if len(units) > 1:
                    at = int(where * len(units))
                    out.append(units[:at] + units[at + 1:])
                continue
            if move == "replace":
                at = int(where * len(units))
                choices = slots[("replace", at)]
                token = self.space.item(int(choices[int(which * len(choices))]))
                if units[at:at + 1] != token:
                    out.append(units[:at] + token + units[at + 1:])
            elif move == "append":
                choices = slots[("append", len(units))]
                out.append(units + self.space.item(int(choices[int(which * len(choices))])))
            elif inserts:
                at = inserts[int(where * len(inserts))]
                choices = slots[("insert", at)]
                out.append(units[:at] + self.space.item(int(choices[int(which * len(choices))])) + units[at:])
        return out
