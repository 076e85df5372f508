"""Benchmark: LoRA fine-tuning throughput (training tokens/s), the share of a run spent in evaluation,
and, on a GPU, where the weights live and in which dtype the loop computes.

The model is the tiny 2-layer Llama of tests/tiny_models.py, built into a temporary directory (nothing
downloaded), trained on the shipped `leaked` fixture (64 rows, the default prompt of harness.prompting)
and scored every `--eval-steps` steps on the first `--eval-rows` rows of `public` with the packaged
MiniLM embedder. The numbers measure the loop's own cost around a model, not a real model's speed.

Reference, measured in the same run: a bare peft loop (forward, backward, AdamW step; no batch plan,
history, loss bookkeeping or progress) over the same micro-batches of the same model. Claim checked
(exit 1 if not met): `train_lora`'s training tokens/s is at least 0.7 of that reference's.

`--device cuda` (or auto on a GPU machine) additionally loads the model as the loop does and prints the
device and dtype of the base weights, the LoRA weights and the logits under the loop's autocast: the
bfloat16 confirmation run docs/train.md asks for.

Run from the repository root: python bench/train.py [--steps 30] [--eval-steps 10] [--eval-rows 32]
[--device auto|cpu|cuda] [--threads 1]. The last line is `train_tokens_per_s: X`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tiny_models import build_tiny_llama  # noqa: E402

from harness.data import Suite, load_suite, load_suite_specs  # noqa: E402
from harness.embedders import make_minilm  # noqa: E402
from harness.train import TrainConfig, train_lora  # noqa: E402
from harness.train.data import BatchPlan, collate, encode_examples  # noqa: E402
from harness.train.loss import summed_token_loss  # noqa: E402
from harness.train.model import autocast, load_for_training, load_tokenizer, preflight  # noqa: E402


def bare_loop_tokens_per_s(config: TrainConfig, model_dir: Path, train: Suite, device: str, dtype: str) -> float:
    """Tokens/s of a plain peft training loop over the micro-batches `train_lora` uses."""
    import torch

    tokenizer = load_tokenizer(model_dir)
    examples, _ = encode_examples(tokenizer, train.samples, prompt_options=config.prompt_options)
    plan = BatchPlan(len(examples), config.batch_size, config.gradient_accumulation, config.seed)
    batches = [collate([examples[i] for i in rows], tokenizer.pad_token_id, device)
               for step in range(1, config.max_steps + 1) for rows in plan.micro_batches(step)]
    model = load_for_training(config, model_dir, device, dtype)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate)
    model.train()
    _sync(device)
    started, tokens = time.perf_counter(), 0
    for batch in batches:
        with autocast(device, dtype):
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss, count = summed_token_loss(logits, batch["labels"])
        (loss / count).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += int(batch["attention_mask"].sum())
    _sync(device)
    return tokens / (time.perf_counter() - started)


def placement_report(config: TrainConfig, model_dir: Path, train: Suite, device: str, dtype: str) -> str:
    """Where the loop's weights are and what dtype its forward pass produces."""
    import torch

    tokenizer = load_tokenizer(model_dir)
    model = load_for_training(config, model_dir, device, dtype)
    base = {(str(p.device), str(p.dtype).removeprefix("torch.")) for n, p in model.named_parameters() if "lora_" not in n}
    lora = {(str(p.device), str(p.dtype).removeprefix("torch.")) for n, p in model.named_parameters() if "lora_" in n}
    examples, _ = encode_examples(tokenizer, train.samples[:2], prompt_options=config.prompt_options)
    batch = collate(examples, tokenizer.pad_token_id, device)
    with torch.no_grad(), autocast(device, dtype):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu"
    return (f"placement: base weights {sorted(base)}, LoRA weights {sorted(lora)}, logits under the loop's "
            f"autocast {logits.device} {str(logits.dtype).removeprefix('torch.')} ({name})")


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--eval-steps", type=int, default=10)
    parser.add_argument("--eval-rows", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    specs = load_suite_specs(ROOT / "suites.toml")
    train = load_suite(specs["leaked"])
    public = load_suite(specs["public"])
    held = Suite("public-head", public.samples[:args.eval_rows], source=f"{public.source} (first {args.eval_rows} rows)")
    embedder = make_minilm()
    embedder.load()
    with tempfile.TemporaryDirectory() as folder:
        model_dir = build_tiny_llama(Path(folder) / "tiny-llama")
        config = TrainConfig(base=str(model_dir), max_steps=args.steps, eval_steps=args.eval_steps,
                             batch_size=args.batch_size, gradient_accumulation=1, learning_rate=1e-3,
                             eval_max_new_tokens=16, device=args.device)
        device, dtype = preflight(config)
        print(f"device {device}, dtype {dtype}, {args.threads} CPU thread(s), torch {torch.__version__}")
        if device.startswith("cuda"):
            print(placement_report(config, model_dir, train, device, dtype))
        reference = bare_loop_tokens_per_s(config, model_dir, train, device, dtype)
        started = time.perf_counter()
        result = train_lora(config, train, held, embedder, Path(folder) / "run")
        wall = time.perf_counter() - started
    history = result.history
    rate = result.train_tokens_per_second
    print(f"train_lora: {args.steps} steps x {args.batch_size} rows, {history.train_tokens} tokens in "
          f"{history.train_seconds:.2f} s of training; {len(history.evals)} evaluations of {len(held)} rows "
          f"({history.eval_seconds:.2f} s); checkpoints {history.save_seconds:.2f} s; wall {wall:.2f} s "
          f"(incl. model load)")
    print(f"bare peft loop: {reference:.0f} tokens/s; train_lora: {rate:.0f} tokens/s; "
          f"ratio {rate / reference:.2f}")
    print(f"eval_share: {result.eval_share:.2f}")
    print(f"train_tokens_per_s: {rate:.0f}")
    return 0 if rate >= 0.7 * reference else 1


if __name__ == "__main__":
    sys.exit(main())
