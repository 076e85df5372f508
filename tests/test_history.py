"""The run history: per-run rows in the store, `prh history list/prune` (the caches stay), `prh show`, and
what the Workspace records and tells the reports."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT
from report_records import compared, record, rows

from harness.baselines import compare_with_baseline, load_baseline, write_baseline
from harness.cli import main
from harness.evaluation import Result
from harness.run import RunSpec
from harness.stats import ConfidenceInterval
from harness.store import Store
from harness.workspace import Scored, Workspace

DAY = 86_400.0
JAN_1 = datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp()


def filled_store(path: Path) -> Store:
    """Three runs (two candidates, two days), their rows, and cached embeddings and predictions."""
    store = Store(path)
    store.record_run(record("old", "public", 0.1, run_id=None, created=JAN_1), rows=rows("public", [0.1, 0.2]))
    store.record_run(record("old", "data/x.csv", 0.2, run_id=None, created=JAN_1 + DAY, suite_kind="file"),
                     rows=rows("data/x.csv", [0.3]))
    store.record_run(record("new", "public", 0.3, run_id=None, created=JAN_1 + 10 * DAY, baseline=compared()),
                     rows=rows("public", [0.3, 0.4], [0.5, 0.1]))
    store.put_embeddings("emb", ["h1", "h2"], np.ones((2, 4), dtype=np.float32))
    store.put_predictions("fp-old", [("public-0", "i0", "Make it a poem.")])
    return store


def test_rows_round_trip_and_are_recorded_once_per_session(tmp_path: Path) -> None:
    with filled_store(tmp_path / "s.sqlite") as store:
        runs = store.runs()
        stored = store.run_rows([r.run_id for r in runs])
        assert [len(stored[r.run_id]) for r in runs] == [2, 1, 2]
        newest = stored[runs[2].run_id]
        assert [(r.id, r.score, r.baseline_score, r.truth) for r in newest] == [
            ("public-0", 0.3, 0.5, "Rewrite this as a 0-line poem."), ("public-1", 0.4, 0.1, "Rewrite this as a 1-line poem.")]
        assert newest[0].delta == pytest.approx(-0.2)
        again = record("new", "public", 0.3, run_id=None, session="s")
        first = store.record_run(again, once_per_session=True, rows=rows("public", [0.3]))
        assert store.record_run(again, once_per_session=True, rows=rows("public", [0.9])) == first
        assert [r.score for r in store.run_rows([first])[first]] == [0.3]


def test_deleting_runs_removes_their_rows_and_nothing_else(tmp_path: Path) -> None:
    with filled_store(tmp_path / "s.sqlite") as store:
        first, second, third = (r.run_id for r in store.runs())
        assert store.delete_runs([first, second, 12345]) == 2
        assert [r.run_id for r in store.runs()] == [third]
        assert set(store.run_rows([first, second, third])) == {third}
        assert store.count_embeddings() == 2
        assert store.get_predictions("fp-old", [("public-0", "i0")]) == {("public-0", "i0"): "Make it a poem."}


def prh(*args: str) -> int:
    return main(list(args))


def test_history_list_filters_and_counts(tmp_path: Path, capsys) -> None:
    path = tmp_path / "s.sqlite"
    filled_store(path).close()
    assert prh("history", "list", "--store", str(path)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "3 run(s)"
    assert out[0].startswith("#1  2024-01-01 00:00:00 UTC  old  on public  minilm  0.1000 (n=10)")
    assert "data/x.csv (file)" in out[1]
    assert prh("history", "list", "--store", str(path), "--candidate", "old", "--suite", "public") == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 run(s)"


def test_prune_says_what_it_removes_and_leaves_the_caches(tmp_path: Path, capsys) -> None:
    path = tmp_path / "s.sqlite"
    filled_store(path).close()
    assert prh("history", "prune", "--store", str(path), "--candidate", "old", "--before", "2024-01-02",
               "--dry-run") == 0
    out = capsys.readouterr().out
    assert out.startswith("would remove 1 run(s):") and "old  on public" in out
    with Store(path, create=False) as store:
        assert len(store.runs()) == 3  # a dry run removes nothing
    assert prh("history", "prune", "--store", str(path), "--candidate", "old", "--before", "2024-01-03") == 0
    out = capsys.readouterr().out
    assert out.startswith("removing 2 run(s):") and "removed 2 run(s)" in out and "caches are untouched" in out
    with Store(path, create=False) as store:
        assert [r.candidate for r in store.runs()] == ["new"]
        assert store.count_embeddings() == 2 and store.get_predictions("fp-old", [("public-0", "i0")])
    assert prh("history", "prune", "--store", str(path), "--suite", "public") == 0
    with Store(path, create=False) as store:
        assert store.runs() == [] and store.count_embeddings() == 2


def test_prune_needs_a_filter_and_reading_commands_never_create_a_store(tmp_path: Path, capsys) -> None:
    path = tmp_path / "s.sqlite"
    filled_store(path).close()
    assert prh("history", "prune", "--store", str(path)) == 2
    assert "at least one of --candidate" in capsys.readouterr().err
    missing = tmp_path / "typo" / "store.sqlite"
    for command in (["history", "list"], ["history", "prune", "--suite", "public"], ["show", "old"]):
        assert prh(*command, "--store", str(missing)) == 2
        assert "store not found" in capsys.readouterr().err
    assert not missing.exists() and not missing.parent.exists()
    with pytest.raises(SystemExit):
        prh("history", "prune", "--store", str(path), "--before", "last tuesday")
    assert "expected a date like 2024-05-01" in capsys.readouterr().err


def test_show_prints_the_rows_and_names_what_it_knows(tmp_path: Path, capsys) -> None:
    path = tmp_path / "s.sqlite"
    filled_store(path).close()
    assert prh("show", "new", "--store", str(path), "--worst", "1") == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "Worst 1 rows" in out and "public-0" in out and "-0.200" in out and "+0.300" in out
    assert prh("show", "nobody", "--store", str(path)) == 2
    assert "recorded: new, old" in capsys.readouterr().err
    assert prh("show", "new", "--suite", "leaked", "--store", str(path)) == 2
    assert "its suites: public" in capsys.readouterr().err


# -- what the Workspace records ------------------------------------------------------------------------------
def result(candidate: str, scores: list[float], *, suite: str = "leaked") -> Result:
    values = np.array(scores)
    interval = ConfidenceInterval(float(values.mean()), 0.0, 1.0, 0.95, "bca", 100, len(scores), None, 0.1)
    spec = RunSpec(candidate=candidate, candidate_fingerprint=f"fp-{candidate}", suite=suite, suite_fingerprint="sfp",
                   embedder="minilm", embedder_fingerprint="efp", comparable_with_kaggle=False, candidate_spec=candidate)
    return Result(spec=spec, ids=[f"r{i}" for i in range(len(scores))], predictions=[f"p{i}" for i in range(len(scores))],
                  truths=[f"t{i}" for i in range(len(scores))], groups=[f"g{i % 2}" for i in range(len(scores))],
                  scores=values, interval=interval)


def test_workspace_records_rows_with_the_baseline_the_verdict_used(tmp_path: Path) -> None:
    workspace = Workspace.from_dir(tmp_path, store=tmp_path / "store.sqlite", baselines_dir=tmp_path / "baselines")
    (tmp_path / "suites.toml").write_text('[suites.leaked]\npath = "x.csv"\n')
    reference = result("base", [0.5, 0.5, 0.5, 0.5])
    write_baseline(workspace.baselines_dir, reference)
    scored = result("cand", [0.9, 0.1, 0.5, 0.6])
    baseline = load_baseline(workspace.baselines_dir, "minilm", "leaked")
    comparison = compare_with_baseline(scored, baseline)
    assert (comparison.baseline_fingerprint, comparison.baseline_n) == (baseline.fingerprint, 4)
    with workspace:
        run = workspace.record(Scored(scored, scored.to_run_record(baseline=comparison), baseline))
        stored = workspace.store().run_rows([run.record.run_id])[run.record.run_id]
        assert [(r.id, r.group, r.score, r.baseline_score, r.prediction, r.truth) for r in stored] == [
            (f"r{i}", f"g{i % 2}", s, 0.5, f"p{i}", f"t{i}") for i, s in enumerate([0.9, 0.1, 0.5, 0.6])]
        # the baselines file replaced since (--update-baselines before recording): the rows still carry the
        # scores of the baseline the verdict compared with, not the file's new ones
        write_baseline(workspace.baselines_dir, result("someone-else", [0.2, 0.2, 0.2, 0.2]))
        again = workspace.record(run)
        assert {r.baseline_score for r in workspace.store().run_rows([again.record.run_id])[again.record.run_id]} == {0.5}
        # a verdict that names another baseline than the one held gets no per-row baseline scores
        other = load_baseline(workspace.baselines_dir, "minilm", "leaked")
        mismatched = workspace.record(Scored(scored, scored.to_run_record(baseline=comparison), other))
        assert {r.baseline_score for r in workspace.store().run_rows([mismatched.record.run_id])[
            mismatched.record.run_id]} == {None}


def test_learned_from_reads_the_train_suites_of_candidates_that_can_still_be_built(tmp_path: Path) -> None:
    for name in ("suites.toml", "candidates.toml"):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    shutil.copytree(REPO_ROOT / "fixtures", tmp_path / "fixtures")
    with Workspace.from_dir(tmp_path) as workspace:
        fingerprint = workspace.candidate("retrieval-knn").fingerprint
        records = [record("retrieval-knn", suite, 0.1, run_id=i) for i, suite in enumerate(("public", "leaked"))]
        records = [r.with_spec(candidate_fingerprint=fingerprint, candidate_spec="retrieval-knn") for r in records]
        stale = record("retrieval-knn", "public", 0.1, run_id=9)  # another version: its train suites are unknown
        unknown = record("file:/nowhere.csv", "public", 0.1, run_id=10, candidate_spec="file:/nowhere.csv")
        learned = workspace._learned_from([*records, stale, unknown])
    assert learned == {fingerprint: frozenset({"synthetic-hard"})}
