"""Candidates: registry entries, inline specs, predictions files and their errors."""

from __future__ import annotations

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
    (tmp_path / "c.toml").write_text('[candidates.a]\nprompt = "x"\n[candidates.b]\nkind = "telepathy"\n')
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
