"""Checkpoints: everything needed to continue a run exactly where it stopped, written atomically.

A checkpoint is a folder `checkpoints/step-NNNNNN/` holding
- `adapter/`: the LoRA adapter as peft saves it, loadable by the hf candidate as it is;
- `training_state.pt`: optimizer and scheduler state, torch's random number generator states (dropout)
  and the step, loaded with `weights_only=True`;
- `trainer_state.json`: the run's history up to this step (and, once scored, this step's evaluation).
The folder is written under a hidden temporary name and renamed into place, so a run killed while
saving leaves the previous checkpoint intact and never a half-written one that looks complete. Only
`trainer_state.json` is rewritten later (when the evaluation finishes), by an atomic replace.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.files import write_json_atomic
from harness.train.history import History
from harness.train.model import save_adapter

CHECKPOINTS = "checkpoints"
ADAPTER = "adapter"
TRAINING_STATE = "training_state.pt"
TRAINER_STATE = "trainer_state.json"
_NAME = re.compile(r"^step-(\d{6,})$")


@dataclass(frozen=True)
class Checkpoint:
    step: int
    path: Path

    @property
    def adapter_dir(self) -> Path:
        return self.path / ADAPTER

    @property
    def name(self) -> str:
        return self.path.name


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}"


def list_checkpoints(out_dir: Path) -> list[Checkpoint]:
    """Complete checkpoints of the run in `out_dir`, oldest first (temporary folders are ignored)."""
    folder = out_dir / CHECKPOINTS
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _NAME.match(path.name)
        if match and (path / TRAINER_STATE).is_file() and (path / TRAINING_STATE).is_file():
            found.append(Checkpoint(int(match.group(1)), path))
    return sorted(found, key=lambda c: c.step)


def save_checkpoint(out_dir: Path, step: int, model: Any, optimizer: Any, scheduler: Any, history: History,
                    run_id: str) -> Checkpoint:
    """Write the checkpoint of `step` (replacing one of the same step) and return it."""
    import torch

    folder = out_dir / CHECKPOINTS
    folder.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(dir=folder, prefix=f".{checkpoint_name(step)}.", suffix=".tmp"))
    try:
        save_adapter(model, temporary / ADAPTER)
        state = {"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "rng_cpu": torch.get_rng_state(),
                 "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
        torch.save(state, temporary / TRAINING_STATE)
        write_json_atomic(temporary / TRAINER_STATE, {"step": step, "run_id": run_id, "history": history.to_dict()})
        final = folder / checkpoint_name(step)
        if final.exists():
            shutil.rmtree(final)
        temporary.rename(final)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return Checkpoint(step, final)


def read_trainer_state(checkpoint: Checkpoint) -> tuple[str, History]:
    """(run id, history) stored in a checkpoint."""
    try:
        data = json.loads((checkpoint.path / TRAINER_STATE).read_text(encoding="utf-8"))
        return str(data["run_id"]), History.from_dict(data["history"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"checkpoint {checkpoint.path}: unreadable {TRAINER_STATE}: {error}") from None


def update_history(checkpoint: Checkpoint, run_id: str, history: History) -> None:
    """Replace the history stored in `checkpoint` (after its evaluation finished)."""
    write_json_atomic(checkpoint.path / TRAINER_STATE, {"step": checkpoint.step, "run_id": run_id,
                                                   "history": history.to_dict()})


def restore_training_state(checkpoint: Checkpoint, model: Any, optimizer: Any, scheduler: Any) -> None:
    """Load the adapter weights, optimizer, scheduler and RNG states of `checkpoint` into the objects of a
    freshly built run (same model, same parameter order)."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = checkpoint.adapter_dir / "adapter_model.safetensors"
    try:
        state = torch.load(checkpoint.path / TRAINING_STATE, map_location="cpu", weights_only=True)
        adapter = load_file(str(weights), device=str(next(model.parameters()).device))
    except (OSError, RuntimeError) as error:
        raise ConfigError(f"checkpoint {checkpoint.path} cannot be read ({error}); delete it to resume from "
                          "the one before") from None
    result = set_peft_model_state_dict(model, adapter)
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    if unexpected:
        raise ConfigError(f"checkpoint {checkpoint.path}: adapter weights that this model does not have: "
                          f"{', '.join(unexpected[:3])}")
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng_cpu"])
    if state["rng_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng_cuda"])


def prune_checkpoints(out_dir: Path, *, keep_recent: int, keep_steps: Iterable[int]) -> list[Path]:
    """Delete checkpoints other than the `keep_recent` newest and those of `keep_steps` (the best);
    returns the deleted folders."""
    checkpoints = list_checkpoints(out_dir)
    keep = {c.step for c in checkpoints[-keep_recent:]} | set(keep_steps)
    deleted = []
    for checkpoint in checkpoints:
        if checkpoint.step not in keep:
            shutil.rmtree(checkpoint.path)
            deleted.append(checkpoint.path)
    return deleted

