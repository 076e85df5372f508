"""Coverage of every interval the harness reports, on real rows, and the gate's A/A rate on real pairs (issue 21).

A "95%" interval should contain the true mean 95% of the time. This bench measures how often it does:
it draws many random samples of n rows from a population of real per-row scores, computes each
interval exactly as the harness does (`harness.stats.bootstrap_intervals`: the same finishing code as
`bootstrap_mean` / `paired_bootstrap_test`, with one set of resample draws shared by a batch of samples,
so that thousands of intervals are one matrix product), and counts the intervals that contain the
population mean. Samples are drawn WITH replacement (i.i.d. from the population), so the population mean
is exactly the target; drawing without replacement would make n = 1,000 of 4,483 rows look better covered
than it is (the finite-population correction).

Populations (real rows; `--cache` keeps the scores, outside the repository's tracked files):
- MiniLM per-row SCS of constant prompts over the 4,483 rows of ../shared/data/public_gemma_4483.csv,
  scored once through the harness (`evaluate`, the packaged MiniLM): A = the 0.63-leaderboard mean prompt,
  B = a paraphrase of it, C = "Improve the text to this." Skewness about 4, kurtosis about 20: the top
  1% of rows carry a third of the variance.
- real sentence-t5 per-row scores (../shared/data/st5_scored/dolly_gemini_500.csv, column `score`).
- the shipped suites' rows (leaked 64, public 136, synthetic-hard 138 in 14 prompt families), scored
  with the same prompts: the distributions a user's suite of that kind produces.
Intervals: the mean, the paired Δ, and their clustered versions (gemma rows grouped by their true prompt,
synthetic-hard by family; n then counts groups). n = 32, 64, 136, 300, 1,000 (and 14 groups, the
synthetic-hard shape). Methods: percentile (the gate's old default), BCa (the reports' old default) and
studentized (bootstrap-t, the new default of both). Each cell prints the coverage with its Monte-Carlo
error √(c(1−c)/S) over S samples, and the share of misses on each side.

The gate's A/A rate: families of three suites gated together with Holm, as `pytest suites/` does, on
real pairs whose population means are equal: a candidate against the same candidate after a
meaning-preserving change (A vs its paraphrase B) and two different prompts (A vs C), each pair centred
to equal population means and in both directions (the one-sided gate sees a skewed Δ differently from
each side). Families: the shipped shapes (136 rows, 64 rows, 40 prompt groups ≈ 136 rows) drawn from the
gemma rows; three suites of n rows each for n = 64, 136, 300; and the shipped suites themselves (each
resampled at its own size).

Exit 1 when the claim fails: (1) the default method (studentized) is the closest to 95% on average over
the cells with n >= 64; (2) in no such cell does it cover less than the best old method by more than 2 MC
errors; (3) the coverage `harness.stats.small_sample_warning` quotes (`measured_coverage`) is the one
measured here, per n, within 3 MC errors; (4) its family-wide A/A rate is nowhere above the percentile
gate's by more than 2 MC errors, and at most 5% (+ 2 MC errors) for families of 136 and 300 rows.
The 93-97% goal at n = 64 and the 5% A/A goal at 64 rows are printed, not claimed: on these heavy-tailed
rows no bootstrap method reaches them (see the table), which is why the warning quotes the measurement.

Run: python bench/coverage.py [--quick] [--samples S] [--resamples B] [--cache DIR] [--data DIR]. About 2 minutes of
CPU (8.4 minutes' wall time on a 2-core machine shared at load 9); --quick (300 samples and families, 500
resamples) about a fifth of that.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from harness.progress import stage_progress  # noqa: E402
from harness.stats import (  # noqa: E402
    DEFAULT_METHOD,
    METHODS,
    MIN_ROWS,
    bootstrap_intervals,
    holm_adjust,
    measured_coverage,
)

DATA = ROOT.parent / "shared" / "data"
GEMMA = "public_gemma_4483.csv"
ST5 = Path("st5_scored") / "dolly_gemini_500.csv"
PROMPTS = {
    "A": "Please improve this text using the writing style with maintaining the original meaning but altering the tone.",
    "B": "Please improve the text using the writing style, keeping the original meaning but altering the tone.",
    "C": "Improve the text to this.",
}
SIZES = (32, 64, 136, 300, 1_000)
TOLERANCE = 0.001  # harness.baselines.DEFAULT_TOLERANCE
ALPHA = 0.025  # one-sided level of "the 95% interval lies below −tolerance"
CHUNK = 100  # samples per batch: one set of resample draws is shared within a batch


@dataclass(frozen=True)
class Population:
    """Per-row values (scores, or paired differences) and, for the clustered versions, their groups."""

    name: str
    kind: str  # "mean", "paired Δ", "clustered mean", "clustered Δ"
    values: np.ndarray
    groups: np.ndarray | None = None  # group code per row

    @property
    def target(self) -> float:
        return float(self.values.mean())

    def draw(self, rng: np.random.Generator, n: int, count: int) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        """``count`` i.i.d. samples of n rows (or of n whole groups)."""
        if self.groups is None:
            return list(self.values[rng.integers(0, self.values.size, (count, n))]), None
        members = self.members
        samples, labels = [], []
        for picks in rng.integers(0, len(members), (count, n)):
            rows = [members[g] for g in picks]
            samples.append(self.values[np.concatenate(rows)])
            labels.append(np.repeat(np.arange(n), [r.size for r in rows]))
        return samples, labels

    @cached_property
    def members(self) -> list[np.ndarray]:
        """The row indices of each group."""
        order = np.argsort(self.groups, kind="stable")
        return np.split(order, np.flatnonzero(np.diff(self.groups[order])) + 1)


# ---------------------------------------------------------------------------
# the real rows


def real_scores(cache: Path, gemma_csv: Path) -> dict[str, np.ndarray]:
    """Per-row MiniLM SCS of the three prompts on the gemma rows and the shipped suites, plus group codes,
    computed once through the harness and kept in ``cache``/scores.npz."""
    path = cache / "scores.npz"
    from harness.candidates import ConstantCandidate
    from harness.data import SuiteSpec, load_suite, load_suite_specs
    from harness.embedders import choose_embedder
    from harness.evaluation import BootstrapSettings, evaluate
    from harness.progress import stage_progress
    from harness.stats import factorize_groups
    from harness.store import Store

    gemma = load_suite(SuiteSpec("gemma-4483", gemma_csv, columns={"id": "", "original_text": "Original",
                                                                "rewrite_prompt": "Prompt", "rewritten_text": "Rewritten"}))
    suites = {"gemma": gemma, **{n: load_suite(s) for n, s in load_suite_specs(ROOT / "suites.toml").items()}}
    # The cache is valid for these rows and prompts only: a changed suite or prompt recomputes it.
    cache_key = json.dumps({"suites": {n: s.fingerprint for n, s in suites.items()}, "prompts": PROMPTS}, sort_keys=True)
    if path.is_file():
        with np.load(path) as data:
            if "key" in data.files and str(data["key"]) == cache_key:
                return {k: data[k] for k in data.files if k != "key"}
        print(f"{path}: made for other rows or prompts; recomputing")
    embedder = choose_embedder("minilm").embedder
    no_interval = BootstrapSettings(n_resamples=1, method="percentile")
    out: dict[str, np.ndarray] = {}
    cache.mkdir(parents=True, exist_ok=True)
    total, done = len(suites) * len(PROMPTS), 0
    with Store(cache / "store.sqlite") as store, stage_progress() as update:
        for name, suite in suites.items():
            labels = suite.prompts if name == "gemma" else suite.groups
            if labels is not None:
                out[f"{name}/groups"] = factorize_groups(labels, len(suite))[0]
            for key, prompt in PROMPTS.items():
                out[f"{name}/{key}"] = evaluate(ConstantCandidate(key, prompt), suite, embedder, store=store,
                                                bootstrap=no_interval).scores
                done += 1
                update("scoring real rows with MiniLM", done, total)
    np.savez(path, key=np.array(cache_key), **out)
    return out


def st5_scores(path: Path) -> np.ndarray:
    with path.open(newline="", encoding="utf-8") as handle:
        return np.array([float(row["score"]) for row in csv.DictReader(handle)])


def populations(scores: dict[str, np.ndarray], st5: np.ndarray | None) -> list[Population]:
    a, b, c = (scores[f"gemma/{k}"] for k in "ABC")
    groups = scores["gemma/groups"]
    pops = [Population("gemma A", "mean", a), Population("gemma C", "mean", c)]
    if st5 is not None:
        pops.append(Population("sentence-t5 (dolly 500)", "mean", st5))
    pops += [Population(f"{s} A", "mean", scores[f"{s}/A"]) for s in ("leaked", "public")]
    pops += [Population("gemma A−C", "paired Δ", a - c), Population("gemma A−B", "paired Δ", a - b)]
    pops += [Population(f"{s} A−C", "paired Δ", scores[f"{s}/A"] - scores[f"{s}/C"]) for s in ("leaked", "public")]
    pops += [Population("gemma A by prompt", "clustered mean", a, groups),
             Population("synthetic-hard A by family", "clustered mean", scores["synthetic-hard/A"],
                        scores["synthetic-hard/groups"]),
             Population("gemma A−C by prompt", "clustered Δ", a - c, groups),
             Population("synthetic-hard A−C by family", "clustered Δ",
                        scores["synthetic-hard/A"] - scores["synthetic-hard/C"], scores["synthetic-hard/groups"])]
    return pops


# ---------------------------------------------------------------------------
# measuring


@dataclass(frozen=True)
class Cell:
    population: str
    kind: str
    n: int
    method: str
    coverage: float
    misses_high: float  # the interval lies below the target
    misses_low: float  # the interval lies above the target
    samples: int

    @property
    def mc_error(self) -> float:
        return math.sqrt(max(self.coverage * (1 - self.coverage), 1e-12) / self.samples)


def coverage(pop: Population, n: int, methods: tuple[str, ...], samples: int, resamples: int,
             rng: np.random.Generator) -> list[Cell]:
    """The coverage of each method on the SAME samples (the comparison is paired)."""
    hits = {m: np.zeros(3) for m in methods}
    target = pop.target
    for start in range(0, samples, CHUNK):
        batch, labels = pop.draw(rng, n, min(CHUNK, samples - start))
        seed = int(rng.integers(2**63))
        for method in methods:
            intervals = bootstrap_intervals(batch, groups=labels, n_resamples=resamples, method=method, seed=seed)
            low = np.array([ci.low for ci in intervals])
            high = np.array([ci.high for ci in intervals])
            hits[method] += [np.sum((low <= target) & (target <= high)), np.sum(high < target), np.sum(low > target)]
    return [Cell(pop.name, pop.kind, n, m, *(h / samples), samples) for m, h in hits.items()]


@dataclass(frozen=True)
class Pair:
    """A real A/A pair: per-row candidate − baseline, centred so that the population means are equal."""

    name: str
    delta: np.ndarray
    groups: np.ndarray | None = None

    def population(self) -> Population:
        return Population(self.name, "A/A", self.delta - self.delta.mean(), self.groups)


def false_alarms(shapes: list[tuple[Population, int]], method: str, families: int, resamples: int,
                 rng: np.random.Generator) -> tuple[float, float]:
    """(family-wide rate with Holm, the highest single-suite rate) of gate runs over ``shapes``."""
    p = np.empty((families, len(shapes)))
    for s, (pop, n) in enumerate(shapes):
        for start in range(0, families, CHUNK):
            count = min(CHUNK, families - start)
            batch, labels = pop.draw(rng, n, count)
            tests = bootstrap_intervals(batch, groups=labels, tolerance=TOLERANCE, n_resamples=resamples,
                                        method=method, seed=int(rng.integers(2**63)))
            p[start:start + count, s] = [t.p_regression for t in tests]
    flagged = np.array([[q < ALPHA for q in holm_adjust(row)] for row in p])
    return float(flagged.any(axis=1).mean()), float((p < ALPHA).mean(axis=0).max())


# ---------------------------------------------------------------------------
# printing and the claim


def print_table(cells: list[Cell], methods: tuple[str, ...]) -> None:
    print(f"{'population':30s} {'interval':15s} {'n':>5s}  " + "  ".join(f"{m:>24s}" for m in methods))
    key = lambda c: (c.population, c.n)  # noqa: E731
    rows: dict[tuple[str, int], dict[str, Cell]] = {}
    for c in cells:
        rows.setdefault(key(c), {})[c.method] = c
    for (pop, n), by_method in rows.items():
        first = next(iter(by_method.values()))
        text = "  ".join(f"{by_method[m].coverage:.3f}±{by_method[m].mc_error:.3f} "
                         f"({by_method[m].misses_high:.3f}/{by_method[m].misses_low:.3f})" for m in methods)
        print(f"{pop:30s} {first.kind:15s} {n:5d}  {text}")


def summary_by_size(cells: list[Cell], method: str) -> dict[int, tuple[float, float]]:
    """(lowest, highest) coverage of ``method`` per n over all populations and intervals."""
    out: dict[int, tuple[float, float]] = {}
    for c in cells:
        if c.method == method:
            lo, hi = out.get(c.n, (1.0, 0.0))
            out[c.n] = (min(lo, c.coverage), max(hi, c.coverage))
    return dict(sorted(out.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000, help="random samples per cell (>= 1,000 for the claim)")
    parser.add_argument("--families", type=int, default=1_000, help="simulated gate runs per A/A family")
    parser.add_argument("--resamples", type=int, default=1_000, help="bootstrap resamples per interval")
    parser.add_argument("--quick", action="store_true", help="300 samples and families, 500 resamples")
    parser.add_argument("--cache", type=Path, default=ROOT / ".prh" / "bench-coverage",
                        help="where the real rows' scores are kept (computed once, about a minute)")
    parser.add_argument("--data", type=Path, default=DATA, help=f"the real data folder (default {DATA})")
    parser.add_argument("--json", type=Path, help="also write every cell to this JSON file")
    parser.add_argument("--seed", type=int, default=20261206)
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.families, args.resamples = 300, 300, 500
    if not (args.data / GEMMA).is_file():
        parser.error(f"needs the real rows: {args.data / GEMMA} is missing (--data names the folder)")
    if args.json is not None and not args.json.parent.is_dir():
        parser.error(f"--json: folder {args.json.parent} does not exist")
    started = time.perf_counter()
    scores = real_scores(args.cache, args.data / GEMMA)
    pops = populations(scores, st5_scores(args.data / ST5) if (args.data / ST5).is_file() else None)
    rng = np.random.default_rng(args.seed)
    methods = METHODS
    print(f"coverage of 95% intervals: {args.samples} samples per cell, {args.resamples} resamples each; "
          "cells: coverage ± MC error (misses above the interval / below it)")
    cells: list[Cell] = []
    plan = [(pop, n) for pop in pops for n in (SIZES if pop.groups is None else (14, *SIZES[:-1]))]
    with stage_progress() as update:
        for done, (pop, n) in enumerate(plan, 1):
            cells += coverage(pop, n, methods, args.samples, args.resamples, rng)
            update("coverage cells", done, len(plan))
    print_table(cells, methods)

    print("\nlowest–highest coverage over all populations and intervals, per n:")
    for method in methods:
        spans = summary_by_size(cells, method)
        print(f"  {method:12s} " + "  ".join(f"n={n}: {lo:.3f}–{hi:.3f}" for n, (lo, hi) in spans.items()))
    distance = {m: float(np.mean([abs(c.coverage - 0.95) for c in cells if c.method == m and c.n >= 64]))
                for m in methods}
    print("mean |coverage − 0.95| over cells with n >= 64: "
          + ", ".join(f"{m} {d:.4f}" for m, d in distance.items()))

    # The gate on real A/A pairs.
    a, b, c = (scores[f"gemma/{k}"] for k in "ABC")
    g = scores["gemma/groups"]
    pairs = [Pair("A vs paraphrase B", a - b, g), Pair("paraphrase B vs A", b - a, g),
             Pair("A vs C", a - c, g), Pair("C vs A", c - a, g)]
    print(f"\ngate A/A on real pairs (population means equal), Holm over 3 suites, tolerance {TOLERANCE}, "
          f"{args.families} runs each: family-wide false-alarm rate (highest single suite)")
    alarms: dict[tuple[str, str], float] = {}
    for pair in pairs:
        pop = pair.population()
        rows = Population(pop.name, pop.kind, pop.values)
        families = {"shipped shapes (136, 64, 40 groups)": [(rows, 136), (rows, 64), (pop, 40)],
                    **{f"3 × {n} rows": [(rows, n)] * 3 for n in (64, 136, 300)}}
        for label, shapes in families.items():
            text = []
            for method in methods:
                rate, single = false_alarms(shapes, method, args.families, args.resamples, rng)
                alarms[pair.name, label, method] = rate
                text.append(f"{method} {rate:.3f} ({single:.3f})")
            print(f"  {pair.name:20s} {label:36s} " + "  ".join(text))
    shipped = [(Pair(f"{s} B vs A", scores[f"{s}/B"] - scores[f"{s}/A"],
                     scores.get(f"{s}/groups")).population(), size)
               for s, size in (("public", 136), ("leaked", 64), ("synthetic-hard", 14))]
    text = []
    for method in methods:
        rate, single = false_alarms(shipped, method, args.families, args.resamples, rng)
        alarms["shipped suites B vs A", "own sizes", method] = rate
        text.append(f"{method} {rate:.3f} ({single:.3f})")
    print(f"  {'shipped suites, B vs A, each at its own size (14 = synthetic-hard groups)':57s} " + "  ".join(text))
    mc_family = math.sqrt(0.05 * 0.95 / args.families)
    print(f"  (MC error of a rate near 0.05: ±{mc_family:.3f})")

    # The claim.
    failures = []
    best = min(distance, key=distance.get)
    if best != DEFAULT_METHOD:
        failures.append(f"the default {DEFAULT_METHOD} is not the closest to 95% (that is {best})")
    by_cell: dict[tuple[str, int], dict[str, Cell]] = {}
    for cell in cells:
        by_cell.setdefault((cell.population, cell.n), {})[cell.method] = cell
    for (population, n), by_method in by_cell.items():
        default = by_method[DEFAULT_METHOD]
        best_other = max((c for m, c in by_method.items() if m != DEFAULT_METHOD), key=lambda c: c.coverage)
        if n >= 64 and default.coverage < best_other.coverage - 2 * default.mc_error:
            failures.append(f"{population} n={n}: {DEFAULT_METHOD} covers {default.coverage:.3f}, "
                            f"{best_other.method} {best_other.coverage:.3f}")
    for n, (lo, hi) in summary_by_size(cells, DEFAULT_METHOD).items():
        quoted = measured_coverage(n)
        slack = 3 * math.sqrt(0.9 * 0.1 / args.samples)
        if quoted is None or abs(quoted[0] - lo) > slack or abs(quoted[1] - hi) > slack:
            failures.append(f"small_sample_warning quotes {quoted} at n={n}; measured {lo:.3f}–{hi:.3f}")
    for (pair, label, method), rate in alarms.items():
        if method != DEFAULT_METHOD:
            continue
        old = alarms[pair, label, "percentile"]
        if rate > old + 2 * mc_family:
            failures.append(f"A/A {pair}, {label}: {method} {rate:.3f} > percentile {old:.3f}")
        if label in ("3 × 136 rows", "3 × 300 rows") and rate > 0.05 + 2 * mc_family:
            failures.append(f"A/A {pair}, {label}: {rate:.3f} > 0.05 at n >= 136")
    goal = [c for c in cells if c.method == DEFAULT_METHOD and c.n >= 64 and not 0.93 <= c.coverage <= 0.97]
    print(f"\ngoal 93–97% at every n >= 64 under {DEFAULT_METHOD}: {len(goal)} of "
          f"{sum(c.method == DEFAULT_METHOD and c.n >= 64 for c in cells)} cells outside "
          f"(not claimed; the small-sample warning below {MIN_ROWS} rows quotes the measurement)")
    worst_aa = max(v for (_, label, m), v in alarms.items() if m == DEFAULT_METHOD)
    print(f"highest family-wide A/A rate under {DEFAULT_METHOD}: {worst_aa:.3f} (goal <= 0.05)")
    if args.json is not None:
        args.json.write_text(json.dumps({"cells": [c.__dict__ for c in cells],
                                         "false_alarms": [{"pair": k[0], "family": k[1], "method": k[2], "rate": v}
                                                          for k, v in alarms.items()]}, indent=1))
    print(f"elapsed {time.perf_counter() - started:.0f} s")
    for failure in failures:
        print(f"CLAIM FAILED: {failure}")
    if args.samples < 1_000:
        print("(fewer than 1,000 samples per cell: a quick run, not the measurement)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
