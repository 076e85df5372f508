"""The multi-process pieces of `prh train` that need no second process: how a micro-batch is split over
processes, what the launcher runs, and the refusals that come before any process group exists. The
two-process run itself is tests/test_train_processes.py (e2e)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO_ROOT
from hypothesis import given
from hypothesis import strategies as st
from tiny_models import HELD_OUT_ROWS, MEMORIZE_ROWS, write_rows_jsonl

from harness.cli import main
from harness.errors import ConfigError
from harness.train.distributed import share_rows, start_processes, torchrun_command


@given(rows=st.lists(st.integers(0, 1000), max_size=12, unique=True).filter(bool), count=st.integers(1, 8))
def test_the_processes_shares_of_a_micro_batch_are_the_micro_batch(rows, count):
    shares = [share_rows(rows, index, count) for index in range(count)]
    weighted = [row for mine, weight in shares if weight == 1.0 for row in mine]
    assert sorted(weighted) == sorted(rows)  # every row once, on one process
    assert all(mine for mine, _ in shares)  # every process runs a forward pass (the all-reduce needs all)
    assert [weight for _, weight in shares] == [1.0 if index < len(rows) else 0.0 for index in range(count)]
    sizes = [len(mine) for mine, weight in shares if weight]
    assert max(sizes) - min(sizes) <= 1  # as even as the rows allow


def test_the_launcher_runs_this_command_under_torchrun_on_a_free_port():
    command = torchrun_command(3, ["train", "--base", "b"])
    assert command[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert command[3:] == ["--standalone", "--nproc_per_node", "3", "-m", "harness.cli", "train", "--base", "b"]


def test_a_process_count_that_cannot_be_is_refused_before_anything_loads(monkeypatch, capsys, tmp_path):
    args = ["train", "--base", str(tmp_path / "none"), "--train", "t", "--eval", "e", "--out", str(tmp_path / "o")]
    assert main([*args, "--processes", "0"]) == 2
    assert "--processes must be a positive integer" in capsys.readouterr().err
    (tmp_path / "suites.toml").write_text('[suites.t]\npath = "t.jsonl"\n\n[suites.e]\npath = "e.jsonl"\n')
    write_rows_jsonl(tmp_path / "t.jsonl", MEMORIZE_ROWS)
    write_rows_jsonl(tmp_path / "e.jsonl", HELD_OUT_ROWS)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    typo = [*args, "--suites-file", str(tmp_path / "suites.toml"), "--processes", "2", "--device", "cpu"]
    assert main(typo) == 2  # a base that does not exist: said once, before torchrun starts anything
    assert "--base: model directory" in capsys.readouterr().err and not (tmp_path / "o").exists()
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main([*args, "--processes", "3"]) == 2
    assert "the launcher started 2 processes" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="names one GPU, but 2 processes"):
        start_processes("cuda:1", "cuda:1", "bfloat16", gradient_accumulation=1)
    assert not (tmp_path / "o").exists()


def test_the_cli_runs_as_a_module_which_is_what_torchrun_starts():
    done = subprocess.run([sys.executable, "-m", "harness.cli", "train", "--help"], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--processes" in done.stdout and "torchrun" in done.stdout
