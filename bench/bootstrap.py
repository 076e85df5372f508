"""Sanity bench of harness.stats bootstrap intervals against scipy.stats.bootstrap: same answer, how fast.

Run from the repository root: ``python bench/bootstrap.py``. On the same skewed scores (beta(0.5, 3), like
sharpened cosine scores), 10,000 resamples:

1. n = 1,300 rows, percentile and BCa: ours and ``scipy.stats.bootstrap(..., vectorized=True,
   rng=Generator)``, best of ``--repeats``; the endpoints must agree within 0.002 (Monte Carlo noise of two
   different random streams is ~0.0003 here). The time ratio is printed for information: there is no speed
   target (the old "≥5x scipy" target was withdrawn: a suite's bootstrap only has to stay a small share of
   its scoring time, which bench/scoring.py measures).
2. n = 1,300 with 130 groups (cluster bootstrap): time only (scipy has no cluster bootstrap).
3. n = 100,000 rows: time and peak traced memory (tracemalloc) of ours; scipy would hold an n x B index
   array (8 GB), so it is not run.

Exit status 1 when the intervals disagree, else 0.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import scipy  # noqa: E402
import scipy.stats  # noqa: E402

from harness import stats  # noqa: E402
from harness.stats import _bootstrap  # noqa: E402

N_SMALL, N_LARGE, RESAMPLES, SEED = 1_300, 100_000, 10_000, 2024
TOLERANCE = 0.002


def best_of(repeats: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    """Fastest wall time of ``repeats`` calls, and the last result."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(SEED)
    small = rng.beta(0.5, 3.0, N_SMALL)
    large = rng.beta(0.5, 3.0, N_LARGE)
    groups = np.arange(N_SMALL) % 130
    print(f"bootstrap bench: numpy {np.__version__}, scipy {scipy.__version__}, {os.cpu_count()} CPUs; "
          f"beta(0.5, 3) scores, {RESAMPLES:,} resamples, best of {args.repeats}")
    print(f"  {'case':34s} {'ours ms':>9s} {'scipy ms':>9s} {'scipy/ours':>10s}  ours CI / scipy CI")
    gaps = []
    for method in ("percentile", "bca"):
        ours_s, ours = best_of(args.repeats, lambda m=method: stats.bootstrap_mean(small, method=m,
                                                                                    n_resamples=RESAMPLES))
        ref_s, ref = best_of(args.repeats, lambda m=method: scipy.stats.bootstrap(
            (small,), np.mean, n_resamples=RESAMPLES, method=m, vectorized=True, rng=np.random.default_rng(SEED)))
        low, high = ref.confidence_interval
        gaps += [abs(ours.low - low), abs(ours.high - high)]
        print(f"  {f'n={N_SMALL:,} {method}':34s} {ours_s * 1e3:9.1f} {ref_s * 1e3:9.1f} {ref_s / ours_s:9.2f}x"
              f"  [{ours.low:.5f}, {ours.high:.5f}] / [{low:.5f}, {high:.5f}]")
    grouped_s, grouped = best_of(args.repeats, lambda: stats.bootstrap_mean(small, groups=groups,
                                                                            n_resamples=RESAMPLES))
    print(f"  {f'n={N_SMALL:,}, 130 groups, bca':34s} {grouped_s * 1e3:9.1f} {'-':>9s} {'-':>10s}"
          f"  [{grouped.low:.5f}, {grouped.high:.5f}]")
    tracemalloc.start()
    large_s, large_ci = best_of(1, lambda: stats.bootstrap_mean(large, method="percentile",
                                                                n_resamples=RESAMPLES))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"  {f'n={N_LARGE:,} percentile':34s} {large_s * 1e3:9.1f} {'-':>9s} {'-':>10s}"
          f"  [{large_ci.low:.5f}, {large_ci.high:.5f}]")
    print(f"  n={N_LARGE:,}: peak traced memory {peak / 2**20:.1f} MiB (input {large.nbytes / 2**20:.1f} MiB; "
          f"chunk budget {_bootstrap._CHUNK_BYTES / 2**20:.0f} MiB); scipy would need "
          f"{N_LARGE * RESAMPLES * 8 / 2**30:.0f} GiB of int64 indices")
    agree = max(gaps) <= TOLERANCE
    print(f"max |ours - scipy| CI endpoint gap: {max(gaps):.5f} ({'ok' if agree else 'MISMATCH'}, "
          f"tolerance {TOLERANCE})")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
