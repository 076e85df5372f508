"""Real-model tier, GEPA and TextGrad: `prh optimize gepa` and `prh optimize textgrad` for one short
iteration each, with Gemma-3-270m behind llama-cpp-python's server as the proposer (GEPA's reflection
model, TextGrad's backward engine), scored with MiniLM on dev rows and reported on held-out rows. GEPA
optimises a real chat target (Gemma again); TextGrad a mean prompt, which makes no target requests (the
chat target's path is the one OPRO and GEPA already take: the tier's time is kept for what differs).

As in OPRO's case (test_opro_real.py), a 270M base model cannot be expected to write a better
instruction; the tier checks what must hold whatever it writes: the run ends, its JSON has the shared
fields, every request the server answered is accounted for (the server's access log against the
metered usage and the held-out scoring), the metric calls stay within --max-metric-calls, and the
trajectory, plot, training set and candidates entry are written. Skips, saying so, without the
`optimizers` extra.
"""

from __future__ import annotations

import importlib.util
import time

import pytest
from llamacpp_server import MODEL_ALIAS

from harness.optimize.trajectory import read_trajectory
from realmodel.conftest import REPO_ROOT
from realmodel.generate_real_support import (
    Transcript,
    gemma_server,
    leaked_rows_file,
    optimizer_result,
    run_prh,
    write_optimizer_candidates,
)

pytestmark = pytest.mark.realmodel

#: rows of `leaked` the runs split (train 4, dev 4, held-out 4)
ROWS = slice(40, 52)
#: one iteration: the start on 4 dev rows, then a GEPA iteration (parent and child on a minibatch of 2,
#: the child on 4 dev rows) or a TextGrad step (a minibatch of 3, the proposal on 4 dev rows)
BUDGET = {"gepa": 12, "textgrad": 11}
BACKEND_OPTIONS = {"gepa": ["--target", "gemma-chat", "--slot", "user-prefix", "--minibatch-size", "2",
                            "--feedback-rows", "2"],
                   "textgrad": ["--target", "mean", "--steps", "1", "--minibatch-size", "3"]}


@pytest.fixture(scope="module")
def server(gemma_gguf_file, tmp_path_factory):
    with gemma_server(gemma_gguf_file, {MODEL_ALIAS: {}}, tmp_path_factory.mktemp("llama-optimizers")) as running:
        yield running


@pytest.mark.parametrize("backend", ["gepa", "textgrad"])
def test_one_iteration_against_gemma_with_the_accounting_checked(backend, server, tmp_path, capsys, minilm,
                                                                 record_number):
    if importlib.util.find_spec(backend) is None:  # found, not imported (textgrad's import opens a log file)
        pytest.skip(f"{backend} is not installed (optimizers extra: pip install -e '.[optimizers]')")
    suite = leaked_rows_file(tmp_path, ROWS)
    candidates = write_optimizer_candidates(tmp_path / "candidates.toml", server.base_url)
    out = tmp_path / backend
    transcript = Transcript(f"optimize-{backend}", {tmp_path: "data", REPO_ROOT / "suites.toml": "suites.toml"})
    requests_before = server.completion_requests()
    started = time.perf_counter()
    run = run_prh(["optimize", backend, "--suite", str(suite), "--proposer", "gemma-proposer", "--max-metric-calls",
                   str(BUDGET[backend]), *BACKEND_OPTIONS[backend], "--max-answer-tokens", "64", "--split", "0.34,0.33,0.33",
                   "--split-by", "prompt", "--embedder", "minilm", "--resamples", "2000", "--candidates-file",
                   str(candidates), "--suites-file", str(REPO_ROOT / "suites.toml"), "--store",
                   str(tmp_path / "store.sqlite"), "--out", str(out)], capsys, transcript)
    seconds = time.perf_counter() - started
    assert run.code == 0, run.err
    result = optimizer_result(out)
    assert result["backend"] == backend
    assert 0 < result["metric_calls"] <= BUDGET[backend] and result["rounds_completed"] == 1
    chat = backend == "gepa"
    assert result["candidates_toml"].startswith("[candidates.gemma-chat-optimised]" if chat
                                                else "[candidates.optimised-mean-prompt]")

    records = read_trajectory(out / "trajectory.jsonl")
    proposals = [r for r in records if r["type"] == "proposal"]
    dev_rows = records[0]["split"]["n_dev"]
    assert proposals[0]["status"] == "start" and proposals[0]["dev_n"] == dev_rows > 0
    assert proposals[0]["dev_n_empty"] < dev_rows or not chat, "the real chat target answered no dev row"
    assert len(proposals) >= 2 and proposals[1]["round"] == 1  # the iteration's proposal, whatever became of it
    # the accounting against the server's access log: every request it answered is a metered one (proposer
    # or target, during the run) or one of the held-out scoring's target requests (not counted in usage);
    # the chat target makes one request per row scored (nothing is cached in a fresh store)
    answered = server.completion_requests() - requests_before
    heldout_requests = result["heldout_n"] * (1 if result["best_instruction"] == result["start"] else 2) * chat
    assert answered == result["usage"]["requests"] + heldout_requests
    proposer_requests = 1 if backend == "gepa" else 2  # a reflection, or a gradient and an update
    assert result["usage"]["requests"] == result["metric_calls"] * chat + proposer_requests
    assert result["usage"]["tokens"] > 0 and result["usage"]["unreported_usage_requests"] == 0
    transcript.save()
    counts = {s: sum(r["status"] == s for r in proposals[1:]) for s in sorted({r["status"] for r in proposals[1:]})}
    what = "proposer and chat target" if chat else "proposer, mean-prompt target"
    record_number(f"optimize {backend} (Gemma-3-270m: {what}, 1 iteration)",
                  f"{seconds:.0f} s, {answered} requests ({result['metric_calls']} metric calls), proposals {counts}, "
                  f"held-out {result['heldout_score']:.4f} vs start {result['start_heldout_score']:.4f} "
                  f"(Δ {result['heldout_delta']:+.4f} [{result['heldout_delta_ci'][0]:+.4f}, "
                  f"{result['heldout_delta_ci'][1]:+.4f}])")
