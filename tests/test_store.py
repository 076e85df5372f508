"""The SQLite store: round trips, and several processes writing at once (as pytest-xdist workers do)."""

from __future__ import annotations

import multiprocessing
from dataclasses import replace

import numpy as np
from report_records import record

from harness.run import RunRecord
from harness.store import Store
from harness.verdict import Comparison


def make_record(i: int, session: str = "s") -> RunRecord:
    return record(f"c{i}", "public", 0.1 * (i % 10), fingerprint=f"f{i}", session=session,
                  baseline=Comparison("no-baseline", "none"))


def test_embeddings_round_trip_and_are_keyed_by_embedder(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        vectors = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
        store.put_embeddings("e1", ["a", "b", "c"], vectors)
        found = store.get_embeddings("e1", ["a", "c", "zzz"])
        assert set(found) == {"a", "c"}
        np.testing.assert_array_equal(found["c"], vectors[2])
        assert store.get_embeddings("e2", ["a"]) == {}
        assert store.count_embeddings("e1") == 3


def test_many_keys_beyond_sqlite_variable_limit(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        keys = [f"k{i}" for i in range(1234)]
        store.put_embeddings("e", keys, np.ones((1234, 2), dtype=np.float32))
        assert len(store.get_embeddings("e", keys)) == 1234


def test_predictions_keyed_by_input_hash(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        store.put_predictions("cand", [("1", "h1", "Make it formal."), ("2", "h2", "Make it a poem.")])
        assert store.get_predictions("cand", [("1", "h1"), ("2", "changed")]) == {("1", "h1"): "Make it formal."}
        assert store.get_predictions("other", [("1", "h1")]) == {}


def test_run_history_round_trip_and_filters(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        store.record_run(make_record(1, "s1"))
        store.record_run(make_record(2, "s2"))
    with Store(path) as store:  # a fresh handle sees committed history
        runs = store.runs()
        assert [r.candidate for r in runs] == ["c1", "c2"] and runs[0].run_id < runs[1].run_id
        assert runs[0].baseline == Comparison("no-baseline", "none")  # the typed verdict survives the store
        assert [r.candidate for r in store.runs(session="s2")] == ["c2"]
        assert store.runs(embedder="st5") == []


def test_record_once_per_session_keeps_the_first(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        first = store.record_run(make_record(1, "s1"), once_per_session=True)
        assert store.record_run(make_record(1, "s1"), once_per_session=True) == first
        assert store.record_run(make_record(1, "s2"), once_per_session=True) != first
        assert len(store.runs()) == 2


def _writer(path: str, worker: int, count: int) -> None:
    with Store(path) as store:
        for i in range(count):
            store.record_run(make_record(worker * 1000 + i))
            store.put_embeddings(f"e{worker}", [f"t{i}"], np.full((1, 4), i, dtype=np.float32))


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    path = str(tmp_path / "s.sqlite")
    Store(path).close()
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(path, w, 150)) for w in (1, 2)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(120)
        assert process.exitcode == 0
    with Store(path) as store:
        assert len(store.runs()) == 300
        assert store.count_embeddings("e1") == 150 and store.count_embeddings("e2") == 150


def test_runs_written_before_the_run_spec_still_load(tmp_path):
    """A history written by the flat RunRecord (no `format`, identity and settings beside the numbers) loads
    into today's record, identity and verdicts included; today's records round-trip through the store."""
    import json
    import sqlite3

    flat = {"candidate": "old", "candidate_fingerprint": "fp-old", "suite": "leaked", "suite_fingerprint": "sfp",
            "embedder": "minilm", "embedder_fingerprint": "efp", "comparable_with_kaggle": False, "n": 64,
            "mean": 0.12, "ci_low": 0.1, "ci_high": 0.14, "ci_method": "percentile", "confidence": 0.9, "n_empty": 1,
            "candidate_spec": "mean:x", "seconds": 1.5, "session": "cli", "created": 1_700_000_000.0,
            "signed": True, "n_resamples": 2000, "seed": 3, "suite_kind": "file", "scorer_parity": None,
            "predicted_lb": None, "baseline": {"status": "regression", "message": "worse", "delta": -0.02,
                                               "some_future_key": 1}}
    path = tmp_path / "s.sqlite"
    Store(path).close()
    with sqlite3.connect(path) as connection:
        connection.execute("INSERT INTO runs (created, session, candidate, candidate_fingerprint, suite, suite_fingerprint,"
                           " embedder, embedder_fingerprint, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (flat["created"], "cli", "old", "fp-old", "leaked", "sfp", "minilm", "efp", json.dumps(flat)))
    with Store(path) as store:
        store.record_run(make_record(1))
        old, new = store.runs()
    assert (old.candidate, old.candidate_spec, old.suite, old.suite_kind, old.embedder_fingerprint) == (
        "old", "mean:x", "leaked", "file", "efp")
    assert (old.signed, old.n_resamples, old.seed, old.ci_method, old.confidence) == (True, 2000, 3, "percentile", 0.9)
    assert (old.n, old.mean, old.n_empty, old.complete, old.baseline.status, old.baseline.delta) == (
        64, 0.12, 1, False, "regression", -0.02)
    assert new == replace(make_record(1), run_id=new.run_id)
    assert RunRecord.from_dict(new.to_dict()) == new and new.to_dict()["format"] == 2
