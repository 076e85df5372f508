"""Never lose paid-for work: `prh generate synth` killed with SIGKILL part way (twice), then rerun, ends
with exactly N valid rows: no duplicates, no lost rows, earlier lines untouched, and the rerun asks only
for the items that were missing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO_ROOT
from stub_openai_server import StubOpenAIServer
from test_generate_synth import CATALOG, pair_for

from harness.cli import main
from harness.generate.catalog import expand_catalog, load_catalog
from harness.generate.jsonl import read_jsonl
from harness.generate.synth import synth_items

N = 60
CONCURRENCY = 4

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")


def command(base_url: str, out) -> list[str]:
    return ["generate", "synth", "--catalog", CATALOG, "--n", str(N), "--out", str(out), "--base-url", base_url,
            "--model", "stub-model", "--concurrency", str(CONCURRENCY), "--no-progress", "--seed", "5"]


def complete_lines(path) -> bytes:
    data = path.read_bytes() if path.exists() else b""
    return data[:data.rfind(b"\n") + 1]


def run_and_kill(base_url: str, out, at_least: int) -> None:
    """Start the generator in its own process and SIGKILL it once the file has `at_least` rows."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    child = subprocess.Popen([sys.executable, "-m", "harness.cli", *command(base_url, out)], cwd=REPO_ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    try:
        while complete_lines(out).count(b"\n") < at_least:
            if child.poll() is not None:
                pytest.fail(f"the generator exited early ({child.returncode}): {child.stderr.read().decode()}")
            if time.monotonic() > deadline:
                pytest.fail("the generator wrote too few rows within 60 s")
            time.sleep(0.01)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL


@pytest.mark.e2e  # two subprocesses killed with SIGKILL, then a rerun
def test_sigkill_part_way_then_rerun_yields_exactly_n_rows(tmp_path):
    out = tmp_path / "synth.jsonl"
    expected_ids = {item.id for item in synth_items(expand_catalog(load_catalog(CATALOG), N, 5), model="stub-model",
                                                    temperature=0.9)}
    with StubOpenAIServer(latency=0.05, handler=pair_for) as server:
        run_and_kill(server.base_url, out, at_least=12)
        first = complete_lines(out)
        run_and_kill(server.base_url, out, at_least=first.count(b"\n") + 12)
        second = complete_lines(out)
        assert second.startswith(first)  # the second run only appended (after repairing a torn tail, if any)
        done_before = {row["id"] for row in read_jsonl(out)}
        assert len(done_before) < N
        server.reset()
        assert main(command(server.base_url, out)) == 0
        asked = server.chat_hits
    rows = read_jsonl(out, allow_torn_tail=False)
    ids = [row["id"] for row in rows]
    assert len(ids) == N and set(ids) == expected_ids  # exactly N, no duplicates
    assert done_before <= set(ids) and out.read_bytes().startswith(second)  # nothing lost or rewritten
    assert asked == N - len(done_before)  # the rerun paid only for what was missing
    assert all(row["original_text"] and row["rewritten_text"] and row["provenance"]["model"] == "stub-model"
               for row in rows)
