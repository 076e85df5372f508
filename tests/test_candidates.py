"""Candidates: registry entries, inline specs, predictions files and their errors."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.candidates import (
    ConstantCandidate,
    MissingPredictionsError,
    PredictionsFileCandidate,
    load_candidate_registry,
    resolve_candidate,
)
from harness.data import Sample
from harness.errors import ConfigError, DataError

SAMPLES = [Sample(str(i), "o", "r", "p") for i in range(3)]


def test_shipped_registry_has_the_public_mean_prompts():
    from conftest import REPO_ROOT

    registry = load_candidate_registry(REPO_ROOT / "candidates.toml")
    assert resolve_candidate("improve-text", registry).predict(SAMPLES) == ["Improve the text to this."] * 3
    mean = resolve_candidate("mean-prompt", registry)
    assert mean.predict(SAMPLES)[0].startswith("Please improve this text using the writing style")


def test_inline_mean_spec_and_fingerprints():
    a = resolve_candidate("mean:Rewrite this.")
    assert isinstance(a, ConstantCandidate) and a.predict(SAMPLES) == ["Rewrite this."] * 3
    assert a.fingerprint == resolve_candidate("mean:Rewrite this.").fingerprint
    assert a.fingerprint != resolve_candidate("mean:Rewrite that.").fingerprint
    with pytest.raises(ConfigError, match="must not be empty"):
        resolve_candidate("mean:   ")


def test_unknown_name_lists_known_ones(tmp_path):
    (tmp_path / "c.toml").write_text('[candidates.a]\nkind = "constant"\nprompt = "x"\n[candidates.b]\nkind = "telepathy"\n')
    registry = load_candidate_registry(tmp_path / "c.toml")
    with pytest.raises(ConfigError, match="known: a, b"):
        resolve_candidate("zzz", registry)
    with pytest.raises(ConfigError, match="unknown kind 'telepathy'"):
        resolve_candidate("b", registry)


def test_predictions_file_matches_by_id_and_keeps_empty_answers(tmp_path):
    path = tmp_path / "sub.csv"
    path.write_text('id,rewrite_prompt\n2,"Make it, formal."\n0,Poem please\n1,\n')
    candidate = resolve_candidate(f"file:{path}")
    assert candidate.predict(SAMPLES) == ["Poem please", "", "Make it, formal."]
    before = candidate.fingerprint
    path.write_text('id,rewrite_prompt\n2,x\n0,y\n1,z\n')
    assert PredictionsFileCandidate(path).fingerprint != before


def test_predictions_file_missing_ids_says_how_many_and_which(tmp_path):
    path = tmp_path / "sub.csv"
    path.write_text("id,rewrite_prompt\n0,a\n")
    with pytest.raises(MissingPredictionsError, match="no prediction for 2 of the suite's 3 ids \\(first: '1', '2'\\)"):
        PredictionsFileCandidate(path).predict(SAMPLES)


def test_predictions_file_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        PredictionsFileCandidate(tmp_path / "none.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("id,prompt\n0,a\n")
    with pytest.raises(DataError, match="missing column 'rewrite_prompt'; columns found: id, prompt"):
        PredictionsFileCandidate(bad).predict(SAMPLES)
    dup = tmp_path / "dup.csv"
    dup.write_text("id,rewrite_prompt\n0,a\n0,b\n")
    with pytest.raises(DataError, match="duplicate id '0'") as error:
        PredictionsFileCandidate(dup).predict(SAMPLES)
    assert error.value.row == 2


# -- candidates.toml entries (issue 9) --------------------------------------------------------------------
def test_an_entry_without_kind_is_an_error_naming_file_candidate_and_kinds(tmp_path):
    (tmp_path / "c.toml").write_text('[candidates.ok]\nkind = "constant"\nprompt = "y"\n'
                                     '[candidates.kindless]\nprompt = "x"\n')
    with pytest.raises(ConfigError) as error:
        resolve_candidate("kindless", load_candidate_registry(tmp_path / "c.toml"))
    message = str(error.value)
    assert "c.toml" in message and "candidate 'kindless'" in message and "'kind'" in message
    assert "constant, predictions-file, chat, hf, retrieval, ensemble" in message


@pytest.mark.parametrize(("entry", "key", "expected"), [
    ("kind = 3", "kind", "must be a string"),
    ('kind = "constant"\nprompt = "x"\ndescription = 3', "description", "must be a string"),
    ('kind = "constant"\nprompt = "x"\ndescription = ["a"]', "description", "found an array"),
])
def test_common_keys_are_type_checked(tmp_path, entry, key, expected):
    (tmp_path / "c.toml").write_text(f"[candidates.bad]\n{entry}\n")
    with pytest.raises(ConfigError) as error:
        resolve_candidate("bad", load_candidate_registry(tmp_path / "c.toml"))
    message = str(error.value)
    assert "c.toml" in message and "candidate 'bad'" in message and f"'{key}'" in message and expected in message


def test_an_entry_that_is_not_a_table_is_named(tmp_path):
    (tmp_path / "c.toml").write_text('[candidates]\nbroken = "mean"\n')
    with pytest.raises(ConfigError, match="candidate 'broken' must be a table") as error:
        resolve_candidate("broken", load_candidate_registry(tmp_path / "c.toml"))
    assert "c.toml" in str(error.value)


def test_predictions_file_entry_keys_are_type_checked(tmp_path):
    (tmp_path / "p.csv").write_text("id,rewrite_prompt\n0,a\n")
    (tmp_path / "c.toml").write_text('[candidates.p]\nkind = "predictions-file"\npath = "p.csv"\nid_column = 0\n')
    with pytest.raises(ConfigError, match=r"c.toml: \[candidates.p\]: 'id_column' must be a string, found integer 0"):
        resolve_candidate("p", load_candidate_registry(tmp_path / "c.toml"))


# -- predictions typed as something other than text (issue 9) ----------------------------------------------
@pytest.mark.parametrize(("value", "found"), [(0, "a JSON number"), ({"a": 1}, "a JSON object"),
                                              (False, "a JSON boolean"), (["x"], "a JSON array")])
def test_non_text_predictions_are_refused(tmp_path, value, found):
    path = tmp_path / "p.jsonl"
    rows = [{"id": 0, "rewrite_prompt": "a"}, {"id": 1, "rewrite_prompt": value}, {"id": 2, "rewrite_prompt": "c"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=f"expected text, found {found}") as error:
        PredictionsFileCandidate(path).predict(SAMPLES)
    assert (error.value.row, error.value.column) == (2, "rewrite_prompt") and "p.jsonl" in str(error.value)


def test_numeric_prediction_ids_still_match(tmp_path):
    pq.write_table(pa.table({"id": [2, 0, 1], "rewrite_prompt": ["c", "a", "b"]}), tmp_path / "p.parquet")
    assert PredictionsFileCandidate(tmp_path / "p.parquet").predict(SAMPLES) == ["a", "b", "c"]
    pq.write_table(pa.table({"id": [0, 1, 2], "rewrite_prompt": pa.array([7, 8, 9], pa.int64())}),
                   tmp_path / "n.parquet")
    with pytest.raises(DataError, match="expected text, found int64"):
        PredictionsFileCandidate(tmp_path / "n.parquet").predict(SAMPLES)


# -- predictions aligned by position (issue 9) --------------------------------------------------------------
def test_without_an_id_column_rows_align_by_position(tmp_path):
    path = tmp_path / "preds.csv"
    path.write_text("rewrite_prompt,extra\nfirst,x\n,y\nthird,z\n")
    candidate = PredictionsFileCandidate(path, id_column="")
    assert candidate.predict(SAMPLES) == ["first", "", "third"]
    assert candidate.fingerprint != PredictionsFileCandidate(path).fingerprint
    # the suite file itself: its own prompt column answers each of its rows
    suite_file = tmp_path / "suite.csv"
    suite_file.write_text("original_text,rewritten_text,rewrite_prompt,guess\no,r,p,g1\no,r,p,g2\no,r,p,g3\n")
    assert PredictionsFileCandidate(suite_file, id_column="", prediction_column="guess").predict(SAMPLES) == \
        ["g1", "g2", "g3"]


def test_by_position_the_row_counts_must_match(tmp_path):
    path = tmp_path / "short.csv"
    path.write_text("rewrite_prompt\na\nb\n")
    with pytest.raises(DataError) as error:
        PredictionsFileCandidate(path, id_column="").predict(SAMPLES)
    message = str(error.value)
    assert "short.csv" in message and "2 prediction rows" in message and "3 rows" in message
    with pytest.raises(DataError, match="missing column 'guess'; columns found: rewrite_prompt"):
        PredictionsFileCandidate(path, id_column="", prediction_column="guess").predict(SAMPLES[:2])


def test_a_registry_entry_can_align_by_position(tmp_path):
    (tmp_path / "p.csv").write_text("rewrite_prompt\nx\ny\nz\n")
    (tmp_path / "c.toml").write_text('[candidates.p]\nkind = "predictions-file"\npath = "p.csv"\nid_column = ""\n')
    assert resolve_candidate("p", load_candidate_registry(tmp_path / "c.toml")).predict(SAMPLES) == ["x", "y", "z"]
