"""Benchmark: hf candidate generation throughput, batch size 1 vs 16, on the same rows and model.

The model is the tiny 2-layer Llama of tests/tiny_models.py, built into a temporary directory (nothing
downloaded), so the numbers measure the candidate's own overhead and what batching saves per generated
token, not a real model's speed. 64 rows, greedy, a fixed `max_new_tokens`; generated tokens are counted
by the candidate (each answer up to its stop token). A warm-up pass loads the model first, so loading is
not timed. Claim checked (exit 1 if not met): batch 16 generates at least 2x the tokens/s of batch 1.

Run from the repository root: python bench/hf.py [--rows 64] [--max-new-tokens 32] [--threads 1]
(one torch thread by default: the tiny model's matrices gain nothing from more, and on a shared machine
extra threads only add noise).
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

from harness.candidates.hf import HFCandidate  # noqa: E402
from harness.data import Sample  # noqa: E402

WORDS = ("the meeting moved to friday so please update the calendar and tell the team about the new room "
         "dear customer your order has shipped and will arrive soon thank you for shopping with us").split()


def make_rows(n: int) -> list[Sample]:
    """Rows of varied length (as real suites are: batching then pays for some padding)."""
    rows = []
    for i in range(n):
        original = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(8 + (i * 7) % 40))
        rows.append(Sample(str(i), original, original.upper()[: 20 + (i * 13) % 120], "Shout it."))
    return rows


def throughput(candidate: HFCandidate, rows: list[Sample]) -> tuple[float, int, float]:
    """(tokens per second, tokens, seconds) of one full pass over `rows`."""
    before = candidate.generated_tokens
    started = time.perf_counter()
    predictions = candidate.predict(rows)
    seconds = time.perf_counter() - started
    assert len(predictions) == len(rows)
    tokens = candidate.generated_tokens - before
    return tokens / seconds, tokens, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    rows = make_rows(args.rows)
    with tempfile.TemporaryDirectory() as folder:
        model_dir = build_tiny_llama(Path(folder) / "tiny-llama")
        results = {}
        for batch_size in (1, 16):
            candidate = HFCandidate(f"tiny-b{batch_size}", model_dir, batch_size=batch_size,
                                    max_new_tokens=args.max_new_tokens, postprocess="raw")
            candidate.predict(rows[:2])  # warm-up: load the model, first kernels
            results[batch_size] = throughput(candidate, rows)
            rate, tokens, seconds = results[batch_size]
            print(f"batch_size={batch_size:>2}: {tokens} tokens in {seconds:.2f} s = {rate:.0f} tokens/s "
                  f"(device {candidate.resolved_device()}, {args.threads} thread(s))")
    ratio = results[16][0] / results[1][0]
    print(f"tokens_per_s_batch16_vs_1: {ratio:.1f}")
    return 0 if ratio >= 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())
