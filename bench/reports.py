"""How long rendering the reports takes at the end of a pytest session, and what incremental pages save.

Run from the repository root: ``python bench/reports.py [--candidates 20] [--rows 138]``. A temporary store
gets a seeded synthetic history: every candidate scored on the three shipped suite names with per-row
data (skewed scores like real SCS rows). Then, best of ``--repeats`` each:

1. reference: ``write_reports`` drawing everything (every candidate page and histogram redrawn);
2. unchanged history: pages kept (their content key matches), only the leaderboard files rewritten;
3. one new run (what a pytest session of one candidate adds): one page and histogram redrawn.

It prints each time and its ratio to the reference measured in the same run. matplotlib is imported and
warmed up before timing, so the figures are rendering time, not import time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from harness.report import write_reports  # noqa: E402
from harness.run import RunRecord, RunSpec  # noqa: E402
from harness.store import RunRow, Store  # noqa: E402
from harness.verdict import Comparison  # noqa: E402

SUITES = ("public", "leaked", "synthetic-hard")


def fill(store: Store, candidates: int, n_rows: int, rng: np.random.Generator) -> None:
    baseline = {suite: rng.beta(0.5, 3.0, n_rows) for suite in SUITES}
    for c in range(candidates):
        for suite in SUITES:
            record, rows = run(f"candidate-{c:02d}", suite, baseline[suite], n_rows, rng)
            store.record_run(record, rows=rows)


def run(candidate: str, suite: str, baseline: np.ndarray, n_rows: int, rng: np.random.Generator):
    scores = np.clip(baseline + rng.normal(0.0, 0.05, n_rows), 0.0, 1.0)
    delta = float(scores.mean() - baseline.mean())
    comparison = Comparison("no-difference", "bench", baseline_candidate="candidate-00",
                            baseline_mean=float(baseline.mean()), delta=delta, delta_low=delta - 0.01,
                            delta_high=delta + 0.01, minimum_detectable_effect=0.02, wins=n_rows // 2, ties=0,
                            losses=n_rows - n_rows // 2)
    spec = RunSpec(candidate=candidate, candidate_fingerprint=f"fp-{candidate}", suite=suite,
                   suite_fingerprint=f"sfp-{suite}", embedder="minilm", embedder_fingerprint="bench",
                   comparable_with_kaggle=False)
    record = RunRecord(spec=spec, n=n_rows, mean=float(scores.mean()),
                       ci_low=float(scores.mean()) - 0.01, ci_high=float(scores.mean()) + 0.01, baseline=comparison)
    rows = [RunRow(i, f"{suite}-{i}", None, float(s), f"Make it a poem, take {i}.", f"Rewrite {i} as a sonnet.",
                   float(b)) for i, (s, b) in enumerate(zip(scores, baseline))]
    return record, rows


def render(store: Store, folder: Path) -> float:
    started = time.perf_counter()
    write_reports(store.runs(), folder, main_suites=SUITES, rows=store.run_rows)
    return time.perf_counter() - started


def best(times: list[float]) -> float:
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--rows", type=int, default=138)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(2024)

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    warm = Figure()
    FigureCanvasAgg(warm)
    warm.subplots().plot([0, 1])
    warm.canvas.draw()

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "store.sqlite")
        fill(store, args.candidates, args.rows, rng)
        folder = Path(tmp) / "reports"
        full, unchanged, one_new = [], [], []
        for repeat in range(args.repeats):
            for page in (folder / "candidates").glob("*.md") if folder.exists() else []:
                page.unlink()  # force every page and histogram to be redrawn
            full.append(render(store, folder))
            unchanged.append(render(store, folder))
            record, rows = run(f"candidate-{repeat % args.candidates:02d}", "public",
                                  rng.beta(0.5, 3.0, args.rows), args.rows, rng)
            store.record_run(record, rows=rows)
            one_new.append(render(store, folder))
        store.close()
    reference = best(full)
    print(f"history: {args.candidates} candidates x {len(SUITES)} suites x {args.rows} rows")
    print(f"every page redrawn (reference): {reference:.2f} s")
    print(f"unchanged history:              {best(unchanged):.2f} s  ratio {best(unchanged) / reference:.2f}")
    print(f"one new run:                    {best(one_new):.2f} s  ratio {best(one_new) / reference:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
