"""The mean-prompt objective: mean SCS of one constant prediction against a fixed set of true prompts.

With unit-normalised truth embeddings T (u×d, one row per *distinct* prompt, weighted by how many rows
hold it) and a candidate embedding c, mean SCS = Σ w_u |T_u · c|³: T is embedded once, and a batch of
candidates is scored by one matrix product. Candidate strings are embedded in batches through
`harness.embedding_cache.embed_texts`, so each unique string is embedded once ever (a rerun, or a second
search on the same embedder, reads them from the store), and a string met twice in one run is scored
from memory without even a store lookup.

The numbers equal what `harness.evaluation` computes for a constant candidate on the same rows (tested),
so a search optimises exactly the metric it is reported with.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from harness.embedders import Embedder
from harness.embedding_cache import embed_texts
from harness.errors import ConfigError
from harness.metric import sharpen, torch_scs_matrix, unit_rows
from harness.store import Store

#: A rejected candidate (over the length cap) scores this, so it can never win.
REJECTED = float("-inf")

TokenCounter = Callable[[Sequence[str]], list[int]]


def token_counter(embedder: Embedder) -> TokenCounter:
    """How many tokens the embedder's own tokenizer makes of each text (special tokens included), so the
    length cap is the one the embedder truncates at. Embedders without a tokenizer (test stubs) may give
    a `count_tokens(texts)` method; otherwise whitespace words + 2 are counted."""
    own = getattr(embedder, "count_tokens", None)
    if callable(own):
        return own
    load = getattr(embedder, "load", None)
    tokenizer = getattr(load(), "tokenizer", None) if callable(load) else None
    if tokenizer is not None:
        def count(texts: Sequence[str]) -> list[int]:
            if not texts:
                return []
            return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=True)["input_ids"]]
        return count
    return lambda texts: [len(text.split()) + 2 for text in texts]


class _BatchObjective:
    """What every search objective shares: the length cap, one batched encode call for the new strings of
    a step (through the store), memoised scores, and counts. Subclasses say how vectors score.

    `device`: where the scoring matrix product runs. None: numpy on the CPU. A torch device ("cpu",
    "cuda", "cuda:1"): torch on that device, with the reference vectors kept there, so a GPU embedder's
    thousands of candidates per step are scored where they were embedded (`scoring_device(embedder)`).
    """

    def __init__(self, embedder: Embedder, store: Store | None, *, max_tokens: int | None,
                 device: str | None) -> None:
        if max_tokens is not None and max_tokens < 1:
            raise ConfigError(f"max_tokens must be >= 1, got {max_tokens}")
        self.embedder = embedder
        self.store = store
        self.max_tokens = max_tokens
        self.device = device
        self._count_tokens = token_counter(embedder) if max_tokens is not None else None
        self._memo: dict[str, float] = {}
        #: distinct candidate strings scored (embedded or read from the store); rejected ones not counted
        self.evaluations = 0
        #: candidates rejected by the length cap
        self.rejected = 0

    def score_vectors(self, vectors: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """The score of each text (REJECTED for texts over the length cap), embedding the new ones in one
        batch through the store."""
        new = [t for t in dict.fromkeys(texts) if t not in self._memo]
        if new and self._count_tokens is not None:
            lengths = self._count_tokens(new)
            for text, length in zip(new, lengths):
                if length > self.max_tokens:
                    self._memo[text] = REJECTED
                    self.rejected += 1
            new = [t for t in new if t not in self._memo]
        if new:
            scores = self.score_vectors(embed_texts(new, self.embedder, self.store, chunk_seconds=None))
            self._memo.update(zip(new, scores.tolist()))
            self.evaluations += len(new)
        return np.array([self._memo[t] for t in texts], dtype=np.float64)

    def seen(self, text: str) -> bool:
        """Whether `text` was scored (or rejected) already in this run."""
        return text in self._memo

    def torch_values(self, embeddings):
        """The objective as a differentiable torch function of sentence embeddings (n×d) → (n,): what
        `harness.optimize.guide.GradientGuide` differentiates."""
        raise NotImplementedError

    def _reference(self, name: str, matrix: np.ndarray, like):
        """`matrix` as a tensor with the dtype and device of `like`, made once."""
        import torch

        cache = self.__dict__.setdefault("_torch_cache", {})
        key = (name, like.dtype, like.device)
        if key not in cache:
            cache[key] = torch.as_tensor(np.asarray(matrix), dtype=like.dtype, device=like.device)
        return cache[key]

    def _on_device(self, matrix: np.ndarray):
        """`matrix` where the products run: itself (numpy, float64), or a float32 torch tensor on `device`."""
        if self.device is None:
            return np.asarray(matrix, dtype=np.float64)
        import torch

        return torch.as_tensor(np.ascontiguousarray(matrix, dtype=np.float32), device=self.device)

    def _cosines(self, vectors: np.ndarray, reference):
        """Cosines (candidates × reference rows; the reference rows are unit vectors), where they run."""
        if self.device is None:
            return np.clip(unit_rows(vectors) @ reference.T, -1.0, 1.0)
        import torch

        candidates = torch.nn.functional.normalize(self._on_device(vectors), dim=1)
        return (candidates @ reference.T).clamp_(-1.0, 1.0)


def _to_numpy(values) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values.astype(np.float64, copy=False)
    return values.double().cpu().numpy()


class MeanScsObjective(_BatchObjective):
    """Scores constant prompts against `truths` (the train split's prompts; never the held-out ones).

    Args:
        truths: the true prompts, one per row (duplicates count once per row, as in the metric).
        embedder: what embeds truths and candidates; the objective is only comparable within it.
        store: the embedding cache (None: embed without caching).
        max_tokens: candidates longer than this many embedder tokens are rejected unscored: the scorer
            truncates there (128 tokens for sentence-t5), so words past the cap only look like progress.
        signed: keep the cosine's sign (as `harness.metric.scs_rows(signed=True)`).
        device: where the scoring product runs (None: numpy; see `_BatchObjective`).
    """

    def __init__(self, truths: Sequence[str], embedder: Embedder, store: Store | None = None, *,
                 max_tokens: int | None = 128, signed: bool = False, device: str | None = None) -> None:
        if not truths:
            raise ConfigError("the objective needs at least one true prompt (the train split is empty)")
        super().__init__(embedder, store, max_tokens=max_tokens, device=device)
        distinct: dict[str, int] = {}
        for truth in truths:
            distinct[truth] = distinct.get(truth, 0) + 1
        self.signed = signed
        self.n_rows = len(truths)
        #: weight of each distinct truth (its share of the rows), in `truth_vectors` order
        self.weights = np.array(list(distinct.values()), dtype=np.float64) / len(truths)
        #: unit embeddings of the distinct truths (float64), one row each
        self.truth_vectors = unit_rows(embed_texts(list(distinct), embedder, store))
        self._truths = self._on_device(self.truth_vectors)
        self._weights = self._on_device(self.weights)

    def score_vectors(self, vectors: np.ndarray) -> np.ndarray:
        """Mean SCS of each candidate vector (one row each) against the truths: one matrix product, where
        `device` says (only the per-candidate means come back from an accelerator)."""
        return _to_numpy(sharpen(self._cosines(vectors, self._truths), signed=self.signed) @ self._weights)

    def torch_values(self, embeddings):
        truths = self._reference("truths", self.truth_vectors, embeddings)
        return (torch_scs_matrix(embeddings, truths, signed=self.signed)
                @ self._reference("weights", self.weights, embeddings))


class DirectionObjective(_BatchObjective):
    """Scores texts by the cosine of their embedding with one unit `direction` (e.g. the oracle vector):
    what the nearest-string search maximises."""

    def __init__(self, direction: np.ndarray, embedder: Embedder, store: Store | None = None, *,
                 max_tokens: int | None = 128, device: str | None = None) -> None:
        super().__init__(embedder, store, max_tokens=max_tokens, device=device)
        direction = unit_rows(np.asarray(direction, dtype=np.float64).reshape(1, -1))
        if not direction.any():
            raise ConfigError("the direction of a DirectionObjective must not be the zero vector")
        self.direction = direction[0]
        self._direction = self._on_device(direction)

    def score_vectors(self, vectors: np.ndarray) -> np.ndarray:
        return _to_numpy(self._cosines(vectors, self._direction)[:, 0])

    def torch_values(self, embeddings):
        import torch

        direction = self._reference("direction", self.direction, embeddings)
        return torch.nn.functional.normalize(embeddings, dim=1) @ direction


def scoring_device(embedder: Embedder) -> str | None:
    """Where an objective should score this embedder's vectors: the torch device the embedder's model is
    on when that is an accelerator ("cuda:0", "mps"); None (numpy) for the CPU or a model without a
    device. Loads the model (the objective embeds the truths with it right after anyway)."""
    load = getattr(embedder, "load", None)
    device = getattr(load(), "device", None) if callable(load) else None
    text = str(device) if device is not None else "cpu"
    return None if text == "cpu" else text
