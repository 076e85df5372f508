"""`train_lora`: one LoRA fine-tuning run, from rows to a selected, loadable, documented adapter.

The loop is plain PyTorch (no Trainer) so that each thing the issue asks to compare is visible here:
which tokens carry the loss (`encode_examples`), how a step's loss is normalised (`batch_token_loss`),
when a checkpoint is scored and by what (`score_checkpoint`: SCS through the hf candidate), and which one
is kept (`History.best_by_scs`). Every `eval_steps` optimizer steps (and at the last step) the run writes a
checkpoint, scores it on the held-out suite, updates the training card and prunes old checkpoints.

One or many processes: the same loop runs as one process and under torchrun or `accelerate launch`
(harness.train.distributed: accelerate places the model, wraps it in DDP, applies mixed precision and
accumulates gradients; the batch plan, the loss normalisation and the schedule are those of one process).
Only the main process writes files, scores checkpoints and reports progress.

Interruption: Ctrl-C (KeyboardInterrupt) writes a checkpoint of the last completed step before
re-raising; a killed process loses at most the steps since the last checkpoint. Calling `train_lora`
again with the same output folder and settings resumes from the newest checkpoint: adapter weights,
optimizer moments, scheduler position and random state are restored, the data order is a function of
(seed, epoch), so the continued run is the run that was never interrupted. Different settings are
refused (`run.json` records them), and so is an evaluation interrupted half way: it is redone first.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.data import Suite
from harness.embedders import Embedder
from harness.errors import ConfigError
from harness.files import toml_table, write_json_atomic, write_text_atomic
from harness.gguf_models import GGUF_PREFIX, PACKAGE_PREFIX, is_gguf_name
from harness.hashing import json_fingerprint
from harness.hf_models import hub_offline, locate_model, model_fingerprint
from harness.prompting import PLAIN_CHAT_TEMPLATE, accepts_system_message, has_chat_template
from harness.store import Store
from harness.train import checkpoints as ckpt
from harness.train.card import CardFacts, SuiteFacts, write_card
from harness.train.config import TrainConfig
from harness.train.data import (
    BatchPlan,
    Example,
    check_disjoint,
    collate,
    encode_examples,
    examples_fingerprint,
    require_examples,
)
from harness.train.distributed import Processes, start_processes
from harness.train.entry import (
    CHAT_TEMPLATE_FILE,
    checked_entry_file,
    entry_values,
    path_for,
    vllm_command,
    vllm_entry_values,
)
from harness.train.history import EvalRecord, History, StepRecord
from harness.train.loss import batch_token_loss
from harness.train.model import load_for_training, load_tokenizer, merge_adapter, preflight, resolve_dtype
from harness.train.scoring import candidate_options, paired_delta, score_checkpoint, write_eval_rows

RUN_FILE = "run.json"
EVAL_CACHE = "eval-cache.sqlite"
EVALS = "evals"
ADAPTER = "adapter"
MERGED = "merged"
ENTRY_FILE = "candidate.toml"

Log = Callable[[str], None]
Progress = Callable[[str, int, int], None]


@dataclass
class TrainingResult:
    """What a finished run produced (all paths inside `out_dir`)."""

    name: str
    out_dir: Path
    adapter_dir: Path
    merged_dir: Path | None
    best: EvalRecord
    history: History
    total_steps: int
    resumed_from: int | None
    card_path: Path
    plot_path: Path | None
    #: the candidates.toml entry with absolute paths (as printed); `entry_path` holds one relative to out_dir
    entry: str
    entry_path: Path
    device: str
    dtype: str
    #: the `vllm serve` command that serves the adapter for the `NAME-vllm` entry
    vllm_command: str = ""

    @property
    def train_tokens_per_second(self) -> float:
        seconds = self.history.train_seconds
        return self.history.train_tokens / seconds if seconds > 0 else float("nan")

    @property
    def eval_share(self) -> float:
        """Share of the run's wall time spent evaluating (generation, embedding, scoring, eval loss)."""
        history = self.history
        total = history.train_seconds + history.eval_seconds + history.save_seconds
        return history.eval_seconds / total if total > 0 else float("nan")


def train_lora(
    config: TrainConfig,
    train_suite: Suite,
    eval_suite: Suite,
    embedder: Embedder,
    out_dir: str | Path,
    *,
    log: Log | None = None,
    progress: Progress | None = None,
    on_step: Callable[[StepRecord], None] | None = None,
) -> TrainingResult:
    """Fine-tune `config.base` with LoRA on `train_suite`, select the checkpoint with the best SCS on
    `eval_suite` (scored with `embedder`), and write adapter, training card and candidate entry into
    `out_dir`. Resumes from `out_dir`'s newest checkpoint when it holds a run with the same settings.

    `log(message)` receives one line per evaluation and notable event; `progress(stage, done, total)`
    drives a progress bar (`harness.progress.stage_progress`); `on_step(record)` is called after every
    optimizer step (raising KeyboardInterrupt there interrupts the run as Ctrl-C would).
    """
    check_disjoint(train_suite, eval_suite)
    device, dtype = preflight(config)
    processes = start_processes(config.device, device, dtype, gradient_accumulation=config.gradient_accumulation)
    try:
        return _train_lora(config, train_suite, eval_suite, embedder, Path(out_dir), processes,
                           log=log if processes.is_main else None, progress=progress if processes.is_main else None,
                           on_step=on_step)
    finally:
        processes.close()


def _train_lora(config: TrainConfig, train_suite: Suite, eval_suite: Suite, embedder: Embedder, out: Path,
                processes: Processes, *, log: Log | None, progress: Progress | None,
                on_step: Callable[[StepRecord], None] | None) -> TrainingResult:
    """`train_lora` once the processes are started (`log` and `progress` are None except on the main one)."""
    say = log or (lambda message: None)
    device, dtype = processes.device, resolve_dtype(config.dtype, processes.device)
    if processes.is_main:  # a download happens once, before the others look for the model
        model_dir = locate_model(config.base, where="training: --base", download=not hub_offline())
    processes.wait()
    if not processes.is_main:
        model_dir = locate_model(config.base, where="training: --base", download=False)
    tokenizer = load_tokenizer(model_dir)
    examples, too_long = encode_examples(tokenizer, train_suite.samples, prompt_options=config.prompt_options,
                                         full_sequence_loss=config.full_sequence_loss, max_length=config.max_length)
    require_examples(examples, too_long, train_suite, config.max_length)
    if too_long:
        message = (f"{len(too_long)} of {len(train_suite)} training rows are longer than max_length="
                   f"{config.max_length} tokens and are left out: {', '.join(too_long[:10])}"
                   f"{' …' if len(too_long) > 10 else ''}")
        warnings.warn(message, stacklevel=2)
        say(f"warning: {message}")
    # Eval loss is always on the answer tokens, so masked and full-sequence runs can be compared.
    eval_examples, _ = encode_examples(tokenizer, eval_suite.samples, prompt_options=config.prompt_options)
    plan = BatchPlan(len(examples), config.batch_size, config.gradient_accumulation, config.seed)
    total = plan.total_steps(epochs=config.epochs, max_steps=config.max_steps)
    base_fingerprint = model_fingerprint(model_dir)
    identity = {"settings": config.resume_identity(), "base_model": base_fingerprint,
                "training_data": examples_fingerprint(examples), "eval_suite": eval_suite.fingerprint,
                "embedder": embedder.fingerprint}
    run_id = json_fingerprint(identity)
    if processes.is_main:
        out.mkdir(parents=True, exist_ok=True)
        _claim_out_dir(out, config, identity, run_id)
    processes.wait()  # the others read run.json's run only once the main process has checked or written it

    facts = CardFacts(
        name=config.name or out.resolve().name, config=config, base_dir=model_dir, base_fingerprint=base_fingerprint,
        device=device, dtype=dtype,
        train=SuiteFacts(train_suite.name, train_suite.source, len(train_suite), train_suite.fingerprint),
        eval=SuiteFacts(eval_suite.name, eval_suite.source, len(eval_suite), eval_suite.fingerprint),
        rows_used=len(examples), rows_too_long=too_long, examples_fingerprint=identity["training_data"],
        label_tokens_per_epoch=sum(e.label_tokens for e in examples),
        tokens_per_epoch=sum(len(e.input_ids) for e in examples), embedder=embedder.name,
        embedder_fingerprint=embedder.fingerprint, comparable_with_kaggle=embedder.comparable_with_kaggle,
        total_steps=total, out_dir=out)
    run = _Run(config=config, out=out, run_id=run_id, model_dir=model_dir, device=device, dtype=dtype,
               tokenizer=tokenizer, examples=examples, eval_examples=eval_examples, plan=plan, total=total,
               train_names=[train_suite.name], eval_suite=eval_suite, embedder=embedder, facts=facts, say=say,
               progress=progress, on_step=on_step, processes=processes)
    history, resumed_from = run.train()  # the model is freed when this returns (merging loads the base again)
    result = None
    if processes.is_main:
        result = _finish(config, facts, history, out, model_dir, eval_suite, [train_suite.name], total,
                         resumed_from, device, dtype, say)
    return processes.from_main(result)


@dataclass
class _Run:
    """The training part of one run: everything `train_lora` prepared, and the loop over steps."""

    config: TrainConfig
    out: Path
    run_id: str
    model_dir: Path
    device: str
    dtype: str
    tokenizer: Any
    examples: list[Example]
    eval_examples: list[Example]
    plan: BatchPlan
    total: int
    train_names: list[str]
    eval_suite: Suite
    embedder: Embedder
    facts: CardFacts
    say: Log
    progress: Progress | None
    on_step: Callable[[StepRecord], None] | None
    processes: Processes

    def is_eval_step(self, step: int) -> bool:
        return step % self.config.eval_steps == 0 or step == self.total

    def train(self) -> tuple[History, int | None]:
        """Train (from the newest checkpoint, if any) to the last step; returns (history, step resumed from)."""
        import torch
        from transformers import get_scheduler

        config, out, total, processes = self.config, self.out, self.total, self.processes
        main = processes.is_main
        model = load_for_training(config, self.model_dir, self.device, self.dtype)
        parameters = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
        scheduler = get_scheduler(config.lr_schedule, optimizer,
                                  num_warmup_steps=math.ceil(config.warmup_ratio * total), num_training_steps=total)
        history, start, resumed_from = History(), 0, None
        existing = ckpt.list_checkpoints(out)
        if existing:
            last = existing[-1]
            stored_run, history = ckpt.read_trainer_state(last)
            if stored_run != self.run_id:
                raise ConfigError(f"checkpoint {last.path} belongs to another run than {out / RUN_FILE} describes; "
                                  "delete the folder's checkpoints or use another --out")
            ckpt.restore_training_state(last, model, optimizer, scheduler)
            start = resumed_from = last.step
            self.say(f"resuming from {last.path} (step {start} of {total})")
        # DDP around the model and accelerate's optimizer (steps only at the end of an accumulation); the
        # scheduler stays unprepared: accelerate would step it once per process, this loop steps it once per step
        wrapped, optimizer = processes.accelerator.prepare(model, optimizer)
        if processes.count > 1:
            self.say(f"{processes.count} processes ({processes.distributed_type}); the batch plan and the "
                     "schedule are those of one process")
        model.train()
        tokenizer = self.tokenizer
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        options = candidate_options(config, self.dtype, self.train_names)

        with (Store(out / EVAL_CACHE) if main else contextlib.nullcontext()) as eval_store:
            def save(step: int) -> ckpt.Checkpoint:
                started = time.perf_counter()
                checkpoint = ckpt.save_checkpoint(out, step, model, optimizer, scheduler, history, self.run_id)
                history.save_seconds += time.perf_counter() - started
                return checkpoint

            def evaluate(checkpoint: ckpt.Checkpoint) -> None:
                scored = score_checkpoint(
                    step=checkpoint.step, checkpoint_name=checkpoint.name, model=model, tokenizer=tokenizer,
                    model_dir=self.model_dir, adapter_dir=checkpoint.adapter_dir, device=self.device,
                    suite=self.eval_suite, eval_examples=self.eval_examples, embedder=self.embedder,
                    store=eval_store, options=options, train_loss=history.mean_loss_since_last_eval())
                write_eval_rows(out / EVALS / f"{checkpoint.name}.jsonl", scored.result)
                history.evals.append(scored.record)
                history.eval_seconds += scored.record.seconds
                ckpt.update_history(checkpoint, self.run_id, history)
                best = history.best_by_scs()
                ckpt.prune_checkpoints(out, keep_recent=config.keep_checkpoints,
                                       keep_steps=[best.step] if best else [])
                write_card(self.facts, history)
                record = scored.record
                self.say(f"step {record.step}/{total}: SCS {record.scs:.4f} [{record.ci_low:.4f}, "
                         f"{record.ci_high:.4f}], eval loss {record.eval_loss:.4f}, train loss {record.train_loss:.4f}"
                         + ("  (best so far)" if best is not None and best.step == record.step else ""))

            if existing and self.is_eval_step(start) and not history.evaluated(start):
                self.say(f"step {start}: its evaluation was interrupted; scoring it now")
                if main:
                    evaluate(existing[-1])
                processes.wait()
            completed, saved = start, start
            try:
                for step in range(start + 1, total + 1):
                    record = _train_step(wrapped, optimizer, scheduler, parameters, self.plan, self.examples, step,
                                         config, processes, pad_id)
                    # (an interrupt between the optimizer update above and these lines would save this
                    # step's weights under the previous step's number; the window is microseconds wide)
                    history.steps.append(record)
                    history.train_seconds += record.seconds
                    completed = step
                    if self.progress is not None:
                        self.progress("train", step, total)
                    if self.on_step is not None:
                        self.on_step(record)
                    if self.is_eval_step(step):
                        if main:
                            evaluate(save(step))
                        saved = step
                        processes.wait()  # the others train on once the checkpoint is written and scored
            except KeyboardInterrupt:
                if not main:  # the main process saves what there is to save
                    raise
                if completed > saved:
                    save(completed)
                    self.say(f"interrupted: saved a checkpoint at step {completed}; run the same command to resume")
                elif completed == 0:
                    self.say("interrupted before the first step finished: nothing to save")
                else:
                    self.say(f"interrupted: the checkpoint of step {completed} is on disk; run the same command "
                             "to resume")
                self.facts.interrupted = True
                write_card(self.facts, history)
                raise
        return history, resumed_from


def entry_model(base: str, model_dir: Path) -> str:
    """How the entry names the base: a directory or GGUF file by its absolute path (the entry may live
    elsewhere than the folder training ran in), a hub id or `gguf-package:` source as given."""
    if base.startswith(GGUF_PREFIX):
        return GGUF_PREFIX + str(Path(base[len(GGUF_PREFIX):]).expanduser().resolve())
    path = Path(base).expanduser()
    if path.is_dir() or (is_gguf_name(base) and path.is_file()):
        return str(path.resolve()) if path.is_file() else str(model_dir.resolve())
    return base


def _claim_out_dir(out: Path, config: TrainConfig, identity: dict[str, Any], run_id: str) -> None:
    """Record the run's identity in `out/run.json`, or check that the run already there is this one."""
    path = out / RUN_FILE
    if path.is_file():
        import json

        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            stored_identity, stored_id = stored["identity"], stored["run_id"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ConfigError(f"{path} is unreadable ({error}); use another --out") from None
        if stored_id != run_id:
            raise ConfigError(f"cannot resume the run in {out}: {_differences(stored_identity, identity)}. "
                              "Resume with the same settings, or use another --out for a new run.")
        return
    if ckpt.list_checkpoints(out):
        raise ConfigError(f"{out} holds checkpoints but no {RUN_FILE}; use another --out")
    write_json_atomic(path, {"run_id": run_id, "identity": identity, "config": config.to_dict()})


def _differences(stored: dict[str, Any], current: dict[str, Any]) -> str:
    """Human-readable list of what differs between two run identities."""
    names = {"base_model": "the base model's files", "training_data": "the training data (rows, prompt format, "
             "tokenizer or loss mode)", "eval_suite": "the eval suite's rows", "embedder": "the embedder"}
    problems = []
    for key, label in names.items():
        if stored.get(key) != current.get(key):
            problems.append(f"{label} differ (fingerprint {stored.get(key)} there, {current.get(key)} here)")
    old, new = stored.get("settings", {}), current.get("settings", {})
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            problems.append(f"{key} was {old.get(key)!r}, now {new.get(key)!r}")
    return "; ".join(problems) or "its settings differ"


def _train_step(model: Any, optimizer: Any, scheduler: Any, parameters: list[Any], plan: BatchPlan,
                examples: list[Example], step: int, config: TrainConfig, processes: Processes,
                pad_id: int) -> StepRecord:
    """One optimizer step over its `gradient_accumulation` micro-batches; the loss is the mean over all
    labelled tokens of the step (see harness.train.loss), over all processes.

    Every process knows the whole plan, so the step's labelled-token count needs no communication. Each
    backpropagates its share's token-loss sum × processes × accumulation / that count: accelerate's
    `backward` divides by the accumulation and DDP averages over the processes, which leaves the gradient
    of the single-process loss.
    """
    started = time.perf_counter()
    accelerator = processes.accelerator
    processes.seed_step(config.seed, step)
    micro_batches = plan.micro_batches(step)
    label_tokens = max(1, sum(examples[i].label_tokens for rows in micro_batches for i in rows))
    scale = processes.count * config.gradient_accumulation / label_tokens
    learning_rate = float(scheduler.get_last_lr()[0])
    loss_total, tokens = 0.0, 0
    for rows in micro_batches:
        mine, weight = processes.share(rows)
        batch = collate([examples[i] for i in mine], pad_id, processes.device)
        with accelerator.accumulate(model):
            loss_sum, _ = batch_token_loss(model, batch)
            accelerator.backward(loss_sum * (weight * scale))
        loss_total += weight * float(loss_sum.detach())
        tokens += int(weight) * int(batch["attention_mask"].sum())
    if config.max_grad_norm > 0:
        accelerator.clip_grad_norm_(parameters, config.max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    loss_total, tokens = processes.sum(loss_total, tokens)
    return StepRecord(step=step, loss=loss_total / label_tokens, learning_rate=learning_rate, tokens=int(tokens),
                      seconds=time.perf_counter() - started, epoch=plan.epoch_at(step))


def _finish(config: TrainConfig, facts: CardFacts, history: History, out: Path, model_dir: Path, eval_suite: Suite,
            train_names: list[str], total: int, resumed_from: int | None, device: str, dtype: str,
            say: Log) -> TrainingResult:
    """Copy the selected checkpoint's adapter to out/adapter, merge if asked, write entry and card."""
    best, last = history.best_by_scs(), history.last_eval()
    if best is None or last is None:  # the last step is always evaluated, so this is a bug
        raise RuntimeError(f"training in {out} finished without an evaluation")
    source = ckpt.Checkpoint(best.step, out / ckpt.CHECKPOINTS / best.checkpoint)
    adapter_dir = out / ADAPTER
    temporary = out / f".{ADAPTER}.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    shutil.copytree(source.adapter_dir, temporary)
    shutil.rmtree(adapter_dir, ignore_errors=True)
    temporary.rename(adapter_dir)
    facts.adapter_dir = adapter_dir
    if last.step != best.step:
        facts.best_vs_last = paired_delta(out / EVALS / f"{best.checkpoint}.jsonl",
                                          out / EVALS / f"{last.checkpoint}.jsonl", groups=eval_suite.groups)
    merged_dir = None
    if config.merge:
        say(f"merging the adapter into the base → {out / MERGED}")
        merged_dir = merge_adapter(model_dir, adapter_dir, out / MERGED, dtype=dtype, device=device)
        facts.merged_dir = merged_dir
    name = facts.name
    description = (f"LoRA r={config.lora_r} on {config.base}, trained on {facts.train.name} "
                   f"({'whole-sequence' if config.full_sequence_loss else 'answer-only'} loss); selected step "
                   f"{best.step}: SCS {best.scs:.3f} [{best.ci_low:.3f}, {best.ci_high:.3f}] on {facts.eval.name} "
                   f"({facts.embedder})")
    model = entry_model(config.base, model_dir)
    tokenizer = load_tokenizer(model_dir)
    chat_template = None
    if not has_chat_template(tokenizer):  # vLLM needs one: the plain format the hf candidate uses
        chat_template = write_text_atomic(out / CHAT_TEMPLATE_FILE, PLAIN_CHAT_TEMPLATE + "\n")
    served_model = str(model_dir.resolve()) if model.startswith((GGUF_PREFIX, PACKAGE_PREFIX)) else model
    serve = vllm_command(served_model, name, str(adapter_dir.resolve()), lora_r=config.lora_r,
                         chat_template=str(chat_template.resolve()) if chat_template else None)
    vllm_values = vllm_entry_values(config, lora_name=name, system_accepted=accepts_system_message(tokenizer),
                                    train_suites=train_names, base_url=config.vllm_base_url,
                                    description=f"{description}; served by vLLM: {serve}")

    def entries(relative_to: Path | None) -> str:
        text = toml_table("candidates", name, entry_values(config, model=model, adapter=path_for(adapter_dir, relative_to),
                                               train_suites=train_names, description=description))
        text += "\n" + toml_table("candidates", f"{name}-vllm", vllm_values)
        if merged_dir is not None:
            text += "\n" + toml_table("candidates", f"{name}-merged", entry_values(
                config, model=path_for(merged_dir, relative_to), adapter=None, train_suites=train_names,
                description=description + ", merged"))
        return text

    printed = checked_entry_file(entries(None), out)
    entry_path = write_text_atomic(out / ENTRY_FILE, checked_entry_file(entries(out), out))
    facts.entry = printed
    facts.interrupted = False
    card_path, plot_path = write_card(facts, history)
    return TrainingResult(name=name, out_dir=out, adapter_dir=adapter_dir, merged_dir=merged_dir, best=best,
                          history=history, total_steps=total, resumed_from=resumed_from, card_path=card_path,
                          plot_path=plot_path, entry=printed, entry_path=entry_path, device=device, dtype=dtype,
                          vllm_command=serve)
