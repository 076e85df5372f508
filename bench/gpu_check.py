"""The GPU check of `prh train` and the hf candidate (run by bench/gpu_check.sh; needs one CUDA GPU).

Everything it uses is built here, in seconds: the tiny 2-layer Llama and LoRA settings of
tests/tiny_models.py and the tiny sentence model of tests/conftest.py (as the embedder, `path:DIR`), so it
needs neither a download nor the packaged MiniLM. Each check prints one line, PASS / FAIL / SKIP and what
it saw; the exit status is 1 when any check failed.

1. placement: the loop's device and dtype on a GPU (`preflight`, `load_for_training`): base weights
   cuda:0 bfloat16, LoRA weights cuda:0 float32;
2. autocast: under accelerate's bf16 mixed precision (as the loop prepares the model) a projection
   computes in bfloat16 while the loss stays float32;
3. LoRA step: `train_lora` on the GPU, 8 steps scored twice: the loss falls, the selected adapter loads
   through the hf candidate on the GPU and answers as scored during training;
4. 4-bit: the hf candidate with `load_in_4bit = true` (bitsandbytes NF4) loads the base with the adapter
   and answers, and a QLoRA step runs (SKIP when bitsandbytes is not installed);
5. accelerate launch: `accelerate launch --num_processes 1 --mixed_precision bf16 -m harness.cli train ...`
   on the GPU exits 0 and its card says cuda:0, bfloat16.

Run from the repository root: python bench/gpu_check.py [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tiny_models import (  # noqa: E402
    HELD_OUT_ROWS,
    MEMORIZE_ROWS,
    TINY_LORA_TARGETS,
    TINY_PROMPT,
    build_tiny_llama,
    tiny_train_config,
    write_rows_jsonl,
)

from harness.data import Suite  # noqa: E402

RESULTS: list[tuple[str, str, str]] = []


def check(name: str):
    """Decorator: run the check, record PASS / FAIL (with the exception) / SKIP (`Skip` raised)."""
    def run(function):
        started = time.perf_counter()
        try:
            detail = function() or ""
            outcome = "PASS"
        except Skip as skip:
            outcome, detail = "SKIP", str(skip)
        except Exception as error:  # a check that breaks is a failed check, and the others still run
            outcome, detail = "FAIL", f"{type(error).__name__}: {error}"
            traceback.print_exc()
        line = f"{outcome} {name} ({time.perf_counter() - started:.1f} s): {detail}"
        print(line, flush=True)
        RESULTS.append((outcome, name, detail))
        return function
    return run


class Skip(Exception):
    pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=None, help="folder for the models and runs (default: a temporary one)")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("FAIL no CUDA device: this check needs a GPU")
        return 1
    print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)
    work = Path(args.work or tempfile.mkdtemp(prefix="prh-gpu-check-"))
    base = build_tiny_llama(work / "base")
    from conftest import build_tiny_sentence_model

    embedder_dir = build_tiny_sentence_model(work / "embedder")
    from harness.embedders import choose_embedder

    embedder = choose_embedder(f"path:{embedder_dir}").embedder
    train = Suite("mem", tuple(MEMORIZE_ROWS), source="mem.jsonl")
    held = Suite("held", tuple(HELD_OUT_ROWS), source="held.jsonl")
    state: dict = {}

    @check("placement")
    def placement():
        from harness.train.model import load_for_training, preflight

        config = tiny_train_config(base, device="auto")
        device, dtype = preflight(config)
        assert (device, dtype) == ("cuda:0", "bfloat16"), (device, dtype)
        model = load_for_training(config, base, device, dtype)
        frozen = {(str(p.device), str(p.dtype)) for n, p in model.named_parameters() if "lora_" not in n}
        lora = {(str(p.device), str(p.dtype)) for n, p in model.named_parameters() if "lora_" in n}
        assert frozen == {("cuda:0", "torch.bfloat16")}, frozen
        assert lora == {("cuda:0", "torch.float32")}, lora
        return f"base {frozen}, LoRA {lora}"

    @check("bf16 autocast")
    def autocast():
        from harness.train.data import collate, encode_examples
        from harness.train.distributed import start_processes
        from harness.train.loss import batch_token_loss
        from harness.train.model import load_for_training, load_tokenizer

        config = tiny_train_config(base)
        processes = start_processes("auto", "cuda:0", "bfloat16", gradient_accumulation=1)
        try:
            model = load_for_training(config, base, "cuda:0", "bfloat16")
            wrapped = processes.accelerator.prepare(model)
            seen = []
            projection = next(m for n, m in model.named_modules() if n.endswith("q_proj.base_layer"))
            projection.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
            tokenizer = load_tokenizer(base)
            examples, _ = encode_examples(tokenizer, MEMORIZE_ROWS, prompt_options=config.prompt_options)
            loss, _ = batch_token_loss(wrapped, collate(examples, tokenizer.pad_token_id, "cuda:0"))
            assert processes.accelerator.mixed_precision == "bf16"
            assert seen and set(seen) == {torch.bfloat16}, seen
            assert loss.dtype == torch.float32, loss.dtype
            return f"q_proj output {seen[0]}, loss {loss.dtype}, {processes.distributed_type}"
        finally:
            processes.close()

    @check("LoRA step on the GPU")
    def lora_step():
        from harness.candidates import CandidateContext
        from harness.candidates.hf import from_config
        from harness.tomlfile import tomllib
        from harness.train import train_lora

        result = train_lora(tiny_train_config(base, max_steps=8, eval_steps=4, device="cuda"), train, held,
                            embedder, work / "run-gpu")
        losses = [s.loss for s in result.history.steps]
        assert result.device == "cuda:0" and result.dtype == "bfloat16", (result.device, result.dtype)
        assert losses[-1] < losses[0], losses
        entry = tomllib.loads(result.entry_path.read_text())["candidates"][result.name]
        candidate = from_config(result.name, entry, CandidateContext(base_dir=result.out_dir))
        answers = candidate.predict(list(held.samples))
        recorded = [json.loads(line)["prediction"] for line in
                    (result.out_dir / "evals" / f"{result.best.checkpoint}.jsonl").read_text().splitlines()]
        state["adapter"] = result.adapter_dir
        same = sum(a == b for a, b in zip(answers, recorded))
        return (f"loss {losses[0]:.3f} -> {losses[-1]:.3f}, {result.train_tokens_per_second:.0f} tokens/s, "
                f"candidate answers as scored in training on {same}/{len(answers)} rows (bf16: may differ)")

    @check("4-bit hf candidate and QLoRA step (bitsandbytes)")
    def four_bit():
        import importlib.util

        if importlib.util.find_spec("bitsandbytes") is None:
            raise Skip("bitsandbytes is not installed (pip install -e '.[quant]', or carry its wheel)")
        from harness.candidates.hf import HFCandidate
        from harness.train import train_lora

        adapter = state.get("adapter")
        candidate = HFCandidate("tiny-4bit", base, adapter=adapter, load_in_4bit=True, max_new_tokens=12,
                                system=TINY_PROMPT["system"], user_template=TINY_PROMPT["user_template"])
        candidate.preflight()
        answers = candidate.predict(list(held.samples))
        model, _ = candidate.load()
        kinds = {type(m).__name__ for m in model.modules()}
        assert "Linear4bit" in kinds, sorted(kinds)
        result = train_lora(tiny_train_config(base, max_steps=2, eval_steps=2, load_in_4bit=True), train, held,
                            embedder, work / "run-qlora")
        return f"answers {answers!r}; QLoRA losses {[round(s.loss, 3) for s in result.history.steps]}"

    @check("accelerate launch, one GPU")
    def launch():
        rows = write_rows_jsonl(work / "mem.jsonl", MEMORIZE_ROWS)
        held_file = write_rows_jsonl(work / "held.jsonl", HELD_OUT_ROWS)
        out = work / "run-launch"
        command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
                   "--mixed_precision", "bf16", "--dynamo_backend", "no", "-m", "harness.cli", "train",
                   "--base", str(base), "--train", str(rows), "--eval", str(held_file), "--out", str(out),
                   "--embedder", f"path:{embedder_dir}", "--system", TINY_PROMPT["system"],
                   "--user", TINY_PROMPT["user_template"], "--target-modules", ",".join(TINY_LORA_TARGETS),
                   "--lora-r", "8", "--lora-dropout", "0", "--learning-rate", "5e-3", "--lr-schedule", "constant",
                   "--batch-size", "3", "--gradient-accumulation", "1", "--max-steps", "4", "--eval-steps", "4",
                   "--eval-max-new-tokens", "12"]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               "PRH_STORE": str(work / "store.sqlite")}
        done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        card = (out / "training_card.md").read_text()
        assert "cuda:0" in card and "bfloat16" in card
        assert done.stdout.count("[candidates.") == 2  # the hf entry and the vLLM one, printed once
        return "exit 0, card: cuda:0 bfloat16"

    failed = [name for outcome, name, _ in RESULTS if outcome == "FAIL"]
    print(f"gpu_check: {sum(o == 'PASS' for o, _, _ in RESULTS)} passed, {len(failed)} failed, "
          f"{sum(o == 'SKIP' for o, _, _ in RESULTS)} skipped" + (f" ({', '.join(failed)})" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
