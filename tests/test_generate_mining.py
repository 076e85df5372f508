"""Deduplication, hard-sample mining and the review report, on the packaged offline embedder."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from harness.candidates import resolve_candidate
from harness.cli import main
from harness.data import load_suite, load_suite_specs, spec_for_file
from harness.errors import ConfigError
from harness.evaluation import BootstrapSettings
from harness.generate.dedup import find_duplicates
from harness.generate.jsonl import read_jsonl
from harness.generate.mining import best_of, mine, mined_rows, mining_report, select_hard
from harness.generate.review import review_markdown
from harness.store import Store

pytestmark = pytest.mark.slow

ORIGINAL = "The office kitchen will be cleaned on Friday, so please take your food out of the fridge by noon."


def row(row_id: str, prompt: str, original: str = ORIGINAL, rewritten: str = "Fridge cleanup Friday: grab food by noon!",
        group: str = "g", **extra) -> dict:
    return {"id": row_id, "original_text": original, "rewrite_prompt": prompt, "rewritten_text": rewritten,
            "group": group, **extra}


def test_exact_and_near_duplicates_are_dropped_keeping_the_first(minilm, tmp_path):
    rows = [row("a", "Rewrite the text as a haiku."),
            row("b", "rewrite the  text as a HAIKU."),                      # exact after folding
            row("c", "Rewrite the text as a haiku!", original=ORIGINAL.replace("so please", "so, please")),  # near
            row("d", "Rewrite the text as a haiku.", original="Our cat learned to open the back door with its paw."),
            row("e", "Turn this memo into a pirate shanty full of sea slang.")]
    with Store(tmp_path / "store.sqlite") as store:
        found = find_duplicates(rows, embedder=minilm, store=store, threshold=0.95)
        assert [(d.id, d.duplicate_of, d.kind) for d in found] == [("b", "a", "exact"), ("c", "a", "near")]
        assert found[1].similarity >= 0.95
        cached = store.count_embeddings()
        find_duplicates(rows, embedder=minilm, store=store, threshold=0.95)
        assert store.count_embeddings() == cached  # a second pass embeds nothing
    assert [d.id for d in find_duplicates(rows)] == ["b"]  # no embedder: exact only
    assert find_duplicates(rows, fields=["rewrite_prompt"], embedder=minilm, threshold=0.95)[-1].id == "d"
    with pytest.raises(ConfigError, match="row 1 .* no field 'colour'"):
        find_duplicates(rows, fields=["colour"])
    source, out = tmp_path / "rows.jsonl", tmp_path / "dedup.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["generate", "dedup", "--in", str(source), "--out", str(out), "--embedder", "none",
                 "--dropped", str(tmp_path / "dropped.jsonl")]) == 0
    assert [r["id"] for r in read_jsonl(out)] == ["a", "c", "d", "e"]
    assert read_jsonl(tmp_path / "dropped.jsonl")[0]["duplicate_of"] == "a"
    assert main(["generate", "dedup", "--in", str(source), "--out", str(source)]) == 2  # never rewrites the source


def test_select_hard_by_threshold_quantile_or_both():
    best = np.array([0.1, 0.5, 0.2, 0.9, 0.0])
    answered = np.array([True, True, True, True, False])
    kept, _ = select_hard(best, answered, threshold=0.3)
    assert kept.tolist() == [True, False, True, False, False]  # unanswered rows never count as hard
    kept, cut = select_hard(best, answered, quantile=0.5)
    assert cut == pytest.approx(0.2) and kept.tolist() == [True, False, True, False, False]
    kept, _ = select_hard(best, answered, threshold=0.15, quantile=0.5)
    assert kept.tolist() == [True, False, False, False, False]
    with pytest.raises(ConfigError):
        select_hard(best, answered, quantile=1.5)


def pool_rows() -> list[dict]:
    prompts = ["Rewrite the text as a poem.", "Rewrite this as a rhyming poem.", "Make the text more formal.",
               "Rewrite the text in a formal tone.", "Add a dragon who steals the snacks.", "Retell it from the fridge's "
               "point of view.", "Rewrite it as a poem about autumn.", "Make the text more formal and polite."]
    return [row(f"p{i}", prompt, group=f"family-{i % 3}", provenance={"model": "gen-model", "seed": i})
            for i, prompt in enumerate(prompts)]


def test_mining_keeps_rows_no_candidate_recovers_and_reports_before_and_after(minilm, tmp_path):
    path = tmp_path / "pool.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in pool_rows()))
    pool = load_suite(spec_for_file(path))
    with Store(tmp_path / "store.sqlite") as store:
        candidates = [resolve_candidate("mean:Rewrite the text as a poem."), resolve_candidate("mean:Make the text more formal.")]
        mining = mine(pool, candidates, minilm, store=store, threshold=0.3, bootstrap=BootstrapSettings(n_resamples=200))
    kept = {pool.samples[i].id for i in np.flatnonzero(mining.kept)}
    assert kept == {"p4", "p5"}  # the dragon and the fridge: neither mean prompt is near them
    best, which, answered = best_of(mining.results)
    assert answered.all() and which[0] == "mean:Rewrite the text as a poem." and which[2] == "mean:Make the text more formal."
    rows = mined_rows(mining, {r["id"]: r for r in pool_rows()})
    assert [r["id"] for r in rows] == ["p4", "p5"] and rows[0]["provenance"]["model"] == "gen-model"
    assert rows[0]["mining"]["best_score"] < 0.3 and set(rows[0]["mining"]["scores"]) == {c.name for c in candidates}
    report = mining_report(mining)
    assert "best score < 0.3" in report and "before (pool)" in report and "after (kept)" in report
    assert "Selection bias" in report and "not comparable with the Kaggle leaderboard" in report


def test_the_mine_command_writes_a_suite_its_entry_and_a_report(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PRH_STORE", str(tmp_path / "store.sqlite"))
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps(r) + "\n" for r in pool_rows()))
    suites = tmp_path / "suites.toml"
    suites.write_text('[suites.pool]\npath = "pool.jsonl"\n')
    out = tmp_path / "mined" / "hard.jsonl"
    code = main(["generate", "mine", "--pool", "pool", "--suites-file", str(suites), "--candidate", "mean:Rewrite the text as a poem.", "--candidate",
                 "mean:Make the text more formal.", "--quantile", "0.25", "--embedder", "minilm", "--out", str(out),
                 "--register", "--suite-name", "pool-hard"])
    printed = capsys.readouterr().out
    assert code == 0 and "kept 2 of 8 rows" in printed
    spec = load_suite_specs(suites)["pool-hard"]
    hard = load_suite(spec)
    assert len(hard) == 2 and hard.has_groups and spec.path == out
    assert "Hard-sample mining of suite `pool`" in out.with_suffix(".md").read_text()
    assert main(["generate", "mine", "--pool", "pool", "--suites-file", str(suites), "--candidate", "mean:x",
                 "--out", str(out), "--register", "--suite-name", "pool-hard"]) == 2  # the name is taken


def test_review_report_samples_rows_with_flags_and_open_failures(tmp_path, capsys):
    rows = [row(f"r{i}", "Rewrite the text as a haiku.", rewritten="Sure, here it is: fridge, Friday, noon." if i % 2
                else "Fridge on Friday; lunch by noon.", provenance={"model": "gpt-x", "seed": i}) for i in range(30)]
    failures = [{"id": "r99", "final": True, "reason": "not_json"}, {"id": "r3", "final": True, "reason": "unchanged"}]
    text = review_markdown(rows, failures=failures, sample=5, seed=1, source="x.jsonl")
    assert "rows: 30; rows with at least one flag: 15" in text and re.search(r"\| chatty_opener +\| +15 \|", text)
    assert "failures still open (final, no row since): 1" in text and "not_json" in text
    assert text.count("### ") == 5 and "**Instruction:** Rewrite the text as a haiku." in text
    assert review_markdown(rows, sample=5, seed=1) == review_markdown(rows, sample=5, seed=1)
    source = tmp_path / "gen.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "gen.failures.jsonl").write_text("".join(json.dumps(f) + "\n" for f in failures))
    assert main(["generate", "review", "--in", str(source), "--sample", "3", "--out", str(tmp_path / "review.md")]) == 0
    written = (tmp_path / "review.md").read_text()
    assert written.count("### ") == 3 and "Open failures" in written
