"""Embed texts through the store: each unique text is embedded once per embedder, ever.

A mean prompt scored on 1,300 rows costs one embedding; a rerun costs none. New vectors are written to
the store chunk by chunk as they are computed, so a run killed half way keeps what it paid for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from harness.embedders import Embedder
from harness.hashing import text_hash
from harness.store import Store

ProgressCallback = Callable[[int, int], None]


def embed_texts(
    texts: Sequence[str],
    embedder: Embedder,
    store: Store | None = None,
    *,
    chunk_size: int = 2048,
    on_progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Embeddings for `texts` (float32, one row each, input order), reading and filling the cache.

    `on_progress(done, total)` is called after each chunk of newly embedded unique texts.
    """
    hashes = [text_hash(t) for t in texts]
    unique: dict[str, str] = dict(zip(hashes, texts))
    vectors: dict[str, np.ndarray] = store.get_embeddings(embedder.fingerprint, unique) if store else {}
    missing = [h for h in unique if h not in vectors]
    # Longest first: sentence-transformers pads each batch to its longest text, so sorting across chunk
    # boundaries keeps padding as low as one big encode call would.
    missing.sort(key=lambda h: len(unique[h]), reverse=True)
    total = len(missing)
    if on_progress:
        on_progress(0, total)
    for start in range(0, total, chunk_size):
        chunk = missing[start:start + chunk_size]
        embedded = embedder.embed([unique[h] for h in chunk])
        if embedded.shape[0] != len(chunk):
            raise RuntimeError(f"embedder '{embedder.name}' returned {embedded.shape[0]} vectors for {len(chunk)} texts")
        if store is not None:
            store.put_embeddings(embedder.fingerprint, chunk, embedded)
        vectors.update(zip(chunk, embedded))
        if on_progress:
            on_progress(min(start + chunk_size, total), total)
    if not hashes:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([vectors[h] for h in hashes]).astype(np.float32, copy=False)
