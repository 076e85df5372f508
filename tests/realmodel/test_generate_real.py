"""Real-model tier, generation: `prh generate synth` and `prh generate rewrite` with Gemma-3-270m (the base
model, not instruction-tuned) behind llama-cpp-python's OpenAI-compatible server, on a CPU.

A weak real model is the point: it writes malformed JSON, copies the requested format, says the
instruction back, and never ends its turn (every answer runs to the token cap unless a stop sequence
ends it). The harness must turn that into valid rows only, count every rejected answer, and lose or
duplicate nothing when killed. The rows are not good data (270M parameters cannot rewrite well); the
tier checks that everything written is valid and everything paid for is accounted for.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from llamacpp_server import MODEL_ALIAS

from harness.data import load_suite, spec_for_file
from harness.generate.catalog import expand_catalog, load_catalog
from harness.generate.jsonl import read_jsonl
from harness.generate.synth import synth_items
from harness.generate.validation import InvalidGeneration, parse_pair, problems
from realmodel.conftest import REPO_ROOT
from realmodel.generate_real_support import RunOutcome, Transcript, gemma_server, run_prh, wait_until_idle

pytestmark = pytest.mark.realmodel

CATALOG = REPO_ROOT / "fixtures" / "prompt_catalog.toml"
N_SYNTH = 12
N_REWRITE = 8
SEED = 5
TEMPERATURE = 0.9
MAX_WORDS = 60
#: reruns allowed to reach N rows (each asks only for the items still missing)
MAX_RUNS = 6
REJECTIONS = {"not_json", "truncated", "empty_original", "empty_rewritten", "original_too_long", "unchanged",
              "echoed_prompt"}


@pytest.fixture(scope="module")
def server(gemma_gguf_file, tmp_path_factory):
    with gemma_server(gemma_gguf_file, None, tmp_path_factory.mktemp("llama-generate")) as running:
        yield running


def synth_args(server, out: Path, *, n: int, json_mode: str, max_tokens: int, retries: int) -> list[str]:
    return ["generate", "synth", "--catalog", str(CATALOG), "--n", str(n), "--out", str(out), "--seed", str(SEED),
            "--base-url", server.base_url, "--model", MODEL_ALIAS, "--temperature", str(TEMPERATURE),
            "--max-words", str(MAX_WORDS), "--max-tokens", str(max_tokens), "--invalid-retries", str(retries),
            "--json-mode", json_mode, "--concurrency", "1", "--timeout", "300", "--no-progress"]


def failures_of(out: Path) -> list[dict]:
    path = out.with_name(out.stem + ".failures.jsonl")
    return read_jsonl(path) if path.exists() else []


def rows_of(out: Path) -> list[dict]:
    return read_jsonl(out) if out.exists() else []


def check_accounting(run: RunOutcome, server, out: Path, before: tuple[int, int, int]) -> list[dict]:
    """One run's printed counts agree with the server's log and the two files; returns its new failures."""
    rows_before, failures_before, requests_before = before
    rows, failures = rows_of(out), failures_of(out)
    new_failures = failures[failures_before:]
    assert run.code in (0, 1), run.err
    assert run.skipped == rows_before, "a rerun skips exactly the rows already written"
    assert run.written == len(rows) - rows_before
    assert server.completion_requests() - requests_before == run.requests, "every request is counted"
    # every rejected answer is one failure record (retried or final); a final one per failed item
    assert sum(1 for f in new_failures if f["reason"] != "request_failed") == run.rejected
    assert Counter(f["reason"] for f in new_failures) == Counter(run.reasons)
    assert sum(1 for f in new_failures if f["final"]) == run.failed
    assert run.written + run.failed == run.planned - run.skipped, "every item ends as a row or a failure"
    assert set(run.reasons) <= REJECTIONS | {"request_failed"}, run.reasons
    return new_failures


def check_rows(rows: list[dict], failures: list[dict], *, max_words: int | None) -> None:
    """Every row valid, no id twice, and no rejected answer written."""
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)), "duplicate rows"
    for row in rows:
        assert problems(row["original_text"], row["rewritten_text"], max_words=max_words,
                        prompt=row["rewrite_prompt"]) == [], row
        assert row["provenance"]["model"] == MODEL_ALIAS and row["provenance"]["completion_tokens"] > 0
    written = {(row["original_text"], row["rewritten_text"]) for row in rows}
    for failure in failures:
        if failure["reason"] in ("not_json", "request_failed") or failure["answer"] is None:
            continue
        try:
            pair = tuple(text.strip() for text in parse_pair(failure["answer"]))
        except InvalidGeneration:
            continue
        assert pair not in written, f"a rejected answer became a row: {failure}"


def test_synth_with_gemma_ends_with_12_valid_rows_through_malformed_json_and_a_kill(server, tmp_path, capsys,
                                                                                    record_number):
    out = tmp_path / "synth.jsonl"
    transcript = Transcript("generate-synth", {tmp_path: "data", REPO_ROOT / "fixtures": "fixtures"})
    started = time.perf_counter()
    all_reasons: Counter = Counter()

    # 1. Without constrained decoding the base model rarely writes the JSON object asked for: malformed
    #    answers are asked again once, then counted as failures; nothing malformed is written.
    before = (0, 0, server.completion_requests())
    args = synth_args(server, out, n=2, json_mode="off", max_tokens=48, retries=1)
    run = run_prh(args, capsys, transcript, note="; JSON mode off: no grammar")
    new = check_accounting(run, server, out, before)
    all_reasons.update(run.reasons)
    assert run.reasons.get("not_json", 0) + run.reasons.get("truncated", 0) >= 1, \
        f"the base model wrote valid JSON every time without a grammar: {run.out}"
    for failure in new:
        assert failure["answer"] is not None and failure["model"] == MODEL_ALIAS and failure["detail"]
    check_rows(rows_of(out), failures_of(out), max_words=MAX_WORDS)

    # 2. The full set, with the answer's JSON schema (llama.cpp constrains decoding to it), in another
    #    process that is SIGKILLed as soon as it has written two more rows.
    args = synth_args(server, out, n=N_SYNTH, json_mode="schema", max_tokens=96, retries=1)
    rows_before = len(rows_of(out))
    process = subprocess.Popen([sys.executable, "-c", "import sys; from harness.cli import main; sys.exit(main())",
                                *args], cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 420
    while len(rows_of(out)) < rows_before + 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    killed = process.poll() is None
    if killed:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(30)
    assert killed, f"the generator ended before it could be killed: {process.stderr.read().decode()[-2000:]}"
    process.stderr.close()
    wait_until_idle(server, MODEL_ALIAS)  # the killed client's last request may still be running
    kept = out.read_bytes()
    assert len(read_jsonl(out)) >= rows_before + 2

    # 3. Reruns of the same command resume: they ask only for missing items, until all 12 are rows.
    for attempt in range(MAX_RUNS):
        before = (len(rows_of(out)), len(failures_of(out)), server.completion_requests())
        run = run_prh(args, capsys, transcript if attempt < 2 else None,
                      note=f"; {'resumed after the kill' if attempt == 0 else f'rerun {attempt}'}")
        check_accounting(run, server, out, before)
        all_reasons.update(run.reasons)
        assert out.read_bytes().startswith(kept), "a rerun rewrote earlier rows"
        if run.code == 0:
            break
    rows = rows_of(out)
    planned = synth_items(expand_catalog(load_catalog(CATALOG), N_SYNTH, SEED), model=MODEL_ALIAS,
                          temperature=TEMPERATURE, max_words=MAX_WORDS)
    assert len(rows) == N_SYNTH and {row["id"] for row in rows} == {item.id for item in planned}, \
        f"{len(rows)} rows after {MAX_RUNS} reruns; rejected: {dict(all_reasons)}"
    check_rows(rows, failures_of(out), max_words=MAX_WORDS)
    assert len(load_suite(spec_for_file(out))) == N_SYNTH  # the output loads as a suite
    review = tmp_path / "review.md"
    assert run_prh(["generate", "review", "--in", str(out), "--out", str(review), "--sample", "3"], capsys).code == 0
    transcript.add(["generate", "review", "--in", str(out), "--sample", "3"], review.read_text()[:3000], 0,
                   note="; the first 3000 characters")
    transcript.save()
    requests = server.completion_requests()
    record_number("generate synth (Gemma-3-270m via llama.cpp): 12 valid rows",
                  f"{time.perf_counter() - started:.0f} s, {requests} requests, rejected {dict(all_reasons)}")


def test_rewrite_8_rows_with_gemma_keeps_only_complete_rewrites(server, tmp_path, capsys, record_number):
    out = tmp_path / "rewritten.jsonl"
    transcript = Transcript("generate-rewrite", {tmp_path: "data", REPO_ROOT / "suites.toml": "suites.toml"})
    started = time.perf_counter()
    requests_at_start = server.completion_requests()
    # A base model never ends its turn: without a stop its answers run on to --max-tokens ("truncated"); a
    # newline ends them at the first line. Its first line tends to copy the first line of its turn: with the
    # default template (instruction first) that is the instruction said back ("echoed_prompt": one row of
    # `leaked` got nothing else in 18 tries), with the text first it is the text unchanged ("unchanged") or
    # a variation of it, which is as close to a rewrite as a 270M base model comes.
    args = ["generate", "rewrite", "--in", "leaked", "--suites-file", str(REPO_ROOT / "suites.toml"), "--limit",
            str(N_REWRITE), "--user-template", "{original_text}\n\n{rewrite_prompt}", "--out", str(out),
            "--base-url", server.base_url, "--model", MODEL_ALIAS,
            "--temperature", str(TEMPERATURE), "--max-tokens", "64", "--stop", "\n", "--invalid-retries", "2",
            "--concurrency", "1", "--timeout", "300", "--no-progress"]
    reasons: Counter = Counter()
    for attempt in range(MAX_RUNS):
        before = (len(rows_of(out)), len(failures_of(out)), server.completion_requests())
        run = run_prh(args, capsys, transcript if attempt < 2 else None)
        check_accounting(run, server, out, before)
        reasons.update(run.reasons)
        if run.code == 0:
            break
    rows = rows_of(out)
    leaked = load_suite(spec_for_file(REPO_ROOT / "fixtures" / "leaked.csv"))
    assert len(rows) == N_REWRITE and {r["source_id"] for r in rows} == set(leaked.ids[:N_REWRITE]), \
        f"{len(rows)} rows after {MAX_RUNS} runs; rejected: {dict(reasons)}"
    check_rows(rows, failures_of(out), max_words=None)
    by_id = {s.id: s for s in leaked.samples}
    for row in rows:
        source = by_id[row["source_id"]]
        assert row["original_text"] == source.original_text and row["rewrite_prompt"] == source.rewrite_prompt
        assert "\n" not in row["rewritten_text"] and row["provenance"]["stop"] == ["\n"]
        assert row["provenance"]["postprocess"] == "strip"
    review = tmp_path / "review.md"
    assert run_prh(["generate", "review", "--in", str(out), "--out", str(review)], capsys).code == 0
    assert review.read_text().count("### ") == N_REWRITE
    transcript.add(["generate", "review", "--in", str(out), "--sample", "3"], review.read_text()[:3000], 0,
                   note="; the first 3000 characters")
    transcript.save()
    record_number("generate rewrite (Gemma-3-270m via llama.cpp): 8 rows",
                  f"{time.perf_counter() - started:.0f} s, {server.completion_requests() - requests_at_start} "
                  f"requests, rejected {dict(reasons)}")
