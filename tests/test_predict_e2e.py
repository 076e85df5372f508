"""`prh predict` in subprocesses (e2e tier): killed half way and resumed from the prediction cache, and run
from a fresh virtual environment installed offline from `prh wheelhouse`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from stub_openai_server import StubOpenAIServer
from test_chat_candidate import stored_ids
from test_predict import gate, read_submission, write_csv

ROW = re.compile(r"ROW-(\d+)")


@pytest.mark.e2e  # a subprocess killed with SIGKILL, then rerun
def test_killed_predict_resumes_from_the_prediction_cache(tmp_path, monkeypatch):
    total = 30
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PRH_STORE", raising=False)
    write_csv(tmp_path / "test.csv", ["id", "original_text", "rewritten_text"],
              [(str(1000 + i), f"Original text ROW-{i}.", f"Rewritten, text ROW-{i}.") for i in range(total)])
    write_csv(tmp_path / "rows.csv", ["id", "original_text", "rewritten_text", "rewrite_prompt"], [("r", "a", "b", "c")])
    (tmp_path / "suites.toml").write_text('[suites.rows]\npath = "rows.csv"\n')
    with StubOpenAIServer(latency=0.1) as server:
        server.handler = lambda request: f'Make row {ROW.search(request.last_user_text).group(1)} "formal", please.'
        (tmp_path / "candidates.toml").write_text(
            f'[candidates.chatty]\nkind = "chat"\nbase_url = "{server.base_url}"\nmodel = "stub-model"\n'
            "max_concurrency = 2\n")
        gate("chatty")
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        command = [sys.executable, "-m", "harness.cli", "predict", "--candidate", "chatty", "--input", "test.csv",
                   "--out", "submission.csv"]

        def hits_per_row() -> Counter:
            return Counter(ROW.search(r.last_user_text).group(1) for r in server.chat_requests)

        child = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while len(stored_ids(tmp_path / ".prh" / "store.sqlite")) < 6:
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the child stored nothing in time"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait()
        time.sleep(0.3)  # requests the dead child had in flight reach the server's log
        answered = stored_ids(tmp_path / ".prh" / "store.sqlite")
        before = hits_per_row()
        assert 6 <= len(answered) < total and not (tmp_path / "submission.csv").exists()

        finished = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert finished.returncode == 0, finished.stderr
        after = hits_per_row()

    assert f"answered {total} rows of " in finished.stdout
    assert f"({len(answered)} from the prediction cache)" in finished.stdout
    assert {row: after[row] for row in map(str, range(total)) if f"{1000 + int(row)}" in answered} == \
        {row: before[row] for row in map(str, range(total)) if f"{1000 + int(row)}" in answered}  # none paid twice
    assert sum(after.values()) - sum(before.values()) == total - len(answered)
    assert read_submission(tmp_path / "submission.csv") == [
        (str(1000 + i), f'Make row {i} "formal", please.') for i in range(total)]
