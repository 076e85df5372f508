"""Deduplication of generated rows: exact copies and near-duplicates by embedding cosine.

A synthetic set grows by sampling the same catalog again, so it drifts towards repeats: the same
instruction over nearly the same original. Such rows add no information and make confidence intervals
too narrow (they are not independent), so a suite keeps the first of each cluster.

A row duplicates an earlier *kept* row when, for every compared field (by default `original_text` and
`rewrite_prompt`: the same task), the texts are equal after case and whitespace folding ("exact"), or
their embeddings' cosine is at least `threshold` ("near"). Embeddings go through the store
(`harness.embedding_cache.embed_texts`), so a second pass costs nothing. Pairs are found block by block
(a matrix product per block, never an n×n matrix in memory); the greedy pass over them keeps file order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.errors import ConfigError

if TYPE_CHECKING:
    from harness.embedders import Embedder
    from harness.store import Store

DEFAULT_FIELDS = ("original_text", "rewrite_prompt")
DEFAULT_THRESHOLD = 0.95


@dataclass(frozen=True)
class Duplicate:
    """Row `id` repeats the kept row `duplicate_of`; `similarity` is the smallest cosine over the fields."""

    id: str
    duplicate_of: str
    kind: str
    similarity: float


def _fold(text: Any) -> str:
    return " ".join(str(text or "").casefold().split())


def find_duplicates(rows: Sequence[Mapping[str, Any]], *, fields: Sequence[str] = DEFAULT_FIELDS,
                    embedder: Embedder | None = None, store: Store | None = None,
                    threshold: float = DEFAULT_THRESHOLD, block: int = 1024) -> list[Duplicate]:
    """The rows to drop, in file order (see the module docstring). Without an embedder only exact
    duplicates are found."""
    if not fields:
        raise ConfigError("deduplication needs at least one field to compare")
    if not 0.0 < threshold <= 1.0:
        raise ConfigError(f"the near-duplicate threshold must be in (0, 1], got {threshold!r}")
    for position, row in enumerate(rows, start=1):
        missing = [f for f in fields if f not in row]
        if missing:
            raise ConfigError(f"row {position} (id {row.get('id')!r}) has no field {missing[0]!r} to compare")
    ids = [str(row.get("id", i)) for i, row in enumerate(rows)]
    dropped: dict[int, Duplicate] = {}
    first_of: dict[tuple[str, ...], int] = {}
    for i, row in enumerate(rows):
        key = tuple(_fold(row[f]) for f in fields)
        if key in first_of:
            dropped[i] = Duplicate(ids[i], ids[first_of[key]], "exact", 1.0)
        else:
            first_of[key] = i
    if embedder is None or len(rows) < 2:
        return [dropped[i] for i in sorted(dropped)]
    from harness.embedding_cache import embed_texts

    vectors = [embed_texts([str(row[f]) for row in rows], embedder, store) for f in fields]
    earlier = _near_pairs(vectors, threshold, block)
    for i in range(len(rows)):
        if i in dropped:
            continue
        for j, similarity in earlier.get(i, ()):
            if j not in dropped:  # only a kept row can make a later one redundant
                dropped[i] = Duplicate(ids[i], ids[j], "near", similarity)
                break
    return [dropped[i] for i in sorted(dropped)]


def _near_pairs(vectors: Sequence[np.ndarray], threshold: float, block: int) -> dict[int, list[tuple[int, float]]]:
    """For each row i, the earlier rows j < i whose cosine is >= threshold on every field, most similar first."""
    n = vectors[0].shape[0]
    pairs: dict[int, list[tuple[int, float]]] = {}
    for start in range(0, n, block):
        stop = min(n, start + block)
        similarity = None
        for matrix in vectors:
            part = matrix[start:stop] @ matrix[:stop].T
            similarity = part if similarity is None else np.minimum(similarity, part)
        rows_in_block = np.arange(start, stop)[:, None]
        similarity[np.arange(stop)[None, :] >= rows_in_block] = -np.inf  # only earlier rows
        for local, j in zip(*np.nonzero(similarity >= threshold - 1e-6)):
            pairs.setdefault(start + int(local), []).append((int(j), float(similarity[local, j])))
    for found in pairs.values():
        found.sort(key=lambda pair: (-pair[1], pair[0]))
    return pairs
