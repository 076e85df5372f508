"""Real-model tier, OPRO: `prh optimize opro` for two rounds with two proposers, both Gemma-3-270m behind
llama-cpp-python's server under two model names with different settings (two "differently configured
endpoints"), optimising the instruction of a real chat candidate against the same server, scored with
MiniLM on dev rows and reported on held-out rows.

A 270M base model is a poor optimiser: it rarely writes its proposal between <INS> tags and its answers
run to the token cap. The tier checks what must hold whatever it proposes: every answer is recorded
(scored, invalid, duplicate or failed) and only valid ones are evaluated, through the real candidate;
the two proposers do not propose the same text; the trajectory, plot, training set and held-out result
are written. It does not check that the instruction improves.
"""

from __future__ import annotations

import time

import pytest
from llamacpp_server import MODEL_ALIAS

from harness.optimize.trajectory import read_trajectory
from realmodel.conftest import REPO_ROOT
from realmodel.generate_real_support import (
    GEMMA_ALIASES,
    SECOND_ALIAS,
    Transcript,
    gemma_server,
    leaked_rows_file,
    optimizer_result,
    run_prh,
    write_optimizer_candidates,
)

pytestmark = pytest.mark.realmodel

ROUNDS = 2
#: rows of `leaked` the run splits (train 25% for exemplars, dev 37.5%, held-out 37.5%)
ROWS = slice(40, 56)
STATUSES = {"scored", "invalid", "duplicate", "failed"}
@pytest.fixture(scope="module")
def server(gemma_gguf_file, tmp_path_factory):
    with gemma_server(gemma_gguf_file, GEMMA_ALIASES, tmp_path_factory.mktemp("llama-opro")) as running:
        yield running


def test_opro_two_rounds_two_proposers_real_chat_target(server, tmp_path, capsys, minilm, record_number):
    suite = leaked_rows_file(tmp_path, ROWS)
    candidates = write_optimizer_candidates(tmp_path / "candidates.toml", server.base_url)
    out = tmp_path / "opro"
    transcript = Transcript("optimize-opro", {tmp_path: "data", REPO_ROOT / "suites.toml": "suites.toml"})
    requests_before = server.completion_requests()
    started = time.perf_counter()
    run = run_prh(["optimize", "opro", "--suite", str(suite), "--target", "gemma-chat", "--slot", "user-prefix",
                   "--proposer", "gemma-proposer", "--proposer", "gemma-proposer-b", "--rounds", str(ROUNDS),
                   "--max-answer-tokens", "64", "--exemplars", "1", "--split", "0.25,0.375,0.375", "--split-by",
                   "prompt", "--embedder", "minilm", "--resamples", "2000", "--candidates-file", str(candidates),
                   "--suites-file", str(REPO_ROOT / "suites.toml"), "--store", str(tmp_path / "store.sqlite"),
                   "--out", str(out)], capsys, transcript)
    seconds = time.perf_counter() - started
    assert run.code == 0, run.err
    result = optimizer_result(out)
    assert result["backend"] == "opro" and result["rounds_completed"] == ROUNDS

    records = read_trajectory(out / "trajectory.jsonl")
    run_record = records[0]
    assert run_record["type"] == "run" and run_record["target_kind"] == "chat"
    assert {p["model"] for p in run_record["proposers"]} == {MODEL_ALIAS, SECOND_ALIAS}
    assert [r["round"] for r in records if r["type"] == "round"] == list(range(1, ROUNDS + 1))
    proposals = [r for r in records if r["type"] == "proposal"]
    start, asked = proposals[0], proposals[1:]
    dev_rows = run_record["split"]["n_dev"]
    assert start["status"] == "start" and start["instruction"] == "" and start["dev_n"] == dev_rows > 0
    assert start["dev_n_empty"] < start["dev_n"], "the real chat candidate answered no dev row"
    # every proposer answered every round, and every answer is accounted for
    assert sorted((r["round"], r["proposer"]) for r in asked) == sorted(
        (k, name) for k in range(1, ROUNDS + 1) for name in ("gemma-proposer", "gemma-proposer-b"))
    assert {r["status"] for r in asked} <= STATUSES
    for record in asked:
        if record["status"] == "scored":  # evaluated through the real chat candidate on every dev row
            assert record["instruction"] and record["dev_n"] == dev_rows and record["dev_score"] is not None
        else:
            assert record["dev_score"] is None and (record["problem"] or record["status"] == "duplicate")
    # the same weights under two names, each with its own seed: they never propose the same text
    for k in range(1, ROUNDS + 1):
        said = [r["instruction"] or r["answer"] for r in asked if r["round"] == k]
        assert len(said) == 2 and said[0] != said[1], said
    final = records[-1]
    assert final["type"] == "final" and final["heldout_n"] == result["heldout_n"] > 0
    assert final["usage"]["tokens"] > 0 and server.completion_requests() > requests_before
    transcript.save()
    counts = {status: sum(r["status"] == status for r in asked) for status in sorted(STATUSES)}
    record_number("optimize opro (Gemma-3-270m: 2 proposers, chat target, 2 rounds)",
                  f"{seconds:.0f} s, {server.completion_requests() - requests_before} requests, proposals {counts}, "
                  f"held-out {result['heldout_score']:.4f} vs start {result['start_heldout_score']:.4f} "
                  f"(Δ {result['delta']:+.4f} [{result['delta_ci_low']:+.4f}, {result['delta_ci_high']:+.4f}])")
