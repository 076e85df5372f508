"""Embed texts through the store: each unique text is embedded once per embedder, ever.

A mean prompt scored on 1,300 rows costs one embedding; a rerun costs none. New vectors are written to
the store chunk by chunk as they are computed (chunks of a few seconds), so a run killed half way keeps
what it paid for.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from harness.embedders import Embedder
from harness.hashing import text_hash
from harness.store import Store

ProgressCallback = Callable[[int, int], None]


#: Each chunk of new vectors is committed to the store; chunks are sized to take about this long, so a
#: kill or Ctrl-C loses at most a few seconds of embedding work.
CHUNK_SECONDS = 2.0
FIRST_CHUNK = 32
MAX_CHUNK = 2048


def embed_texts(
    texts: Sequence[str],
    embedder: Embedder,
    store: Store | None = None,
    *,
    chunk_seconds: float | None = CHUNK_SECONDS,
    on_progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Embeddings for `texts` (float32, one row each, input order), reading and filling the cache.

    New texts are embedded longest first (sentence-transformers pads a batch to its longest text, so
    sorting keeps padding as low as one big encode call would) in chunks that grow or shrink to take about
    `chunk_seconds` each; every chunk is committed to the store as soon as it is embedded. With
    `chunk_seconds=None` everything new is one encode call (a search step's batch, already small).
    `on_progress(done, total)` is called after each chunk.
    """
    hashes = [text_hash(t) for t in texts]
    unique: dict[str, str] = dict(zip(hashes, texts))
    vectors: dict[str, np.ndarray] = store.get_embeddings(embedder.fingerprint, unique) if store else {}
    missing = [h for h in unique if h not in vectors]
    missing.sort(key=lambda h: len(unique[h]), reverse=True)
    total = len(missing)
    if on_progress:
        on_progress(0, total)
    start, size = 0, (FIRST_CHUNK if chunk_seconds is not None else max(total, 1))
    while start < total:
        chunk = missing[start:start + size]
        began = time.perf_counter()
        embedded = embedder.embed([unique[h] for h in chunk])
        elapsed = time.perf_counter() - began
        if embedded.shape[0] != len(chunk):
            raise RuntimeError(f"embedder '{embedder.name}' returned {embedded.shape[0]} vectors for {len(chunk)} texts")
        if store is not None:
            store.put_embeddings(embedder.fingerprint, chunk, embedded)
        vectors.update(zip(chunk, embedded))
        start += len(chunk)
        if on_progress:
            on_progress(start, total)
        # Texts get shorter as we go (longest first), so a chunk sized on the last one errs on the short side.
        if chunk_seconds is not None:
            per_text = elapsed / len(chunk)
            size = int(min(MAX_CHUNK, max(FIRST_CHUNK, chunk_seconds / per_text if per_text > 0 else MAX_CHUNK)))
    if not hashes:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([vectors[h] for h in hashes]).astype(np.float32, copy=False)
