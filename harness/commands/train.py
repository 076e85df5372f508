"""`prh train`: LoRA fine-tuning from the command line (a thin shell over `harness.train.train_lora`).

The candidates.toml entry goes to stdout and everything else (progress, one line per evaluation, the
summary) to stderr, so `prh train ... >> candidates.toml` registers the adapter. Ctrl-C or SIGTERM
saves a checkpoint and exits 130; the same command resumes. Importing this module imports no torch.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from harness.options import add_workspace_paths

EXIT_INTERRUPTED = 130


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `prh train` on the `prh` command's subparsers."""
    from harness.train.config import SCHEDULES, TRAIN_DTYPES, TrainConfig

    d = TrainConfig(base="-")  # the defaults, shown in --help
    parser = subparsers.add_parser(
        "train", help="LoRA fine-tuning, checkpoints selected by SCS on a held-out suite (docs/train.md)",
        description="Fine-tune a causal LM with LoRA to recover rewrite prompts. The loss covers the answer "
                    "tokens only (unless --full-sequence-loss); every --eval-steps steps a checkpoint is scored "
                    "on the --eval suite with SCS and the best one is kept. Writes the adapter, a training card "
                    "and a candidates.toml entry (printed on stdout) into --out. Rerun the same command to resume.")
    data = parser.add_argument_group("data and model")
    data.add_argument("--base", required=True, help="base model: a local directory, a hub id in the HF cache, a "
                      "GGUF (gguf:PATH, gguf-package:NAME; converted once) or the name of an hf candidate")
    data.add_argument("--train", required=True, help="training suite name, or a CSV/JSONL/parquet file with "
                      "original_text, rewritten_text, rewrite_prompt (id optional)")
    data.add_argument("--eval", required=True, help="held-out suite (name or file) the checkpoints are scored on; "
                      "must share no row with --train")
    data.add_argument("--out", required=True, help="output folder (checkpoints, adapter, card); resumed if it holds "
                      "a run with the same settings")
    add_workspace_paths(data.add_argument, only=("--suites-file",))
    data.add_argument("--embedder", default="auto", help="embedder of the eval scoring: auto, st5, minilm, path:DIR "
                      "(default: %(default)s, i.e. st5 when on this machine, else the offline minilm)")
    lora = parser.add_argument_group("LoRA")
    lora.add_argument("--lora-r", type=int, default=d.lora_r, help="rank (default: %(default)s)")
    lora.add_argument("--lora-alpha", type=float, default=None, help="scaling numerator (default: 2 x rank)")
    lora.add_argument("--lora-dropout", type=float, default=d.lora_dropout, help="(default: %(default)s)")
    lora.add_argument("--target-modules", default=",".join(d.target_modules),
                      help="comma-separated module names, or all-linear (default: %(default)s)")
    lora.add_argument("--full-sequence-loss", action="store_true",
                      help="train on prompt and answer tokens (default: the answer tokens only)")
    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--epochs", type=float, default=d.epochs, help="passes over the data (default: %(default)s)")
    optim.add_argument("--max-steps", type=int, default=None, help="optimizer steps; overrides --epochs")
    optim.add_argument("--learning-rate", "--lr", type=float, default=d.learning_rate, help="(default: %(default)s)")
    optim.add_argument("--lr-schedule", choices=SCHEDULES, default=d.lr_schedule, help="(default: %(default)s)")
    optim.add_argument("--warmup-ratio", type=float, default=d.warmup_ratio, help="(default: %(default)s)")
    optim.add_argument("--weight-decay", type=float, default=d.weight_decay, help="(default: %(default)s)")
    optim.add_argument("--max-grad-norm", type=float, default=d.max_grad_norm, help="0 = no clipping (default: %(default)s)")
    optim.add_argument("--batch-size", type=int, default=d.batch_size, help="rows per forward pass (default: %(default)s)")
    optim.add_argument("--gradient-accumulation", type=int, default=d.gradient_accumulation,
                       help="forward passes per optimizer step (default: %(default)s)")
    optim.add_argument("--max-length", type=int, default=d.max_length,
                       help="longer rows (in tokens) are left out, never cut (default: %(default)s)")
    optim.add_argument("--seed", type=int, default=d.seed, help="(default: %(default)s)")
    prompt = parser.add_argument_group("prompt (must match the candidate's; written into its entry)")
    prompt.add_argument("--system", default=d.system, help="system message (default: harness.prompting's)")
    prompt.add_argument("--user", default=d.user_template, help="user template with {original_text} and/or "
                        "{rewritten_text} (default: harness.prompting's)")
    prompt.add_argument("--max-text-chars", type=int, default=d.max_text_chars, help="(default: %(default)s)")
    selection = parser.add_argument_group("evaluation and checkpoints")
    selection.add_argument("--eval-steps", type=int, default=d.eval_steps,
                           help="checkpoint and score every N optimizer steps, and at the end (default: %(default)s)")
    selection.add_argument("--eval-batch-size", type=int, default=d.eval_batch_size, help="(default: %(default)s)")
    selection.add_argument("--eval-max-new-tokens", type=int, default=d.eval_max_new_tokens,
                           help="answer length limit, also in the entry (default: %(default)s)")
    selection.add_argument("--keep-checkpoints", type=int, default=d.keep_checkpoints,
                           help="recent checkpoints kept besides the best (default: %(default)s)")
    hardware = parser.add_argument_group("hardware")
    hardware.add_argument("--device", default=d.device, help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    hardware.add_argument("--dtype", choices=TRAIN_DTYPES, default=d.dtype,
                          help="auto = bfloat16 on a GPU that has it, else float32 (default: %(default)s)")
    hardware.add_argument("--load-in-4bit", action="store_true", help="QLoRA: 4-bit NF4 base (CUDA + bitsandbytes)")
    hardware.add_argument("--gradient-checkpointing", action="store_true", help="less activation memory, more compute")
    hardware.add_argument("--processes", type=int, default=1,
                          help="train in N processes on this machine (torchrun; one per GPU, or N CPU processes with "
                               "gloo); the batch and the schedule mean the same as with one (default: %(default)s)")
    output = parser.add_argument_group("output")
    output.add_argument("--merge", action="store_true", help="also save the base with the adapter merged in")
    output.add_argument("--name", default="", help="candidate name in the entry (default: the --out folder's name)")
    output.add_argument("--vllm-url", default=d.vllm_base_url, help="API root of the vLLM server in the second "
                        "entry, NAME-vllm, which scores the adapter served by vLLM (default: %(default)s)")
    output.add_argument("--register", default=None, metavar="CANDIDATES_FILE",
                        help="append the entry to this candidates file (refused if the name exists)")
    parser.set_defaults(handler=cmd_train)


def config_from_args(args: argparse.Namespace):
    """The TrainConfig the arguments describe (ConfigError naming the field when a value is invalid)."""
    from harness.train.config import TrainConfig

    modules = tuple(m.strip() for m in args.target_modules.split(",") if m.strip())
    return TrainConfig(
        base=args.base, lora_r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
        target_modules=modules, full_sequence_loss=args.full_sequence_loss, epochs=args.epochs,
        max_steps=args.max_steps, learning_rate=args.learning_rate, lr_schedule=args.lr_schedule,
        warmup_ratio=args.warmup_ratio, weight_decay=args.weight_decay, max_grad_norm=args.max_grad_norm,
        batch_size=args.batch_size, gradient_accumulation=args.gradient_accumulation, max_length=args.max_length,
        seed=args.seed, system=args.system, user_template=args.user, max_text_chars=args.max_text_chars,
        eval_steps=args.eval_steps, eval_batch_size=args.eval_batch_size,
        eval_max_new_tokens=args.eval_max_new_tokens, keep_checkpoints=args.keep_checkpoints, dtype=args.dtype,
        device=args.device, load_in_4bit=args.load_in_4bit, gradient_checkpointing=args.gradient_checkpointing,
        merge=args.merge, name=args.name, vllm_base_url=args.vllm_url)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """A scheduler's SIGTERM (preemption, timeout) interrupts like Ctrl-C, so a checkpoint is saved."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def base_model(base: str, workspace, *, announce: bool = True) -> str:
    """`--base` as a model: the name of an hf candidate in the candidates file stands for its model (so
    `--base gemma-270m` trains on what that candidate runs); anything else is a model as given."""
    from harness.errors import ConfigError

    entry = workspace.registry.entries.get(base)
    if entry is None:
        if "/" not in base and ":" not in base and not Path(base).expanduser().exists():
            # a bare word is a typo of a candidate name far more often than a hub model without an org
            known = [name for name, e in workspace.registry.entries.items() if e.get("kind") == "hf"]
            raise ConfigError(f"--base {base!r} is no known candidate (hf candidates in "
                              f"{workspace.candidates_file}: {', '.join(known) or 'none'}), no local folder and "
                              "not a hub id (org/name); give one of those or gguf:PATH / gguf-package:NAME")
        return base
    if entry.get("kind") != "hf":
        raise ConfigError(f"--base {base}: candidate '{base}' is of kind {entry.get('kind')!r}; give an hf "
                          "candidate, a model directory, a hub id or a GGUF (gguf:PATH, gguf-package:NAME)")
    model = workspace.candidate(base).model
    if announce:
        print(f"--base {base}: the model of candidate '{base}': {model}", file=sys.stderr)
    return str(model)


def _launch(args: argparse.Namespace) -> int:
    """`prh train --processes N`: run this very command in N processes under torchrun and return its exit
    status (each process sees WORLD_SIZE and trains; the main one prints and registers)."""
    import subprocess

    from harness.train.distributed import torchrun_command

    command = torchrun_command(args.processes, getattr(args, "argv", None) or sys.argv[1:])
    print(f"launching {args.processes} processes: {' '.join(command[2:])}", file=sys.stderr)
    try:
        return subprocess.run(command, check=False).returncode
    except KeyboardInterrupt:  # torchrun got the Ctrl-C as well and stops its processes (which save first)
        print(f"interrupted; rerun the same command to resume from the last checkpoint in {args.out}",
              file=sys.stderr)
        return EXIT_INTERRUPTED


def cmd_train(args: argparse.Namespace) -> int:
    from rich.console import Console

    from harness.errors import ConfigError, print_warnings
    from harness.hf_models import hub_offline, locate_model
    from harness.progress import stage_progress
    from harness.train.data import check_disjoint
    from harness.train.distributed import is_main_process, launched_processes
    from harness.train.entry import append_entry
    from harness.train.loop import train_lora
    from harness.train.model import preflight
    from harness.workspace import Workspace

    main = is_main_process()  # under torchrun, only RANK 0 prints and registers
    launched = launched_processes()
    if args.processes < 1:
        raise ConfigError(f"--processes must be a positive integer, got {args.processes}")
    if launched > 1 and args.processes not in (1, launched):
        raise ConfigError(f"--processes {args.processes}, but the launcher started {launched} processes")
    workspace = Workspace.from_args(args)
    args.base = base_model(args.base, workspace, announce=main)
    config = config_from_args(args)
    train_suite = workspace.suite(args.train)
    eval_suite = workspace.suite(args.eval)
    check_disjoint(train_suite, eval_suite)  # before any model is loaded
    choice = workspace.embedder(args.embedder)
    if args.processes > 1 and launched == 1:
        # what the machine or the base can get wrong fails here, once, not in N processes (and a download
        # from the hub happens here, once)
        preflight(config)
        locate_model(config.base, where="training: --base", download=not hub_offline())
        return _launch(args)
    if main:
        print_warnings(choice.warnings)
    embedder = choice.embedder
    console = Console(stderr=True, highlight=False)  # sys.stderr looked up per write: rich progress redirects it
    if main:
        print(f"training {args.base} on '{train_suite.name}' ({len(train_suite)} rows), scoring on "
              f"'{eval_suite.name}' ({len(eval_suite)} rows) with {embedder.name} → {args.out}", file=sys.stderr)
    try:
        with _sigterm_as_interrupt(), (stage_progress() if main else contextlib.nullcontext(None)) as progress:
            result = train_lora(config, train_suite, eval_suite, embedder, args.out,
                                log=lambda message: console.print(message, markup=False), progress=progress)
    except KeyboardInterrupt:
        if main:
            print(f"interrupted; rerun the same command to resume from the last checkpoint in {args.out}",
                  file=sys.stderr)
        return EXIT_INTERRUPTED
    if not main:
        return 0
    best = result.best
    print(f"selected step {best.step} of {result.total_steps}: SCS {best.scs:.4f} [{best.ci_low:.4f}, "
          f"{best.ci_high:.4f}] on '{eval_suite.name}' ({embedder.name}); train {result.train_tokens_per_second:.0f} "
          f"tokens/s, {100 * result.eval_share:.0f}% of the time in evaluation ({result.device}, {result.dtype})",
          file=sys.stderr)
    print(f"adapter: {result.adapter_dir}\ncard: {result.card_path}\nentry: {result.entry_path}", file=sys.stderr)
    if result.merged_dir is not None:
        print(f"merged model: {result.merged_dir}", file=sys.stderr)
    print(f"or serve it with vLLM and score it as '{result.name}-vllm': {result.vllm_command}", file=sys.stderr)
    if args.register:
        append_entry(Path(args.register), result.name, result.entry)
        print(f"registered '{result.name}' in {args.register}: pytest suites/ --candidate={result.name}"
              + ("" if Path(args.register).name == "candidates.toml" else f" --candidates-file {args.register}"),
              file=sys.stderr)
    else:
        print(f"score it: add the entry below to candidates.toml (or use --register), then "
              f"pytest suites/ --candidate={result.name}", file=sys.stderr)
    sys.stdout.write(result.entry)
    return 0
