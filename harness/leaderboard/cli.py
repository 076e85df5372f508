"""`prh calibrate`: which local suite and embedder rank known leaderboard probes as the leaderboard does.

A thin shell over harness.leaderboard; importing it imports nothing heavy.
"""

from __future__ import annotations

import sys

from harness.errors import HarnessError
from harness.workspace import Workspace


def add_commands(subparsers) -> None:
    """Register `calibrate` on the `prh` parser."""
    calibrate = subparsers.add_parser("calibrate", help="which local suite and embedder rank probes with known "
                                      "leaderboard scores as the leaderboard does")
    calibrate.add_argument("--probes", default="fixtures/probes.csv", help="probes file (default: %(default)s)")
    calibrate.add_argument("--suite", action="append", default=[], help="a suite (repeatable; default: every suite)")
    calibrate.add_argument("--embedder", action="append", default=[],
                           help="an embedder (repeatable; default: st5 and minilm, whichever exist here)")
    calibrate.add_argument("--out", default="reports/calibration", help="output folder (default: %(default)s)")
    calibrate.add_argument("--resamples", type=int, default=2000)
    calibrate.add_argument("--leaderboard-noise", type=float, default=0.01,
                           help="sd of the leaderboard's noise added in each resample (default: %(default)s)")
    calibrate.add_argument("--seed", type=int, default=0)
    calibrate.add_argument("--json", action="store_true", help="print the JSON report")
    calibrate.add_argument("--suites-file", default=None, help="suites file (default: suites.toml)")
    calibrate.add_argument("--store", default=None)
    calibrate.set_defaults(handler=cmd_calibrate)


def _progress(enabled: bool):
    def say(text: str) -> None:
        if enabled:
            print(text, file=sys.stderr, flush=True)
    return say


# -- prh calibrate ----------------------------------------------------------------------------------------
def cmd_calibrate(args) -> int:
    from harness.evaluate import BootstrapSettings
    from harness.leaderboard.calibrate import CalibrationSettings, available_embedders, calibrate_suite
    from harness.leaderboard.calibration_report import render_json, write_calibration
    from harness.leaderboard.probes import load_probes

    probes = load_probes(args.probes)
    workspace = Workspace.from_args(args)
    suites = [workspace.suite(name) for name in args.suite or workspace.suite_names()]
    embedders, notes = available_embedders(args.embedder or ["st5", "minilm"])
    if not embedders:
        raise HarnessError("no embedder is available: " + "; ".join(notes))
    settings = CalibrationSettings(n_resamples=args.resamples, leaderboard_noise=args.leaderboard_noise,
                                   seed=args.seed, probe_bootstrap=BootstrapSettings(n_resamples=2000,
                                                                                     method="percentile", seed=args.seed))
    say = _progress(not args.json)
    rows = []
    with workspace:
        store = workspace.store()
        for embedder in embedders:
            for suite in suites:
                say(f"calibrating {suite.name} with {embedder.name} ({len(probes)} probes, {len(suite)} rows)")
                rows.append(calibrate_suite(probes, suite, embedder, store=store, settings=settings))
    paths = write_calibration(rows, probes, args.out, notes=notes, probes_source=args.probes,
                              leaderboard_noise=args.leaderboard_noise)
    if args.json:
        print(render_json(rows, probes, notes=notes), end="")
    else:
        print(paths[0].read_text(encoding="utf-8"))
        for path in paths:
            print(path)
    return 0
