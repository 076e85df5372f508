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


def _without_pip_settings(env: dict[str, str]) -> dict[str, str]:
    """The environment minus PYTHONPATH and every pip setting (this machine's find-links and indexes must
    not leak into an offline install)."""
    return {k: v for k, v in env.items() if not k.startswith("PIP_") and k != "PYTHONPATH"}


@pytest.mark.e2e  # builds a wheelhouse (pip resolves and collects ~70 wheels) and installs it into a fresh venv
def test_wheelhouse_installs_offline_into_a_fresh_venv_and_runs_predict(tmp_path, monkeypatch):
    import torch

    wheelhouse, venv, project = tmp_path / "wheelhouse", tmp_path / "venv", tmp_path / "project"
    built = subprocess.run([sys.executable, "-m", "harness.cli", "wheelhouse", "--out", str(wheelhouse)],
                           env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True, text=True,
                           timeout=900)
    assert built.returncode == 0, built.stderr
    names = sorted(p.name for p in wheelhouse.glob("*.whl"))
    assert any(n.startswith("prompt_recovery_harness-") for n in names)
    assert not any(re.match(r"(torch|triton|nvidia_)", n) for n in names)  # a Kaggle GPU image has its own torch
    assert "left out (the notebook must already have them; --with-torch adds them): torch==" in built.stdout

    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    # What a Kaggle image has before the install: torch, here linked in from this environment (no copy).
    [site_packages] = venv.glob("lib/python*/site-packages")
    torch_dir = Path(torch.__file__).parent
    for item in [torch_dir, *torch_dir.parent.glob("torch-*.dist-info")]:
        (site_packages / item.name).symlink_to(item)
    env = {**_without_pip_settings(dict(os.environ)), "PIP_CONFIG_FILE": os.devnull}
    installed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "--isolated", "install", "--no-compile",
                                "--no-index", "--find-links", str(wheelhouse), "prompt-recovery-harness"],
                               env=env, capture_output=True, text=True, timeout=900)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]

    project.mkdir()
    monkeypatch.chdir(project)
    monkeypatch.delenv("PRH_STORE", raising=False)
    write_csv(project / "test.csv", ["id", "original_text", "rewritten_text"],
              [("9559194", "A memo, short.", 'A "shanty", long.'), ("-1", "Two\nlines.", "Two lines, rhymed.")])
    write_csv(project / "rows.csv", ["id", "original_text", "rewritten_text", "rewrite_prompt"], [("r", "a", "b", "c")])
    (project / "suites.toml").write_text('[suites.rows]\npath = "rows.csv"\n')
    (project / "candidates.toml").write_text('[candidates.const]\nkind = "constant"\nprompt = "Make it a shanty."\n')
    gate("const")
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import harness; print(harness.__file__)"],
                           env=env, cwd=project, capture_output=True, text=True, check=True)
    assert where.stdout.startswith(str(venv))  # the installed copy, not this checkout
    predicted = subprocess.run([str(venv / "bin" / "prh"), "predict", "--candidate", "const", "--input", "test.csv",
                                "--out", "submission.csv"], env=env, cwd=project, capture_output=True, text=True,
                               timeout=300)
    assert predicted.returncode == 0, predicted.stderr
    assert "gate: passed" in predicted.stdout
    assert read_submission(project / "submission.csv") == [("9559194", "Make it a shanty."), ("-1", "Make it a shanty.")]
