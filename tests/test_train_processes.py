"""`prh train` in two CPU processes (torchrun, gloo; accelerate's MULTI_CPU) against one process.

One e2e case, as short as the claim allows (the two launches start four Python processes that import
torch, transformers, peft and accelerate on a small machine):

1. the reference: `train_lora` in this process, 8 steps of the tiny Llama, scored every 4 steps;
2. `torchrun --nproc_per_node 2 -m harness.cli train ...` with the same settings, killed (SIGKILL, every
   process) as soon as its first checkpoint exists;
3. `prh train --processes 2 ...` (the shortcut, which launches torchrun itself): the same command resumes
   from that checkpoint and finishes.

Checked: the finished two-process run has the reference's step losses (relative tolerance 1e-4, see
LOSS_RTOL), learning rates, evaluations and selected step; its adapter, read from the entry it wrote,
loads through the hf candidate and scores what the reference scored; it resumed rather than restarted;
and in each launch exactly one process wrote under the output folder (a write audit through Python's audit
hooks, tests/write_audit), while stdout and the registered candidates file hold the entries once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from tiny_models import (
    HELD_OUT_ROWS,
    MEMORIZE_ROWS,
    TINY_LORA_TARGETS,
    TINY_PROMPT,
    build_tiny_llama,
    one_torch_thread,
    write_rows_jsonl,
)
from tiny_models import tiny_train_config as tiny_config

from harness.candidates import CandidateContext
from harness.candidates.hf import from_config
from harness.data import Suite
from harness.evaluation import evaluate
from harness.tomlfile import tomllib
from harness.train import train_lora

#: Why 1e-4: the two runs compute the same sums in another order. Each step's loss is a float32 sum over
#: ~50 answer tokens (split over the processes, then added in float64), and DDP adds two float32 gradient
#: halves instead of summing one batch: both round at ~1e-7 relative, and 8 Adam steps carry that into
#: the weights without amplifying it (Adam divides each gradient by its own running scale). Measured:
#: largest relative difference 1e-7 over 8 steps. A real difference (a row lost or counted twice, a
#: process's loss weighted by its own token count, another schedule) moves the loss by more than 1e-3 from
#: step 2 on. (A uniform gradient scale error would not show: Adam and clipping are blind to it.)
LOSS_RTOL = 1e-4
STEPS, EVAL_STEPS = 8, 4
pytestmark = pytest.mark.e2e


def train_args(workspace: Path, out: Path) -> list[str]:
    """`prh train` options equal to `tiny_config(base, max_steps=STEPS, eval_steps=EVAL_STEPS)`."""
    return ["train", "--base", str(workspace / "base"), "--train", "mem", "--eval", "held",
            "--suites-file", str(workspace / "suites.toml"), "--out", str(out), "--embedder", "minilm",
            "--system", TINY_PROMPT["system"], "--user", TINY_PROMPT["user_template"],
            "--target-modules", ",".join(TINY_LORA_TARGETS), "--lora-r", "8", "--lora-dropout", "0",
            "--learning-rate", "5e-3", "--lr-schedule", "constant", "--warmup-ratio", "0", "--batch-size", "3",
            "--gradient-accumulation", "1", "--eval-max-new-tokens", "12", "--max-steps", str(STEPS),
            "--eval-steps", str(EVAL_STEPS), "--name", "tiny-ddp"]


def children(pid: int) -> list[int]:
    """Every descendant of `pid` (torchrun starts its workers in sessions of their own, so a process-group
    kill would miss them)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat[stat.rindex(")") + 2:].split()[1])
            parents.setdefault(parent, []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        for child in parents.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def writers(audit: Path) -> dict[int, list[tuple[str, str]]]:
    """pid → (event, path) of every write the audit saw under the output folder."""
    events: dict[int, list[tuple[str, str]]] = {}
    for log in audit.glob("*.tsv"):
        for line in log.read_text().splitlines():
            pid, event, path = line.split("\t")
            events.setdefault(int(pid), []).append((event, path))
    return events


def final_history(out: Path) -> dict:
    last = sorted((out / "checkpoints").iterdir())[-1]
    return json.loads((last / "trainer_state.json").read_text())["history"]


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds torchrun's workers through /proc (Linux)")
def test_two_cpu_processes_train_as_one_resume_after_a_kill_and_only_one_writes(tmp_path, minilm):
    with one_torch_thread():
        build_tiny_llama(tmp_path / "base")
        write_rows_jsonl(tmp_path / "mem.jsonl", MEMORIZE_ROWS)
        write_rows_jsonl(tmp_path / "held.jsonl", HELD_OUT_ROWS)
        (tmp_path / "suites.toml").write_text('[suites.mem]\npath = "mem.jsonl"\n\n[suites.held]\npath = "held.jsonl"\n')
        train = Suite("mem", tuple(MEMORIZE_ROWS), source=str(tmp_path / "mem.jsonl"))
        held = Suite("held", tuple(HELD_OUT_ROWS), source=str(tmp_path / "held.jsonl"))
        clock = time.monotonic()
        reference = train_lora(tiny_config(tmp_path / "base", max_steps=STEPS, eval_steps=EVAL_STEPS, name="tiny-ddp"),
                               train, held, minilm, tmp_path / "one")

    print(f"one process, in this one: {time.monotonic() - clock:.1f} s")
    out = tmp_path / "two"
    out.mkdir()
    audit_first, audit_second = tmp_path / "audit-1", tmp_path / "audit-2"
    audit_first.mkdir()
    audit_second.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "tests" / "write_audit"), str(REPO_ROOT)]),
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PRH_STORE": str(tmp_path / "store.sqlite"),
           "PRH_AUDIT_UNDER": str(out)}

    # 1. the form the issue names, killed (every process, SIGKILL) once the step-4 checkpoint exists
    started = time.monotonic()
    torchrun = Path(sys.executable).with_name("torchrun")
    launcher = [str(torchrun)] if torchrun.is_file() else [sys.executable, "-m", "torch.distributed.run"]
    first = subprocess.Popen([*launcher, "--standalone", "--nproc_per_node", "2", "-m", "harness.cli",
                              *train_args(tmp_path, out)], cwd=tmp_path, env={**env, "PRH_AUDIT_LOG": str(audit_first)},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    checkpoint = out / "checkpoints" / f"step-{EVAL_STEPS:06d}"
    while not checkpoint.is_dir() and first.poll() is None and time.monotonic() - started < 240:
        time.sleep(0.02)
    for pid in [*children(first.pid), first.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    stdout, stderr = first.communicate(timeout=60)
    print(f"first launch, to its first checkpoint: {time.monotonic() - started:.1f} s")
    assert checkpoint.is_dir(), stderr.decode()[-3000:]
    assert not (out / "adapter").exists(), "the first launch finished before it was killed"
    first_writers = writers(audit_first)
    assert len(first_writers) == 1, {pid: events[:3] for pid, events in first_writers.items()}
    assert b"[candidates." not in stdout

    # 2. the shortcut resumes the same run in two processes and finishes it
    candidates = tmp_path / "candidates.toml"
    second = subprocess.run([sys.executable, "-m", "harness.cli", *train_args(tmp_path, out), "--processes", "2",
                             "--register", str(candidates)], cwd=tmp_path,
                            env={**env, "PRH_AUDIT_LOG": str(audit_second)}, capture_output=True, text=True, timeout=300)
    print(f"two launches: {time.monotonic() - started:.1f} s")
    assert second.returncode == 0, second.stderr[-3000:]
    said = " ".join(second.stderr.split())  # rich wraps long lines
    assert "resuming from" in said and "2 processes (MULTI_CPU)" in said
    second_writers = writers(audit_second)
    assert len(second_writers) == 1, {pid: events[:3] for pid, events in second_writers.items()}
    renamed = {Path(path).name for events in second_writers.values() for event, path in events if event == "rename"}
    assert checkpoint.name not in renamed and f"step-{STEPS:06d}" in renamed  # resumed, not restarted
    printed = tomllib.loads(second.stdout)["candidates"]  # stdout is the entries, printed by one process
    assert list(printed) == ["tiny-ddp", "tiny-ddp-vllm"] and second.stdout.count("[candidates.") == 2
    assert list(tomllib.loads(candidates.read_text())["candidates"]) == ["tiny-ddp", "tiny-ddp-vllm"]

    # 3. the same run as one process: losses, rates, evaluations, selection
    ours, theirs = final_history(out), reference.history
    assert [s["step"] for s in ours["steps"]] == list(range(1, STEPS + 1))
    assert [s["loss"] for s in ours["steps"]] == pytest.approx([s.loss for s in theirs.steps], rel=LOSS_RTOL)
    assert [s["learning_rate"] for s in ours["steps"]] == [s.learning_rate for s in theirs.steps]
    assert [s["tokens"] for s in ours["steps"]] == [s.tokens for s in theirs.steps]
    assert [e["step"] for e in ours["evals"]] == [e.step for e in theirs.evals]
    assert [e["scs"] for e in ours["evals"]] == pytest.approx([e.scs for e in theirs.evals], abs=1e-6)
    entry = tomllib.loads((out / "candidate.toml").read_text())["candidates"]["tiny-ddp"]
    candidate = from_config("tiny-ddp", entry, CandidateContext(base_dir=out))
    with one_torch_thread():
        scored = evaluate(candidate, held, minilm)
    assert scored.mean == pytest.approx(reference.best.scs, abs=1e-6)
    deviation = max(abs(a["loss"] - b.loss) / b.loss for a, b in zip(ours["steps"], theirs.steps))
    print(f"largest relative loss difference, 2 processes vs 1: {deviation:.2e}; "
          f"SCS at {[e.step for e in theirs.evals]}: {[round(e['scs'], 4) for e in ours['evals']]} vs "
          f"{[round(e.scs, 4) for e in theirs.evals]}; adapter scores {scored.mean:.4f}")
