"""`prh calibrate`, `prh calibrate fit-suite` and `prh probes add|list`: the leaderboard model from the
command line.

A thin shell over harness.leaderboard; importing it imports nothing heavy.
"""

from __future__ import annotations

import json
import sys

from harness.errors import HarnessError
from harness.options import DEFAULT_BOOK, add_workspace_paths, resamples, score_0_to_1
from harness.workspace import Workspace

#: the exit code of a refused request (prh: 2 = bad input or configuration)
EXIT_USAGE = 2



def _add_paths(parser) -> None:
    add_workspace_paths(parser.add_argument, only=("--suites-file", "--candidates-file", "--baselines-dir", "--store"))


def add_commands(subparsers) -> None:
    """Register `calibrate` (with its `fit-suite` subcommand) and `probes` on the `prh` parser."""
    calibrate = subparsers.add_parser(
        "calibrate", help="fit and check the leaderboard model: local score → public leaderboard, with its "
                          "leave-one-probe-out error")
    calibrate.add_argument("--probes", default=DEFAULT_BOOK, help="probe book (default: %(default)s)")
    calibrate.add_argument("--suite", action="append", default=[], help="a suite (repeatable; default: every suite)")
    calibrate.add_argument("--embedder", action="append", default=[],
                           help="an embedder (repeatable; default: st5 and minilm, whichever exist here)")
    calibrate.add_argument("--map", choices=("linear", "robust", "isotonic"), default="linear",
                           help="the map from local to leaderboard score (default: %(default)s)")
    calibrate.add_argument("--target", choices=("public", "private"), default="public",
                           help="which leaderboard score to predict (default: %(default)s)")
    calibrate.add_argument("--write-model", action="store_true",
                           help="write baselines/<embedder>/<suite>.leaderboard.json (says old → new)")
    calibrate.add_argument("--label", default=None, help="how predictions of the written model are labelled")
    calibrate.add_argument("--out", default="reports/calibration", help="output folder (default: %(default)s)")
    calibrate.add_argument("--resamples", type=resamples, default=2000)
    calibrate.add_argument("--leaderboard-noise", type=float, default=0.01,
                           help="sd of the leaderboard's noise added in each resample (default: %(default)s)")
    calibrate.add_argument("--seed", type=int, default=0)
    calibrate.add_argument("--json", action="store_true", help="print the JSON report")
    _add_paths(calibrate)
    calibrate.set_defaults(handler=cmd_calibrate)

    sub = calibrate.add_subparsers(dest="calibrate_command", metavar="{fit-suite,scale}")
    fit = sub.add_parser("fit-suite", help="choose rows of a large pool so that the probes score there what they "
                                           "scored on the leaderboard; writes a new suite file")
    fit.add_argument("--from", dest="source", required=True, help="the pool: a suite name, or a data file with Kaggle's column names (define other "
                                   "layouts in suites.toml)")
    fit.add_argument("--probes", default=DEFAULT_BOOK, help="probe book (default: %(default)s)")
    fit.add_argument("--size", type=int, required=True, help="rows of the new suite")
    fit.add_argument("--out", required=True, help="the new suite file (.jsonl or .csv)")
    fit.add_argument("--method", choices=("greedy", "weights"), default="greedy")
    fit.add_argument("--map", choices=("auto", "identity", "linear"), default="auto",
                     help="auto: identity for Kaggle's scorer (st5), else the linear leaderboard map")
    fit.add_argument("--embedder", default="auto")
    fit.add_argument("--target", choices=("public", "private"), default="public")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--json", action="store_true")
    _add_paths(fit)
    fit.set_defaults(handler=cmd_fit_suite)

    scale = sub.add_parser("scale", help="fit the map from an embedder's per-row scores to sentence-t5's (Kaggle's) "
                                         "scale on files with real per-row sentence-t5 scores; checks it file by file")
    scale.add_argument("--rows", action="append", default=[], metavar="FILE",
                       help="a table of truth, prediction and per-row sentence-t5 score (repeatable)")
    scale.add_argument("--rows-above", action="append", default=[], nargs=2, metavar=("THRESHOLD", "FILE"),
                       help="a table that kept only rows whose score exceeds THRESHOLD (fitted by truncated "
                            "likelihood; repeatable)")
    scale.add_argument("--embedder", required=True, help="minilm or path:DIR (st5 is already Kaggle's scale)")
    scale.add_argument("--truth-column", default="gt_rewrite_prompt", help="default: %(default)s")
    scale.add_argument("--prediction-column", default="rewrite_prompt", help="default: %(default)s")
    scale.add_argument("--score-column", default="score", help="the per-row sentence-t5 score (default: %(default)s)")
    scale.add_argument("--write", action="store_true", help="write baselines/<embedder>/st5_scale.json (says old → new)")
    scale.add_argument("--json", action="store_true")
    _add_paths(scale)
    scale.set_defaults(handler=cmd_calibrate_scale)

    probes = subparsers.add_parser("probes", help="the probe book: submissions with known leaderboard scores")
    actions = probes.add_subparsers(dest="probes_command", required=True)
    add = actions.add_parser("add", help="append a probe to the book")
    add.add_argument("--candidate", required=True,
                     help="what was submitted: mean:TEXT, template:TEXT ({original_text}), file:PATH or a "
                          "candidates.toml name")
    add.add_argument("--public", type=score_0_to_1, default=None, help="its public leaderboard score, in [0, 1]")
    add.add_argument("--private", type=score_0_to_1, default=None, help="its private leaderboard score, in [0, 1]")
    add.add_argument("--name", default=None, help="a unique name (default: from the candidate)")
    add.add_argument("--date", default="", help="YYYY-MM-DD")
    add.add_argument("--note", default="")
    add.add_argument("--source", default="", help="where the score comes from")
    add.add_argument("--book", default=DEFAULT_BOOK, help="probe book (default: %(default)s)")
    add_workspace_paths(add.add_argument, only=("--candidates-file", "--store"))
    add.set_defaults(handler=cmd_probes_add)
    listing = actions.add_parser("list", help="list the book's probes")
    listing.add_argument("--book", default=DEFAULT_BOOK, help="probe book (default: %(default)s)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_probes_list)


def _progress(enabled: bool):
    def say(text: str) -> None:
        if enabled:
            print(text, file=sys.stderr, flush=True)
    return say


def model_label(book_path: str, suite_rows: int, embedder: str, comparable: bool) -> str:
    """How a written model's predictions are labelled wherever they are shown."""
    from pathlib import Path

    from harness.stats import MIN_ROWS

    shipped = Path(book_path).resolve() == DEFAULT_BOOK.resolve() if Path(book_path).exists() else False
    parts = [f"predicted public leaderboard score, fitted on {'the shipped public probes' if shipped else 'the probes'} "
             f"of {book_path}"]
    if not comparable:
        parts.append(f"{embedder} is not Kaggle's scorer: the map translates its scale")
    if suite_rows < MIN_ROWS:
        parts.append(f"the suite has only {suite_rows} rows of our own texts: expect a poor fit")
    return "; ".join(parts)


# -- prh calibrate ----------------------------------------------------------------------------------------
def cmd_calibrate(args) -> int:
    from harness.leaderboard.book import load_book
    from harness.leaderboard.calibrate import CalibrationSettings, available_embedders, calibrate_suite
    from harness.leaderboard.calibration_report import render_json, write_calibration
    from harness.leaderboard.model import FitSettings
    from harness.leaderboard.model_file import load_model, write_model

    book = load_book(args.probes)
    workspace = Workspace.from_args(args)
    suites = [workspace.suite(name) for name in args.suite or workspace.suite_names()]
    embedders, notes = available_embedders(args.embedder or ["st5", "minilm"], workspace.embedder)
    if not embedders:
        raise HarnessError("no embedder is available: " + "; ".join(notes))
    settings = CalibrationSettings(FitSettings(map=args.map, leaderboard_noise=args.leaderboard_noise, seed=args.seed),
                                   correlation_resamples=args.resamples, target=args.target)
    say = _progress(not args.json)
    rows, models, refused = [], [], []
    with workspace:
        store = workspace.store()
        for embedder in embedders:
            for suite in suites:
                say(f"calibrating {suite.name} with {embedder.name} ({len(book)} probes, {len(suite)} rows)")
                label = args.label or model_label(args.probes, len(suite), embedder.name,
                                                  embedder.comparable_with_kaggle)
                row = calibrate_suite(book, suite, embedder, store=store, resolve=workspace.candidate,
                                      settings=settings, label=label)
                rows.append(row)
                say(f"  {row.seconds:.1f} s, {row.embedding_calls} embedding call(s) for the constant probes")
                if row.model is None:
                    refused.append(f"{suite.name} ({embedder.name}): {row.refused or 'no model could be fitted'}")
                    continue
                if args.write_model:
                    models.append(write_model(workspace.baselines_dir, row.model).describe())
                else:
                    old = load_model(workspace.baselines_dir, embedder.name, suite.name)
                    models.append(f"not written (use --write-model): {suite.name} ({embedder.name}) "
                                  f"{old.describe() if old else 'none'} → {row.model.describe()}")
    paths = write_calibration(rows, list(book), args.out, notes=notes, probes_source=args.probes,
                              leaderboard_noise=args.leaderboard_noise, models=models)
    if args.json:
        print(render_json(rows, list(book), notes=notes, models=models), end="")
    else:
        print(paths[0].read_text(encoding="utf-8"))
        for line in models:
            print(line)
        for path in paths:
            print(path)
    if args.write_model and not any(row.model is not None for row in rows):
        # asked to write a model and none could be: the caller must not read this as success
        print(f"error: --write-model wrote no model: every fit was refused ({'; '.join(refused)})", file=sys.stderr)
        return EXIT_USAGE
    return 0


# -- prh calibrate fit-suite ------------------------------------------------------------------------------
def cmd_fit_suite(args) -> int:
    import time

    import numpy as np

    from harness.leaderboard.book import load_book
    from harness.leaderboard.calibrate import CalibrationSettings, calibrate_suite
    from harness.leaderboard.fit_suite import match_suite, provenance_path, write_matched_suite
    from harness.leaderboard.model import FitSettings
    from harness.leaderboard.scores import score_probes

    started = time.perf_counter()
    book = load_book(args.probes)
    workspace = Workspace.from_args(args)
    say = _progress(not args.json)
    with workspace:
        pool = workspace.suite(args.source)
        embedder = workspace.embedder(args.embedder).embedder
        map_kind = args.map if args.map != "auto" else ("identity" if embedder.comparable_with_kaggle else "linear")
        say(f"scoring {len(book)} probes on {pool.name} ({len(pool)} rows) with {embedder.name}")
        row = calibrate_suite(book, pool, embedder, store=workspace.store(), resolve=workspace.candidate,
                              settings=CalibrationSettings(FitSettings(seed=args.seed), target=args.target))
        if row.fit is None:
            raise HarnessError(f"cannot match a suite to the probes: {row.refused}")
        fitted = [p for p in book if p.name in {f.probe for f in row.fit.fitted}]
        scored = score_probes(fitted, pool, embedder, store=workspace.store(), resolve=workspace.candidate)
        say(f"matching {len(fitted)} probes ({args.method}, map {map_kind}, {args.size} rows, leave-one-probe-out)")
        match = match_suite([p.name for p in fitted], scored.scores, [p.score(args.target) for p in fitted],
                            size=args.size, method=args.method, map_kind=map_kind, seed=args.seed)
    chosen = pool.samples
    from harness.data import Suite

    out_suite = Suite(str(args.out), tuple(chosen[int(i)] for i in match.rows))
    provenance = {
        "source_suite": pool.name, "source_fingerprint": pool.fingerprint, "source_rows": len(pool),
        "probe_book": str(args.probes), "probe_book_hash": book.hash, "seed": args.seed, "method": args.method,
        "size": args.size, "map": map_kind, "target": args.target, "embedder": embedder.name,
        "embedder_fingerprint": embedder.fingerprint, "suite_fingerprint": out_suite.fingerprint,
        "probes": list(match.probes), "set_aside": [s.to_dict() for s in row.fit.set_aside],
        "excluded": list(row.excluded), "loo": list(match.loo), "source_loo": list(match.source_loo),
        "loo_mae": match.loo_mae, "loo_spearman": match.loo_spearman, "source_loo_mae": match.source_loo_mae,
        "source_loo_spearman": match.source_loo_spearman, "helps": match.helps, "verdict": match.verdict(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out, sidecar = write_matched_suite(args.out, pool, match, provenance)
    seconds = time.perf_counter() - started
    if args.json:
        print(json.dumps({"out": str(out), "provenance": str(sidecar), "n_rows": int(match.rows.size),
                          "loo_mae": match.loo_mae, "loo_spearman": match.loo_spearman,
                          "source_loo_mae": match.source_loo_mae, "source_loo_spearman": match.source_loo_spearman,
                          "helps": match.helps, "verdict": match.verdict(), "method": args.method, "map": map_kind,
                          "probes": list(match.probes), "set_aside": provenance["set_aside"],
                          "loo": list(match.loo), "seconds": round(seconds, 3),
                          "mean_local": float(np.mean(scored.means))}, ensure_ascii=False))
    else:
        print(f"wrote {out} ({match.rows.size} of {len(pool)} rows) and {provenance_path(out)}")
        print(match.verdict())
        spearman = "n/a" if match.loo_spearman is None else f"{match.loo_spearman:+.2f}"
        source = "n/a" if match.source_loo_spearman is None else f"{match.source_loo_spearman:+.2f}"
        print(f"leave-one-probe-out over {len(match.probes)} probes: MAE {match.loo_mae:.4f} (Spearman {spearman}) "
              f"vs the pool's {match.source_loo_mae:.4f} (Spearman {source}); {seconds:.1f} s")
    return 0


# -- prh calibrate scale ----------------------------------------------------------------------------------
def cmd_calibrate_scale(args) -> int:
    import shlex

    from harness.leaderboard.scale import embed_scored_rows, fit_scale_map
    from harness.leaderboard.scale_file import write_scale_map

    sources = [(path, None) for path in args.rows] + [(path, _threshold(value)) for value, path in args.rows_above]
    if len(sources) < 2:
        raise HarnessError("give at least two files (--rows / --rows-above): the map's interval comes from "
                           "checking it on a file it was not fitted on")
    say = _progress(not args.json)
    workspace = Workspace.from_args(args)
    embedder = workspace.embedder(args.embedder).embedder
    if embedder.comparable_with_kaggle:
        raise HarnessError(f"embedder '{embedder.name}' is Kaggle's scorer: its scores need no map")
    files = []
    with workspace:
        for path, kept_above in sources:
            say(f"embedding {path} with {embedder.name}")
            files.append(embed_scored_rows(path, embedder, store=workspace.store(), truth_column=args.truth_column,
                                           prediction_column=args.prediction_column, score_column=args.score_column,
                                           kept_above=kept_above))
    parts = [f"--rows {shlex.quote(p)}" for p in args.rows]
    parts += [f"--rows-above {value} {shlex.quote(p)}" for value, p in args.rows_above]
    parts += [f"--{name.replace('_', '-')} {shlex.quote(getattr(args, name))}" for name, default in (
        ("truth_column", "gt_rewrite_prompt"), ("prediction_column", "rewrite_prompt"), ("score_column", "score"))
        if getattr(args, name) != default]
    command = f"prh calibrate scale {' '.join(parts)} --embedder {shlex.quote(args.embedder)} --write"
    scale = fit_scale_map(files, embedder=embedder.name, embedder_fingerprint=embedder.fingerprint, command=command)
    update = write_scale_map(workspace.baselines_dir, scale, write=args.write)
    if args.json:
        print(json.dumps({**scale.to_dict(), "update": update.describe(), "written": update.written},
                         ensure_ascii=False))
        return 0
    from tabulate import tabulate

    rows = [[c.held_out, c.rows, "" if c.kept_above is None else f"> {c.kept_above:g}", f"{c.observed_mean:.4f}",
             f"{c.predicted_mean:.4f}", f"{c.mean_error:+.4f}", f"{c.pearson:.3f}", f"{c.mae:.4f}"]
            for c in scale.validation]
    print("cross-file validation (fitted on the other files, checked on this one):")
    print(tabulate(rows, headers=["held out", "rows", "kept", "st5 mean", "predicted", "error of the mean",
                                  "Pearson", "MAE"], tablefmt="github", disable_numparse=True))
    print(update.describe())
    return 0


def _threshold(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise HarnessError(f"--rows-above: the threshold must be a number, got {value!r}") from None
    if not 0.0 <= number < 1.0:
        raise HarnessError(f"--rows-above: the threshold must be in [0, 1), got {value}")
    return number


# -- prh probes -------------------------------------------------------------------------------------------
def cmd_probes_add(args) -> int:
    from harness.leaderboard.book import Probe, append_probe, parse_candidate_spec, short_name

    if args.public is None and args.private is None:
        raise HarnessError("give the submission's --public and/or --private leaderboard score")
    kind, submission = parse_candidate_spec(args.candidate)
    if kind == "candidate":  # a typo in a spec is an error now, not a failed calibration later
        with Workspace.from_args(args) as workspace:
            workspace.candidate(submission)
    probe = Probe(name=args.name or short_name(submission), submission=submission, public=args.public, kind=kind,
                  private=args.private, date=args.date, note=args.note, source=args.source)
    book = append_probe(args.book, probe)
    scores = ", ".join(f"{t} {probe.score(t):g}" for t in ("public", "private") if probe.score(t) is not None)
    print(f"added probe {probe.name!r} ({kind}: {short_name(submission)}; {scores}) to {args.book} "
          f"(now {len(book)} probes)")
    return 0


def cmd_probes_list(args) -> int:
    from harness.leaderboard.book import load_book, short_name

    book = load_book(args.book)
    if args.json:
        print(json.dumps([p.to_row() | {"usable": p.unusable_reason() is None} for p in book], ensure_ascii=False))
        return 0
    from tabulate import tabulate

    table = [[p.name, p.kind, short_name(p.submission), "" if p.public is None else f"{p.public:g}",
              "" if p.private is None else f"{p.private:g}", p.date, p.unusable_reason() or "usable"] for p in book]
    print(tabulate(table, headers=["name", "kind", "submission", "public", "private", "date", "fit"],
                   tablefmt="github", disable_numparse=True))
    print(f"{len(book)} probes in {args.book} ({book.hash})")
    return 0
