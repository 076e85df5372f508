"""Benchmark harness.stats bootstrap intervals against scipy.stats.bootstrap.

Run from the repository root: ``python bench/bootstrap.py``. It times, on the
same skewed scores (beta(0.5, 3), like sharpened cosine scores):

1. n = 1,300 rows, 10,000 resamples, percentile method: ours and
   ``scipy.stats.bootstrap(..., vectorized=True)``, best of 5 each, and checks
   that the two intervals agree to 0.002;
2. n = 100,000 rows, 10,000 resamples: time, peak RSS and the chunk size used
   (scipy would need 8 GB for its index array alone, so it is not run);
3. BCa for n = 1,300.

scipy is timed twice: the modern call ``rng=np.random.default_rng(seed)`` (its
fastest path, and what the gated ``speedup_vs_scipy`` line uses by default) and
the legacy ``random_state=<int>`` call (a ``RandomState``, about 3x slower,
shown for reference only). Ours is timed with all the cores it may use (blocks
of resamples run in threads; results are bit-identical to one thread) and with
one thread, and both ratios are printed. The process exits non-zero if the
gated speedup is below ``--min-speedup`` (5) or if the intervals disagree.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import scipy  # noqa: E402
import scipy.stats  # noqa: E402

from harness import stats  # noqa: E402

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


def peak_rss_mib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux


def scipy_ci(x: np.ndarray, seed: Any, *, legacy: bool = False) -> Any:
    randomness = {"random_state": seed} if legacy else {"rng": seed}
    return scipy.stats.bootstrap(
        (x,), np.mean, n_resamples=RESAMPLES, method="percentile", vectorized=True, **randomness
    )


def single_threaded(action: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        previous = os.environ.get("PRH_BOOTSTRAP_THREADS")
        os.environ["PRH_BOOTSTRAP_THREADS"] = "1"
        try:
            return action()
        finally:
            if previous is None:
                del os.environ["PRH_BOOTSTRAP_THREADS"]
            else:
                os.environ["PRH_BOOTSTRAP_THREADS"] = previous

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--min-speedup", type=float, default=5.0)
    parser.add_argument(
        "--baseline",
        choices=["generator", "int-seed"],
        default="generator",
        help="scipy call the gated speedup is measured against (default: rng=<Generator>, its fastest)",
    )
    args = parser.parse_args(argv)
    rng = np.random.default_rng(SEED)
    small = rng.beta(0.5, 3.0, N_SMALL)
    large = rng.beta(0.5, 3.0, N_LARGE)

    # Large suite first, so that ru_maxrss reflects it rather than scipy's
    # n x B index arrays from the small benchmark.
    cold_start = time.perf_counter()
    stats.bootstrap_mean(small, method="percentile", n_resamples=RESAMPLES)
    cold = time.perf_counter() - cold_start  # includes building the lookup table once
    rss_before = peak_rss_mib()
    large_time, large_ci = best_of(
        1, lambda: stats.bootstrap_mean(large, method="percentile", n_resamples=RESAMPLES)
    )
    rss_after = peak_rss_mib()
    plan = stats._plan(N_LARGE, RESAMPLES, 32 * 2**20)

    ours_time, ours = best_of(
        args.repeats, lambda: stats.bootstrap_mean(small, method="percentile", n_resamples=RESAMPLES)
    )
    one_thread_time, one_thread = best_of(
        args.repeats,
        single_threaded(lambda: stats.bootstrap_mean(small, method="percentile", n_resamples=RESAMPLES)),
    )
    assert (one_thread.low, one_thread.high) == (ours.low, ours.high), "threads must not change results"
    bca_time, bca = best_of(
        args.repeats, lambda: stats.bootstrap_mean(small, method="bca", n_resamples=RESAMPLES)
    )
    int_time, ref_int = best_of(args.repeats, lambda: scipy_ci(small, SEED, legacy=True))
    gen_time, ref_gen = best_of(args.repeats, lambda: scipy_ci(small, np.random.default_rng(SEED)))

    def ci(low: float, high: float) -> str:
        return f"[{low:.5f}, {high:.5f}]"

    def ms(seconds: float) -> str:
        return f"{seconds * 1e3:8.1f} ms"

    print(
        f"bootstrap benchmark: numpy {np.__version__}, scipy {scipy.__version__}, "
        f"{os.cpu_count()} CPUs; beta(0.5, 3) scores, {RESAMPLES:,} resamples, best of {args.repeats}"
    )
    rows = [
        (f"ours ({stats._worker_count()} thr) n=1,300 percentile", ms(ours_time), ci(ours.low, ours.high), ""),
        ("ours (1 thr) n=1,300 percentile", ms(one_thread_time), ci(one_thread.low, one_thread.high),
         f"{gen_time / one_thread_time:5.1f}x vs scipy Gen."),
        (
            "scipy legacy random_state=int",
            ms(int_time),
            ci(*ref_int.confidence_interval),
            f"{int_time / ours_time:5.1f}x",
        ),
        (
            "scipy rng=Generator n=1,300",
            ms(gen_time),
            ci(*ref_gen.confidence_interval),
            f"{gen_time / ours_time:5.1f}x",
        ),
        ("ours        n=1,300 bca", ms(bca_time), ci(bca.low, bca.high), ""),
        ("ours        n=1,300 first call", ms(cold), "(builds the Poisson table once)", ""),
        ("ours      n=100,000 percentile", ms(large_time), ci(large_ci.low, large_ci.high), ""),
    ]
    for name, t, interval, ratio in rows:
        print(f"  {name:32s} {t}  {interval:30s} {ratio}")
    print(
        f"  n=100,000: peak RSS {rss_after:.0f} MiB (+{rss_after - rss_before:.0f} MiB over "
        f"{rss_before:.0f} MiB before the call); chunks of {plan.rows} resamples "
        f"(~{plan.block_bytes / 2**20:.1f} MiB working set); scipy would need "
        f"{N_LARGE * RESAMPLES * 8 / 2**30:.0f} GiB of int64 indices"
    )
    gaps = [abs(ours.low - ref.confidence_interval.low) for ref in (ref_int, ref_gen)] + [
        abs(ours.high - ref.confidence_interval.high) for ref in (ref_int, ref_gen)
    ]
    agree = max(gaps) <= TOLERANCE
    print(
        f"  max |ours - scipy| CI endpoint gap: {max(gaps):.5f} "
        f"({'ok' if agree else 'MISMATCH'}, tolerance {TOLERANCE})"
    )
    speedup = (int_time if args.baseline == "int-seed" else gen_time) / ours_time
    baseline = "rng=<Generator>" if args.baseline == "generator" else "legacy random_state=<int>"
    print(f"  gated speedup: ours ({stats._worker_count()} threads) vs scipy {baseline}; minimum {args.min_speedup}x")
    print(f"speedup_vs_scipy: {speedup:.1f}")
    return 0 if agree and speedup >= args.min_speedup else 1


if __name__ == "__main__":
    sys.exit(main())
