"""One training run over one or many processes, through accelerate.

`train_lora` runs the same code as one process (`prh train ...`) and as N processes started by torchrun
or `accelerate launch` (`torchrun --nproc_per_node 2 -m harness.cli train ...`, `prh train --processes 2`).
accelerate decides each process's device (cuda:LOCAL_RANK, or the CPU with gloo), wraps the model in DDP,
applies bfloat16 autocast (`mixed_precision="bf16"`) and skips the gradient all-reduce on all but the last
micro-batch of an optimizer step (`accumulate`). What stays the loop's own, and why:

- **The batch means the same with 1 or N processes.** `--batch-size` is the rows of one micro-batch over
  all processes, and an optimizer step is `--gradient-accumulation` micro-batches, whatever N is:
  `BatchPlan` picks the rows exactly as in one process and each process takes every N-th row of each
  micro-batch (`share`). The steps, the epoch boundaries and the learning-rate schedule are therefore those
  of the single-process run; only the floating-point order of the sums differs.
- **The loss is still the mean over the step's labelled tokens.** Each process backpropagates
  (its token-loss sum) × N × A / (the step's labelled tokens over all processes, known to every process
  from the plan); accelerate divides by A and DDP averages over N, so the gradient is the single process's.
- **Only the main process writes files**, scores checkpoints, and logs and draws progress; the others wait
  at a barrier. A process whose share of a micro-batch is empty (fewer rows than processes) still runs a
  forward pass, on one row with weight 0, so that every process takes part in every all-reduce.
- **Dropout** draws from a generator seeded by (seed, step, process) at every step, so a run killed and
  resumed on any process continues with the numbers it would have drawn.

Sharded strategies are refused: FSDP (and DeepSpeed ZeRO-3) split the base model's weights over the
processes, while the loop's evaluation generates answers on the main process with the whole model; every
DeepSpeed stage shards the optimizer state, while a checkpoint holds the main process's alone (docs/train.md,
"Past one process", gives the configurations that work and these limits).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from harness.errors import ConfigError
from harness.hashing import json_fingerprint

#: How long a process waits at a barrier (the others wait there while the main process scores a
#: checkpoint, which on a large eval suite and model can take long; torch's default is 30 minutes).
BARRIER_TIMEOUT = timedelta(hours=6)


def launched_processes() -> int:
    """How many processes the launcher started (torchrun and accelerate launch set WORLD_SIZE); 1 otherwise."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def share_rows(rows: Sequence[int], index: int, count: int) -> tuple[list[int], float]:
    """(process `index`'s rows of a micro-batch split over `count` processes, their loss weight): every
    `count`-th row from `index`, weight 1; or, when that is none, the micro-batch's first row with weight
    0, so that the process still takes part in the gradient all-reduce (see the module doc)."""
    mine = list(rows[index::count])
    return (mine, 1.0) if mine else (list(rows[:1]), 0.0)


def is_main_process() -> bool:
    """Whether this is the process that writes files and prints (RANK 0 under a launcher, or alone)."""
    return os.environ.get("RANK", "0") == "0"


def torchrun_command(processes: int, argv: Sequence[str]) -> list[str]:
    """The torchrun command that runs `python -m harness.cli ARGV` in `processes` processes on this machine
    (`--standalone`: a free local port for the rendezvous, so two runs never collide)."""
    import sys

    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
            "-m", "harness.cli", *argv]


@dataclass
class Processes:
    """The processes of one run, as the loop needs them (one `accelerate.Accelerator` underneath)."""

    accelerator: Any
    #: this process's device, with its index on CUDA ("cuda:1", "cpu")
    device: str

    @property
    def count(self) -> int:
        return int(self.accelerator.num_processes)

    @property
    def index(self) -> int:
        return int(self.accelerator.process_index)

    @property
    def is_main(self) -> bool:
        return bool(self.accelerator.is_main_process)

    @property
    def distributed_type(self) -> str:
        return str(self.accelerator.distributed_type).split(".")[-1]

    def share(self, rows: Sequence[int]) -> tuple[list[int], float]:
        """This process's part of a micro-batch (`share_rows`)."""
        return share_rows(rows, self.index, self.count)

    def sum(self, *values: float) -> list[float]:
        """Each value summed over all processes (float64; one all-reduce). Identity with one process."""
        if self.count == 1:
            return [float(v) for v in values]
        import torch

        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        return [float(v) for v in self.accelerator.reduce(tensor, reduction="sum")]

    def wait(self) -> None:
        """Barrier: every process arrives before any goes on."""
        self.accelerator.wait_for_everyone()

    def from_main(self, value: Any) -> Any:
        """The main process's `value` on every process (pickled through one broadcast): the others return
        the run's result as the main process wrote it."""
        if self.count == 1:
            return value
        from accelerate.utils import broadcast_object_list

        return broadcast_object_list([value], from_process=0)[0]

    def seed_step(self, seed: int, step: int) -> None:
        """Seed torch's generators (dropout) for `step` on this process, from (seed, step, process) alone."""
        import torch

        torch.manual_seed(int(json_fingerprint(["dropout", seed, step, self.index])[:15], 16))

    def close(self) -> None:
        """Drop accelerate's references to the model and optimizer (a second run in the same process,
        as in the tests, must not keep the first one's in memory)."""
        self.accelerator.free_memory()


def start_processes(requested: str, device: str, dtype: str, *, gradient_accumulation: int) -> Processes:
    """The Accelerator of this run: `requested` is `--device` as given, `device` as `preflight` resolved
    it for one process.

    Under a launcher each process gets the device accelerate assigns (cuda:LOCAL_RANK, or the CPU when
    `device` is "cpu" or no GPU exists); naming one GPU (`--device cuda:1`) is then refused, because each
    process needs its own. bfloat16 on CUDA becomes accelerate's bf16 mixed precision.
    """
    from accelerate import Accelerator, DistributedType
    from accelerate.utils import InitProcessGroupKwargs

    processes = launched_processes()
    on_cpu = device == "cpu"
    if processes > 1 and requested.startswith("cuda:"):
        raise ConfigError(f"training: --device {requested} names one GPU, but {processes} processes were launched; "
                          "each takes the GPU of its LOCAL_RANK (leave --device at auto, or use cuda)")
    if not on_cpu and processes == 1 and device.startswith("cuda:"):
        import torch

        torch.cuda.set_device(int(device.split(":")[1]))  # accelerate's "cuda" is the current device
    mixed_precision = "bf16" if dtype == "bfloat16" and not on_cpu else "no"
    accelerator = Accelerator(cpu=on_cpu, mixed_precision=mixed_precision,
                              gradient_accumulation_steps=gradient_accumulation, device_placement=False,
                              kwargs_handlers=[InitProcessGroupKwargs(timeout=BARRIER_TIMEOUT)])
    kind = accelerator.distributed_type
    if kind in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        why = ("shards the base model over the processes, but each evaluation generates answers on the main "
               "process with the whole model" if kind == DistributedType.FSDP else
               "shards the optimizer state over the processes, but a checkpoint holds the main process's "
               "optimizer state only, so a resume could not restore it")
        raise ConfigError(f"training: {str(kind).split('.')[-1]} {why}; use DDP (a multi-GPU accelerate config, "
                          "or torchrun), with --load-in-4bit when the model does not fit one GPU "
                          "(docs/train.md, 'Past one process')")
    if accelerator.num_processes > 1:
        assigned = accelerator.device
        if assigned.type == "cuda" and assigned.index is None:
            import torch

            assigned = torch.device("cuda", torch.cuda.current_device())
        device = "cpu" if assigned.type == "cpu" else str(assigned)  # accelerate says "cpu:0" under gloo
    return Processes(accelerator, device)
