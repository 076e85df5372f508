"""Benchmark: scoring a 1,300-row suite cold (nothing cached) and warm (everything cached).

Reference, measured in the same run on the same loaded model: the raw
`SentenceTransformer.encode(unique_texts, normalize_embeddings=True)` time of the texts the scoring has to
embed. Claims checked (exit 1 if not met): cold scoring within 10% of that raw encode time; a warm rerun
under 1 s after model load; the suite's statistics (its bootstrap CI plus the paired test of one candidate
against the other, default settings: 10,000 BCa resamples) under 5% of the cold scoring time.

Data: the first 1,300 rows of ../shared/data/public_gemma_4483.csv when present (real prompts), otherwise
the shipped fixture prompts, made distinct, as a stand-in. Run: python bench/scoring.py [--embedder minilm]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from harness.candidates import ConstantCandidate  # noqa: E402
from harness.data import Sample, Suite, SuiteSpec, load_suite, load_suite_specs  # noqa: E402
from harness.embedders import choose_embedder  # noqa: E402
from harness.evaluation import BootstrapSettings, evaluate  # noqa: E402
from harness.stats import bootstrap_mean, paired_bootstrap_test  # noqa: E402
from harness.store import Store  # noqa: E402

N_ROWS = 1300
SHARED = ROOT.parent / "shared" / "data" / "public_gemma_4483.csv"


class FirstWordsCandidate:
    """A per-row candidate (every prediction a different text), so the benchmark also covers the case
    where predictions cost as much to embed as the truths."""

    name = spec = "first-words"
    fingerprint = "first-words-v1"

    def predict(self, samples):
        return [" ".join(s.rewritten_text.split()[:12]) or "x" for s in samples]


def bench_suite() -> tuple[Suite, str]:
    if SHARED.is_file():
        spec = SuiteSpec("gemma-1300", SHARED, columns={"id": "", "original_text": "Original",
                                                         "rewrite_prompt": "Prompt", "rewritten_text": "Rewritten"})
        suite = load_suite(spec)
        return Suite("gemma-1300", suite.samples[:N_ROWS]), str(SHARED)
    base = [s for spec in load_suite_specs(ROOT / "suites.toml").values() for s in load_suite(spec).samples]
    samples = tuple(Sample(str(i), base[i % len(base)].original_text, base[i % len(base)].rewritten_text,
                           f"{base[i % len(base)].rewrite_prompt} (variant {i // len(base)})") for i in range(N_ROWS))
    return Suite("fixtures-1300", samples), "shipped fixtures (shared data not found)"


def timed(action):
    started = time.perf_counter()
    value = action()
    return time.perf_counter() - started, value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedder", default="minilm")
    args = parser.parse_args()
    suite, source = bench_suite()
    embedder = choose_embedder(args.embedder).embedder
    load_seconds, model = timed(embedder.load)
    model.encode(["warm up the kernels"] * 8, normalize_embeddings=True)
    bootstrap = BootstrapSettings()
    print(f"suite: {suite.name}, {len(suite)} rows from {source}; embedder {embedder.name} "
          f"({embedder.fingerprint}), model load {load_seconds:.2f} s")
    print(f"{'candidate':<14}{'unique texts':>14}{'raw encode s':>14}{'cold s':>10}{'cold/raw':>10}{'warm s':>10}")
    ok = True
    ratios, warms, colds, results = [], [], [], []
    for candidate in (ConstantCandidate("mean-prompt", "Please improve this text using the writing style with "
                                        "maintaining the original meaning but altering the tone."), FirstWordsCandidate()):
        unique = list(dict.fromkeys(candidate.predict(suite.samples) + suite.prompts))
        raw_seconds, _ = timed(partial(model.encode, unique, batch_size=embedder.batch_size, normalize_embeddings=True))
        with tempfile.TemporaryDirectory() as folder, Store(Path(folder) / "store.sqlite") as store:
            score = partial(evaluate, candidate, suite, embedder, store=store, bootstrap=bootstrap)
            cold_seconds, cold = timed(score)
            warm_seconds, warm = timed(score)
        assert abs(cold.mean - warm.mean) < 1e-6
        ratio = cold_seconds / raw_seconds
        ratios.append(ratio)
        warms.append(warm_seconds)
        colds.append(cold_seconds)
        results.append(cold)
        print(f"{candidate.name:<14}{len(unique):>14}{raw_seconds:>14.2f}{cold_seconds:>10.2f}{ratio:>10.2f}{warm_seconds:>10.3f}")
        ok &= ratio <= 1.10 and warm_seconds < 1.0
    # The statistics a scored suite needs: its CI and the paired test against a baseline (here: the other
    # candidate), with the default settings, on the real per-row scores.
    first, second = results
    stats_seconds, _ = timed(lambda: (
        bootstrap_mean(first.scores, groups=suite.groups, confidence=bootstrap.confidence,
                       n_resamples=bootstrap.n_resamples, method=bootstrap.method, seed=bootstrap.seed),
        paired_bootstrap_test(second.scores, first.scores, tolerance=0.001, groups=suite.groups,
                              confidence=bootstrap.confidence, n_resamples=bootstrap.n_resamples,
                              method=bootstrap.method, seed=bootstrap.seed)))
    share = stats_seconds / min(colds)
    print(f"bootstrap (CI + paired test, {bootstrap.n_resamples:,} {bootstrap.method} resamples, {len(suite)} rows): "
          f"{stats_seconds:.3f} s; cold scoring {min(colds):.2f} s (the faster candidate)")
    ok &= share < 0.05
    print(f"cold_vs_raw_encode: {max(ratios):.2f} (limit 1.10)")
    print(f"warm_seconds: {max(warms):.3f} (limit 1.0)")
    print(f"bootstrap_share_of_cold_scoring: {share:.4f} (limit 0.05)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
