"""Benchmark: token search vs word search for a mean prompt, same run, same budget, on held-out rows.

1. Candidate strings scored per second by `MeanScsObjective`: a batch of 256 per call (as one search step
   calls it) vs one string per call, same run, same loaded model, disjoint sets of the same kind of
   strings, in alternating rounds so a change in the (shared) machine's load hits both alike.
2. Each search space (`--spaces`, default words and tokens) searches the train split for --budget-seconds
   (default 300 = 5 minutes) from the 0.63 public prompt, then its nearest string to the train oracle's
   direction (a quarter of the budget more). The spaces search AT THE SAME TIME, one process each, started
   together, so a change in the shared machine's load hits both alike (run one after the other, a load that
   fell from 6.5 to 4 between the runs gave the second 2.7x the strings per second). Each has its own copy
   of a store holding only the truths (embedded before any clock starts). Each
   is scored once on the held-out split against the 0.63 prompt (paired bootstrap CI), with the oracle
   bound (best constant) of the held-out split and the share of the headroom over the start it reached.
3. Token vs word search on the same held-out rows: the paired CI of the difference, (a) after the same
   wall-clock budget and (b) after the same number of strings scored (each search's best prompt once both
   had scored N strings, N the smaller total): (b) does not depend on the machine's load during each run.

Data: ../shared/data/public_gemma_4483.csv (split by prompt: 70% train, 30% held-out) when present,
otherwise the shipped fixture suites as a stand-in (said so). Scores from the packaged MiniLM embedder are
not on the leaderboard's scale. Claims checked (exit 1 if not met): batching is at least 2x faster than
one string per call, every searched prompt beats its start on held-out rows (paired CI above 0) and stays
at or below the held-out oracle bound. Which space wins is printed, not asserted: the default `--space`
follows the measured winner (docs/optimize.md).
Run: python bench/optimize.py [--budget-seconds 300] [--spaces words,tokens] [--embedder minilm] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from harness.candidates.constant import ConstantCandidate  # noqa: E402
from harness.data import Suite, SuiteSpec, load_suite, load_suite_specs  # noqa: E402
from harness.embedders import choose_embedder  # noqa: E402
from harness.embedding_cache import embed_texts  # noqa: E402
from harness.evaluation import BootstrapSettings, evaluate  # noqa: E402
from harness.optimize.mean_prompt import PUBLIC_MEAN_PROMPT, optimize_mean_prompt  # noqa: E402
from harness.optimize.objective import MeanScsObjective  # noqa: E402
from harness.optimize.search import SearchSettings  # noqa: E402
from harness.optimize.vocabulary import build_vocabulary  # noqa: E402
from harness.splits import split_suite  # noqa: E402
from harness.stats import paired_bootstrap_delta  # noqa: E402
from harness.store import Store  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "public_gemma_4483.csv"


def bench_suite() -> tuple[Suite, str]:
    if SHARED.is_file():
        spec = SuiteSpec("gemma-4483", SHARED, columns={"id": "", "original_text": "Original", "rewrite_prompt": "Prompt",
                                                         "rewritten_text": "Rewritten"})
        return load_suite(spec), str(SHARED)
    samples = []
    for spec in load_suite_specs(ROOT / "suites.toml").values():
        samples.extend(s for s in load_suite(spec).samples)
    samples = [replace(s, id=f"{i}", group=None) for i, s in enumerate(samples)]
    return Suite("fixtures", tuple(samples)), "shipped fixtures (shared data not found; a stand-in)"


def edited_strings(start: str, words: tuple[str, ...], count: int, rng: np.random.Generator, avoid: set[str]) -> list[str]:
    """`count` distinct strings one or two word edits away from `start`, none in `avoid`."""
    found: dict[str, None] = {}
    base = start.split()
    while len(found) < count:
        tokens = list(base)
        for _ in range(int(rng.integers(1, 3))):
            at = int(rng.integers(0, len(tokens)))
            move = int(rng.integers(0, 3))
            word = words[int(rng.integers(0, len(words)))]
            if move == 0:
                tokens.insert(at, word)
            elif move == 1:
                tokens[at] = word
            elif len(tokens) > 1:
                del tokens[at]
        text = " ".join(tokens)
        if text not in avoid and text != start:
            found[text] = None
    return list(found)


def batching_ratio(split, embedder, store: Store, seed: int, batch: int, single: int) -> float:
    objective = MeanScsObjective(split.train.prompts, embedder, store)
    words = build_vocabulary(split.train.prompts).words
    rng = np.random.default_rng(seed)
    rounds = 4  # alternate the two ways, so a change in the machine's load hits both alike
    single_set = edited_strings(PUBLIC_MEAN_PROMPT, words, rounds * single, rng, set())
    batch_set = edited_strings(PUBLIC_MEAN_PROMPT, words, rounds * batch, rng, set(single_set))
    single_seconds = batch_seconds = 0.0
    for r in range(rounds):
        started = time.perf_counter()
        for text in single_set[r * single:(r + 1) * single]:
            objective.score([text])
        single_seconds += time.perf_counter() - started
        started = time.perf_counter()
        objective.score(batch_set[r * batch:(r + 1) * batch])
        batch_seconds += time.perf_counter() - started
    single_rate, batch_rate = len(single_set) / single_seconds, len(batch_set) / batch_seconds
    print(f"scoring against {len(split.train)} train rows, {rounds} alternating rounds: one string per call "
          f"{single_rate:.1f}/s, batches of {batch} {batch_rate:.1f}/s")
    return batch_rate / single_rate


def best_at(steps: list, evaluations: int) -> str:
    """The best prompt of the last step taken with at most `evaluations` strings scored."""
    return [prompt for n, prompt in steps if n <= evaluations][-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-seconds", type=float, default=300.0, help="per search (default: %(default)s)")
    parser.add_argument("--spaces", default="words,tokens", help="search spaces to compare (default: %(default)s)")
    parser.add_argument("--embedder", default="minilm")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--candidates", type=int, default=256, help="strings per step (default: %(default)s)")
    parser.add_argument("--single", type=int, default=16, help="strings scored one per call, per batching round")
    parser.add_argument("--skip-batching", action="store_true", help="skip part 1")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: one search, in a process
    parser.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    spaces = [s.strip() for s in args.spaces.split(",") if s.strip()]

    suite, source = bench_suite()
    split = split_suite(suite, (0.7, 0.0, 0.3), by="prompt", seed=args.seed)
    embedder = choose_embedder(args.embedder).embedder
    embedder.load().encode(["warm up the kernels"] * 8, normalize_embeddings=True)
    print(f"data: {source}; {len(split.train)} train rows ({len(set(split.train.prompts))} prompts), "
          f"{len(split.heldout)} held-out rows ({len(set(split.heldout.prompts))} prompts, none in train); "
          f"embedder {embedder.name} ({embedder.fingerprint}); machine load {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs")
    bootstrap = BootstrapSettings(seed=args.seed)
    ratio = None
    with tempfile.TemporaryDirectory(prefix="prh-bench-optimize-") as folder:
        folder = Path(folder)
        if not args.skip_batching:
            with Store(folder / "batching.sqlite") as store:
                ratio = batching_ratio(split, embedder, store, args.seed, args.candidates, args.single)
        with Store(folder / "truths.sqlite") as store:  # embedded once, before any search clock starts
            embed_texts(list(dict.fromkeys(split.train.prompts + split.heldout.prompts + [PUBLIC_MEAN_PROMPT])),
                        embedder, store)
        print(f"\nsearching in {', '.join(spaces)} at the same time (one process each, so the machine's load hits "
              f"them alike) for {args.budget_seconds:g} s, then {args.budget_seconds / 4:g} s for the nearest string; "
              f"beam 4, {args.candidates} strings per step, seed {args.seed} ...", flush=True)
        results = run_workers(spaces, folder, sys.argv[1:])
        for space in spaces:
            print_run(space, results[space])
        store = Store(folder / "truths.sqlite")
        compare(results, split, embedder, store, bootstrap)
        store.close()

    ok = True
    if ratio is not None:
        print(f"candidates_per_second_batched_vs_single: {ratio:.1f}")
        ok &= ratio >= 2.0
    for data in results.values():
        ok &= data["delta_ci_low"] > 0 and data["heldout_score"] <= data["oracle_heldout"] + 1e-9
    return 0 if ok else 1


def run_workers(spaces: list[str], folder: Path, argv: list[str]) -> dict[str, dict]:
    """One process per space; they start searching together (a barrier file) and their results come back as JSON."""
    processes = {space: subprocess.Popen([sys.executable, __file__, *argv, "--worker", space, "--folder", str(folder)])
                 for space in spaces}
    while not all((folder / f"ready-{space}").exists() for space in spaces):
        if any(p.poll() not in (None, 0) for p in processes.values()):
            raise SystemExit("a search worker failed before starting")
        time.sleep(0.1)
    (folder / "go").touch()
    for space, process in processes.items():
        if process.wait() != 0:
            raise SystemExit(f"the {space} search worker failed")
    return {space: json.loads((folder / f"result-{space}.json").read_text()) for space in spaces}


def worker(args) -> int:
    """Search one space on the train split and write its report (plus per-row held-out scores and the step
    log) as JSON."""
    folder = Path(args.folder)
    suite, _ = bench_suite()
    split = split_suite(suite, (0.7, 0.0, 0.3), by="prompt", seed=args.seed)
    embedder = choose_embedder(args.embedder).embedder
    embedder.load().encode(["warm up the kernels"] * 8, normalize_embeddings=True)
    shutil.copy(folder / "truths.sqlite", folder / f"{args.worker}.sqlite")
    settings = SearchSettings(budget_seconds=args.budget_seconds, candidates_per_step=args.candidates, seed=args.seed)
    steps: list = []
    with Store(folder / f"{args.worker}.sqlite") as store:
        (folder / f"ready-{args.worker}").touch()
        while not (folder / "go").exists():
            time.sleep(0.05)
        load_before = os.getloadavg()[0]
        report = optimize_mean_prompt(split, embedder, start=PUBLIC_MEAN_PROMPT, settings=settings, store=store,
                                      bootstrap=BootstrapSettings(seed=args.seed), space=args.worker,
                                      nearest=replace(settings, budget_seconds=args.budget_seconds / 4),
                                      on_step=lambda step: steps.append((step.evaluations, step.best_prompt)))
    data = {**report.to_dict(), "load_before": load_before, "load_after": os.getloadavg()[0], "step_log": steps,
            "heldout_scores": report.heldout.found.scores.tolist(),
            "nearest_heldout_scores": report.nearest.heldout.found.scores.tolist()}
    (folder / f"result-{args.worker}.json").write_text(json.dumps(data))
    return 0


def print_run(space: str, data: dict) -> None:
    scale = "" if data["comparable_with_kaggle"] else " (MiniLM scale: not comparable with the Kaggle LB)"
    print(f"[{space}] prompt: {data['prompt']}")
    print(f"[{space}] search: {data['steps']} steps, {data['strings_evaluated']} strings in {data['seconds']:.0f} s = "
          f"{data['strings_per_second']:.1f} strings/s (load {data['load_before']:.1f} -> {data['load_after']:.1f}), "
          f"guide {data['guide']}, vocabulary {data['vocabulary_size']}; train {data['start_train_score']:.4f} -> "
          f"{data['train_score']:.4f} (train split, not a result)")
    print(f"[{space}] held-out{scale}: {data['heldout_score']:.4f} [{data['heldout_ci_low']:.4f}, "
          f"{data['heldout_ci_high']:.4f}] vs 0.63 prompt {data['start_heldout_score']:.4f}; delta "
          f"{data['delta']:+.4f} [{data['delta_ci_low']:+.4f}, {data['delta_ci_high']:+.4f}]")
    print(f"[{space}] oracle: train {data['oracle_train']:.4f} (train split), held-out {data['oracle_heldout']:.4f}, "
          f"train optimum on held-out {data['oracle_train_direction_heldout']:.4f}; headroom reached "
          f"{data['headroom_share']:.1%} of (oracle - start)")
    print(f"[{space}] nearest string to the train oracle (cosine {data['nearest_cosine_train_oracle']:.3f}, "
          f"{data['nearest_evaluations']} strings): held-out {data['nearest_heldout_score']:.4f} "
          f"[{data['nearest_heldout_ci_low']:.4f}, {data['nearest_heldout_ci_high']:.4f}], delta vs 0.63 "
          f"{data['nearest_delta']:+.4f} [{data['nearest_delta_ci_low']:+.4f}, {data['nearest_delta_ci_high']:+.4f}]: "
          f"{data['nearest_prompt']}")


def compare(results: dict, split, embedder, store: Store, bootstrap: BootstrapSettings) -> None:
    if not {"tokens", "words"} <= set(results):
        return
    tokens, words = results["tokens"], results["words"]

    def paired(a, b):
        return paired_bootstrap_delta(np.asarray(a), np.asarray(b), n_resamples=bootstrap.n_resamples,
                                      seed=bootstrap.seed)

    delta = paired(tokens["heldout_scores"], words["heldout_scores"])
    print(f"\ntokens - words, same {tokens['seconds']:.0f} s / {words['seconds']:.0f} s budget, held-out "
          f"({len(split.heldout)} rows): {delta.estimate:+.4f} [{delta.low:+.4f}, {delta.high:+.4f}]")
    n = min(tokens["strings_evaluated"], words["strings_evaluated"])
    at_n = {space: evaluate(ConstantCandidate(f"{space}-at-{n}", best_at(results[space]["step_log"], n)),
                            split.heldout, embedder, store=store, bootstrap=bootstrap) for space in ("tokens", "words")}
    same_n = paired(at_n["tokens"].scores, at_n["words"].scores)
    print(f"tokens - words, same number of strings scored ({n}): tokens {at_n['tokens'].mean:.4f}, words "
          f"{at_n['words'].mean:.4f}; delta {same_n.estimate:+.4f} [{same_n.low:+.4f}, {same_n.high:+.4f}]")
    nearest = paired(tokens["nearest_heldout_scores"], words["nearest_heldout_scores"])
    print(f"nearest strings to the train oracle, tokens - words: {nearest.estimate:+.4f} [{nearest.low:+.4f}, "
          f"{nearest.high:+.4f}]")
    print(f"strings_per_second_tokens_vs_words: {tokens['strings_per_second'] / words['strings_per_second']:.2f}")
    winner = "tokens" if delta.estimate > 0 else "words"
    significant = delta.low > 0 or delta.high < 0
    print(f"winner at the same budget: {winner} ({'CI excludes 0' if significant else 'CI includes 0'})")


if __name__ == "__main__":
    sys.exit(main())
