"""The embedding cache keeps what it paid for: a kill loses at most one small chunk of work."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from conftest import REPO_ROOT
from test_embedders import CountingEmbedder

from harness.embedding_cache import embed_texts
from harness.store import Store

pytestmark = pytest.mark.slow

TEXTS = [f"Rewrite text number {i} as a {kind} about {topic}, keeping every detail of the original."
         for i, (kind, topic) in enumerate((k, t) for k in ("poem", "memo", "shanty", "haiku", "letter", "speech")
                                           for t in range(300))]

CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from test_embedding_cache import TEXTS
    from harness.embedders import make_minilm
    from harness.embedding_cache import embed_texts
    from harness.store import Store
    embedder = make_minilm()
    embedder.load()
    print("loaded", flush=True)
    with Store({store!r}) as store:
        embed_texts(TEXTS, embedder, store, chunk_seconds=0.5)
    print("finished", flush=True)
""")


def stored_count(path) -> int:
    try:
        with sqlite3.connect(path) as db:
            return db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


@pytest.mark.e2e  # a subprocess killed with SIGKILL; the rerun and the check embed 1,800 texts
def test_a_killed_embedding_run_keeps_its_chunks_and_the_rerun_embeds_only_the_rest(tmp_path, minilm):
    path = tmp_path / "store.sqlite"
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(tests=str(REPO_ROOT / "tests"), store=str(path))],
                             stdout=subprocess.PIPE, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    try:
        assert child.stdout.readline().strip() == "loaded"
        started = time.monotonic()
        while stored_count(path) == 0 and child.poll() is None and time.monotonic() - started < 60:
            time.sleep(0.05)
        first_commit = time.monotonic() - started
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    kept = stored_count(path)
    assert 0 < kept < len(TEXTS), f"the kill should land part way ({kept} of {len(TEXTS)} stored)"
    assert first_commit < 10, f"the first chunk took {first_commit:.1f} s to reach the store"
    counting = CountingEmbedder(minilm)
    with Store(path) as store:
        vectors = embed_texts(TEXTS, counting, store)
    assert len(counting.embedded) == len(TEXTS) - kept  # the rerun paid only for what the kill lost
    np.testing.assert_allclose(vectors, minilm.embed(TEXTS), atol=1e-5)


def test_chunks_adapt_to_the_time_budget_and_every_chunk_is_committed(tmp_path, minilm):
    counting = CountingEmbedder(minilm)
    calls: list[int] = []
    inner_embed = counting.embed

    def recording_embed(texts):
        calls.append(len(texts))
        return inner_embed(texts)

    counting.embed = recording_embed
    with Store(tmp_path / "s.sqlite") as store:
        embed_texts(TEXTS[:600], counting, store, chunk_seconds=0.2)
        assert store.count_embeddings(minilm.fingerprint) == 600
    assert len(calls) > 2 and sum(calls) == 600 and calls[0] == 32
