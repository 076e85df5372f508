"""Probe-matched suites: on constructed prompt families with hidden leaderboard weights, the fitted suite
recovers the weights better than the pool; leave-one-probe-out against the pool; `prh calibrate fit-suite`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import REPO_ROOT, prh_with
from hypothesis import given, settings
from hypothesis import strategies as st
from optimize_helpers import PROMPT_FAMILIES, BagOfWordsEmbedder, family_suite

from harness.errors import ConfigError
from harness.leaderboard.book import Probe, append_probe
from harness.leaderboard.fit_suite import (
    SuiteMatch,
    balancing_weights,
    greedy_rows,
    inclusion_probabilities,
    match_suite,
    weighted_rows,
)
from harness.leaderboard.scores import score_probes
from harness.workspace import Workspace

HIDDEN = np.array([0.5, 0.25, 0.15, 0.07, 0.03])
PROBES = [*PROMPT_FAMILIES[:5], "Rewrite the text as a formal poem.", "Make the story more cheerful.",
          "Turn this email into a haiku.", "Rewrite the memo."]


def families():
    """A pool of 5 prompt families (20 rows each) and probes whose leaderboard score is their expected score
    on a test set drawing the families with the HIDDEN weights."""
    pool = family_suite(repeats=20, families=PROMPT_FAMILIES[:5], groups=True)
    probes = [Probe(f"p{i}", text, 0.5) for i, text in enumerate(PROBES)]
    scores = score_probes(probes, pool, BagOfWordsEmbedder()).scores
    family = np.array([int(s.group.split("-")[1]) for s in pool.samples])
    per_family = np.stack([scores[family == f].mean(axis=0) for f in range(5)])
    return pool, probes, scores, family, HIDDEN @ per_family


def distance(shares: np.ndarray) -> float:
    return 0.5 * float(np.abs(shares - HIDDEN).sum())


@pytest.mark.parametrize("method", ["greedy", "weights"])
def test_the_matched_suite_recovers_hidden_family_weights_better_than_the_pool(method):
    pool, probes, scores, family, leaderboard = families()
    match = match_suite([p.name for p in probes], scores, leaderboard, size=40, method=method, map_kind="identity")
    shares = np.bincount(family[match.rows], minlength=5) / match.rows.size
    pool_distance = distance(np.full(5, 0.2))
    assert distance(shares) < pool_distance / 2
    assert len(set(match.rows.tolist())) == 40 and match.rows.max() < len(pool)
    assert match.helps and match.loo_mae < match.source_loo_mae and match.loo_spearman > 0.5
    assert "predicts held-out probes better than the pool" in match.verdict()
    assert [row["probe"] for row in match.loo] == [p.name for p in probes]


def test_the_balancing_weights_hit_reachable_targets_and_stay_uniform_when_already_met():
    pool, probes, scores, family, leaderboard = families()
    weights = balancing_weights(scores, leaderboard, ridge=1e-6)
    assert weights.sum() == pytest.approx(1.0) and np.all(weights >= 0)
    assert weights @ scores == pytest.approx(leaderboard, abs=2e-3)
    by_family = np.bincount(family, weights=weights, minlength=5)
    assert distance(by_family) < 0.05
    uniform = balancing_weights(scores, scores.mean(axis=0))
    assert uniform == pytest.approx(np.full(len(pool), 1 / len(pool)), rel=1e-3)


def test_greedy_matches_the_targets_it_is_given():
    rng = np.random.default_rng(0)
    scores = rng.random((300, 4))
    targets = scores[:50].mean(axis=0)
    rows = greedy_rows(scores, targets, 50, seed=1)
    assert np.abs(scores[rows].mean(axis=0) - targets).sum() < 0.01
    assert np.array_equal(rows, greedy_rows(scores, targets, 50, seed=1))
    with pytest.raises(ConfigError, match="--size must be between 1 and the pool's 300 rows"):
        greedy_rows(scores, targets, 301)


@settings(max_examples=60, deadline=None, database=None, derandomize=True)
@given(st.lists(st.floats(0, 10), min_size=2, max_size=30).filter(lambda w: sum(w) > 0), st.data())
def test_inclusion_probabilities_are_capped_proportional_and_sum_to_the_size(weights, data):
    w = np.array(weights)
    size = data.draw(st.integers(1, int(np.count_nonzero(w))))
    p = inclusion_probabilities(w, size)
    assert p.sum() == pytest.approx(size) and np.all((p >= 0) & (p <= 1 + 1e-12))
    order = np.argsort(w, kind="stable")
    assert np.all(np.diff(p[order]) >= -1e-9)  # more weight, never less chance
    rows = weighted_rows(np.zeros((w.size, 1)) + w[:, None], np.array([w.mean()]), size, seed=3)
    assert rows.size == size and np.unique(rows).size == size


def test_it_says_plainly_when_fitting_does_not_help():
    match = SuiteMatch(rows=np.arange(3), method="greedy", map="linear", size=3, seed=0, probes=("a",), loo=(),
                       source_loo=(), loo_mae=0.031, loo_spearman=0.1, source_loo_mae=0.029, source_loo_spearman=0.2,
                       seconds=0.0)
    assert not match.helps
    assert match.verdict() == ("fitting does not help: the probe-matched suite's LOO MAE is 0.0310, the unfitted "
                               "pool's 0.0290; keep using the pool")


def test_probes_the_pool_ranks_backwards_cannot_be_matched():
    rng = np.random.default_rng(0)
    scores = rng.random((50, 5)) * 0.1 + np.linspace(0.1, 0.2, 5)
    with pytest.raises(ConfigError, match="do not rise with their leaderboard scores"):
        match_suite(list("abcde"), scores, np.linspace(0.7, 0.5, 5), size=10, map_kind="linear")
    with pytest.raises(ConfigError, match="at least 4 probes"):
        match_suite(list("abc"), scores[:, :3], [0.5, 0.6, 0.7], size=10)


def test_fit_suite_command_writes_a_suite_with_provenance(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setenv("PRH_STORE", str(tmp_path / "store.sqlite"))

    class KaggleLike(BagOfWordsEmbedder):
        comparable_with_kaggle = True

    prh = prh_with(KaggleLike())
    pool, probes, scores, family, leaderboard = families()
    pool_path = tmp_path / "pool.jsonl"
    pool_path.write_text("".join(json.dumps({"id": s.id, "original_text": s.original_text, "rewrite_prompt":
                                             s.rewrite_prompt, "rewritten_text": s.rewritten_text, "group": s.group})
                                 + "\n" for s in pool.samples))
    book = tmp_path / "book.csv"
    for probe, lb in zip(probes, leaderboard):
        append_probe(book, Probe(probe.name, probe.submission, round(float(lb), 6), source="constructed"))
    out = tmp_path / "matched.jsonl"
    code = prh(["calibrate", "fit-suite", "--from", str(pool_path), "--probes", str(book), "--size", "40",
                 "--out", str(out), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert {"loo_mae", "loo_spearman", "source_loo_mae", "n_rows", "out"} <= set(data)
    assert data["n_rows"] == 40 and data["out"] == str(out) and data["map"] == "identity"
    assert data["loo_mae"] < data["source_loo_mae"] and data["helps"]
    matched = Workspace.from_dir(tmp_path).suite(str(out))
    assert len(matched) == 40 and set(matched.ids) <= set(pool.ids)
    provenance = json.loads((tmp_path / "matched.provenance.json").read_text())
    assert provenance["source_fingerprint"] == Workspace.from_dir(tmp_path).suite(str(pool_path)).fingerprint
    assert provenance["probe_book_hash"] and provenance["seed"] == 0 and provenance["method"] == "greedy"
    assert provenance["suite_fingerprint"] == matched.fingerprint
    assert prh(["calibrate", "fit-suite", "--from", str(pool_path), "--probes", str(book), "--size", "40",
                 "--out", str(tmp_path / "matched.txt")]) == 2
    assert "--out must end in .jsonl or .csv" in capsys.readouterr().err
