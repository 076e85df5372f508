"""Benchmark: the retrieval candidate's query representations against the 0.63 mean prompt.

Real data (../shared/data/public_gemma_4483.csv, needed: exits 0 with a note when absent), split by
prompt so that every test prompt is unseen in the train rows, as on the Kaggle test set; scored with the
packaged MiniLM embedder (not the leaderboard's scale). Prints mean SCS with 95% CIs and the paired
difference of each variant against the mean prompt. Run: python bench/retrieval.py
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from harness.candidates import ConstantCandidate  # noqa: E402
from harness.candidates.retrieval import RetrievalCandidate  # noqa: E402
from harness.data import Suite, SuiteSpec, load_suite  # noqa: E402
from harness.embedders import choose_embedder  # noqa: E402
from harness.evaluation import BootstrapSettings, evaluate  # noqa: E402
from harness.stats import paired_bootstrap_delta  # noqa: E402
from harness.store import Store  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "public_gemma_4483.csv"
MEAN_PROMPT = "Please improve this text using the writing style with maintaining the original meaning but altering the tone."


def main() -> int:
    if not SHARED.is_file():
        print(f"skipped: {SHARED} not found (the benchmark needs the shared public data)")
        return 0
    spec = SuiteSpec("gemma", SHARED, columns={"id": "", "original_text": "Original", "rewrite_prompt": "Prompt",
                                               "rewritten_text": "Rewritten"})
    full = load_suite(spec)
    prompts = sorted(set(full.prompts))
    random.Random(0).shuffle(prompts)
    held_out = set(prompts[: len(prompts) // 4])
    train = Suite("gemma-train", tuple(s for s in full.samples if s.rewrite_prompt not in held_out))
    test = Suite("gemma-test", tuple(s for s in full.samples if s.rewrite_prompt in held_out)[:600])
    embedder = choose_embedder("minilm").embedder
    store = Store(ROOT / ".prh" / "bench-store.sqlite")
    bootstrap = BootstrapSettings()
    reference = evaluate(ConstantCandidate("mean-prompt", MEAN_PROMPT), test, embedder, store=store, bootstrap=bootstrap)
    print(f"train {len(train)} rows, test {len(test)} rows with unseen prompts; embedder {embedder.name}")
    print(f"{'candidate':<22}{'mean':>8}{'95% CI':>20}{'Δ vs mean prompt [95% CI]':>34}")
    print(f"{'mean-prompt (0.63 LB)':<22}{reference.mean:>8.4f}   [{reference.interval.low:.4f}, {reference.interval.high:.4f}]")
    for query in ("rewritten", "delta", "pair"):
        for k in (1, 3):
            candidate = RetrievalCandidate(f"retrieval {query} k={k}", train, embedder, k=k, query=query, store=store)
            result = evaluate(candidate, test, embedder, store=store, bootstrap=bootstrap)
            delta = paired_bootstrap_delta(result.scores, reference.scores)
            print(f"{candidate.name:<22}{result.mean:>8.4f}   [{result.interval.low:.4f}, {result.interval.high:.4f}]"
                  f"      {delta.estimate:+.4f} [{delta.low:+.4f}, {delta.high:+.4f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
