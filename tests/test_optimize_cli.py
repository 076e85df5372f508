"""`prh optimize …`, run in-process (embedders swapped for loaded or stub ones)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, prh_with
from optimize_helpers import BagOfWordsEmbedder, family_suite
from stub_openai_server import StubOpenAIServer


@pytest.fixture
def in_repo(monkeypatch, tmp_path):
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setenv("PRH_STORE", str(tmp_path / "store.sqlite"))
    return tmp_path


@pytest.fixture
def bow():
    """`prh` with every embedder it asks for the instant bag-of-words stub."""
    return prh_with(BagOfWordsEmbedder())


def run_json(prh, capsys, *args):
    code = prh(list(args))
    out = capsys.readouterr().out
    return code, (json.loads(out) if out.strip() else None)


def write_suite_csv(path, suite):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "original_text", "rewrite_prompt", "rewritten_text"])
        for s in suite.samples:
            writer.writerow([s.id, s.original_text, s.rewrite_prompt, s.rewritten_text])
    return path


def test_importing_the_cli_module_loads_nothing_heavy():
    code = ("import argparse, sys, harness.commands.optimize as c; c.add_commands(argparse.ArgumentParser()"
            ".add_subparsers()); print(sorted(m for m in ('torch', 'openai', 'numpy', 'matplotlib', "
            "'sentence_transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    help_text = subprocess.run([sys.executable, "-m", "harness.cli", "--help"], cwd=REPO_ROOT, capture_output=True,
                               text=True, check=True).stdout
    assert "optimize" in help_text and "calibrate" in help_text


@pytest.mark.slow
def test_mean_prompt_json_with_the_packaged_embedder(in_repo, capsys, monkeypatch, minilm):
    prh = prh_with(minilm)
    args = ["optimize", "mean-prompt", "--suite", "leaked", "--embedder", "minilm", "--max-steps", "2",
            "--candidates-per-step", "24", "--resamples", "500", "--seed", "5", "--json", "--log",
            str(in_repo / "steps.jsonl")]
    code, data = run_json(prh, capsys, *args)
    assert code == 0
    for key in ("prompt", "train_score", "heldout_score", "start_heldout_score", "heldout_ci_low", "heldout_ci_high",
                "delta_ci_low", "delta_ci_high"):
        assert key in data
    assert data["embedder"] == "minilm" and data["comparable_with_kaggle"] is False
    assert data["split"]["n_train"] + data["split"]["n_heldout"] == 64 and data["heldout_n"] == data["split"]["n_heldout"]
    assert data["train_score"] >= data["start_train_score"] and data["steps"] == 2
    assert data["candidates_toml"].startswith("[candidates.searched-mean-prompt]")
    steps = [json.loads(line) for line in (in_repo / "steps.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == [0, 1, 2]


@pytest.mark.slow
def test_token_search_on_the_public_suite_beats_its_start_under_the_oracle(in_repo, capsys, monkeypatch, minilm):
    """The issue's "done when", kept short: `prh optimize mean-prompt --suite public --embedder minilm
    --space tokens --json` searches the embedder's tokens (guided by the gradient), beats its start on
    held-out rows, and stays under the held-out oracle bound. (Same seed and steps, same prompt: tested on
    the stub embedder, faster.)"""
    prh = prh_with(minilm)
    args = ["optimize", "mean-prompt", "--suite", "public", "--embedder", "minilm", "--space", "tokens",
            "--budget-seconds", "0",
            "--max-steps", "2", "--candidates-per-step", "32", "--nearest-steps", "1", "--resamples", "500", "--json"]
    code, data = run_json(prh, capsys, *args)
    assert code == 0
    assert data["space"] == "tokens" and data["guide"] == "gradient" and data["device"] == "cpu"
    assert data["heldout_score"] > data["start_heldout_score"] and data["heldout_n"] == data["split"]["n_heldout"]
    assert data["oracle_heldout"] >= data["heldout_score"] and data["oracle_heldout"] >= data["nearest_heldout_score"]
    assert data["oracle_train"] >= data["train_score"]
    assert 0 < data["headroom_share"] < 1
    assert data["strings_evaluated"] > 0 and data["strings_per_second"] > 0
    assert data["tokens_usable"] > 20_000 and data["vocabulary_size"] >= data["tokens_from_train"]


def test_mean_prompt_is_reproducible_and_prints_a_candidates_entry(in_repo, capsys, bow):
    args = ["optimize", "mean-prompt", "--suite", "synthetic-hard", "--max-steps", "4", "--candidates-per-step",
            "16", "--resamples", "300", "--seed", "3", "--json"]
    _, first = run_json(bow, capsys, *args)
    _, second = run_json(bow, capsys, *args)
    assert first["prompt"] == second["prompt"] and first["heldout_score"] == second["heldout_score"]
    assert first["split"]["by"] == "group"  # the suite has groups: auto splits by group
    code = bow(args[:-1] + ["--name", "found"])
    out = capsys.readouterr().out
    assert code == 0 and "held-out (" in out and "[candidates.found]" in out and "train (what the search" in out
    assert "best possible constant" in out and "oracle (best constant answer)" in out
    assert "nearest string to the train oracle" in out
    assert first["space"] == "words"  # the default
    # a token search needs a tokenizer; no stop for the nearest search is an error too
    code = bow(args + ["--space", "tokens"])
    assert code == 2 and "needs an embedder with a tokenizer" in capsys.readouterr().err
    code = bow(["optimize", "mean-prompt", "--suite", "synthetic-hard", "--budget-seconds", "0", "--max-evaluations",
                 "50"])
    assert code == 2 and "the nearest-string search needs a stop" in capsys.readouterr().err


def test_opro_cli_end_to_end_with_stub_proposers(in_repo, capsys, bow):
    suite_path = write_suite_csv(in_repo / "families.csv", family_suite())
    with StubOpenAIServer(models=["a"], handler=lambda r: "<INS>Rewrite the text as a poem.</INS>") as one, \
            StubOpenAIServer(models=["b"], handler=lambda r: "I refuse.") as two:
        candidates = in_repo / "candidates.toml"
        candidates.write_text(f'[candidates.p1]\nkind = "chat"\nbase_url = "{one.base_url}"\nmodel = "a"\n\n'
                              f'[candidates.p2]\nkind = "chat"\nbase_url = "{two.base_url}"\nmodel = "b"\n'
                              'max_retries = 0\n')
        out = in_repo / "opro"
        code, data = run_json(bow, capsys, "optimize", "opro", "--suite", str(suite_path), "--target", "mean:Hello there.",
                              "--proposer", "p1", "--proposer", "p2", "--rounds", "2", "--resamples", "300",
                              "--candidates-file", str(candidates), "--out", str(out), "--json")
        assert code == 0
        assert data["instruction"] == "Rewrite the text as a poem." and data["proposals"]["invalid"] == 2
        assert data["heldout_ci_low"] <= data["heldout_score"] <= data["heldout_ci_high"]
        for name in ("trajectory.jsonl", "trajectory.png", "training.jsonl", "result.json"):
            assert (out / name).is_file(), name
        assert data["training_rows"] == 1
        code = bow(["optimize", "export-training", "--trajectory", str(out / "trajectory.jsonl"), "--out",
                     str(in_repo / "all.jsonl"), "--all"])
        assert code == 0 and "1 rows" in capsys.readouterr().out
        assert bow(["optimize", "plot", "--trajectory", str(out / "trajectory.jsonl"), "--out",
                     str(in_repo / "again.png")]) == 0
        # one proposer is refused before any request, as a one-line error
        capsys.readouterr()
        code = bow(["optimize", "opro", "--suite", str(suite_path), "--proposer", "p1", "--candidates-file",
                     str(candidates), "--out", str(in_repo / "x")])
        err = capsys.readouterr().err
        assert code == 2 and "two different proposer models" in err and "Traceback" not in err
        code = bow(["optimize", "opro", "--suite", str(suite_path), "--proposer", "p1", "--proposer", "p2",
                     "--candidates-file", str(candidates), "--max-cost", "1", "--price", "p1=1,2"])
        assert code == 2 and "--price p2=IN,OUT" in capsys.readouterr().err


def test_opro_caps_proposer_answers_for_models_that_never_stop(in_repo, capsys, bow):
    """A base model (Gemma-3-270m) runs every answer to the cap: 1024 tokens per proposal unless capped."""
    suite_path = write_suite_csv(in_repo / "families.csv", family_suite())
    with StubOpenAIServer(models=["a", "b"], handler=lambda r: "<INS>Rewrite the text as a poem.</INS>") as server:
        candidates = in_repo / "candidates.toml"
        candidates.write_text("".join(f'[candidates.{m}]\nkind = "chat"\nbase_url = "{server.base_url}"\nmodel = "{m}"\n'
                                      for m in ("a", "b")))
        args = ["optimize", "opro", "--suite", str(suite_path), "--target", "mean:Hello there.", "--proposer", "a",
                "--proposer", "b", "--rounds", "1", "--resamples", "300", "--candidates-file", str(candidates),
                "--out", str(in_repo / "opro"), "--json"]
        code, _ = run_json(bow, capsys, *args, "--max-answer-tokens", "48")
        assert code == 0 and [r.body["max_tokens"] for r in server.chat_requests] == [48, 48]
        assert bow([*args, "--max-answer-tokens", "0"]) == 2
        assert "max_answer_tokens must be >= 1" in capsys.readouterr().err
