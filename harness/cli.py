"""The `prh` command: score, baseline, leaderboard, suites.

A thin shell over the library: parse arguments, call the same functions the pytest plugin calls, print.
Errors a user can fix print one line and exit 2; a result with empty predictions prints and exits 1
(Kaggle would reject it), never passing itself off as complete.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
import warnings
from pathlib import Path

from harness.errors import HarnessError

EXIT_INCOMPLETE = 1
EXIT_USAGE = 2


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suites-file", default="suites.toml", help="suites file (default: %(default)s)")
    parser.add_argument("--candidates-file", default="candidates.toml", help="candidates file (default: %(default)s)")
    parser.add_argument("--store", default=None, help="SQLite store (default: $PRH_STORE or .prh/store.sqlite)")
    parser.add_argument("--baselines-dir", default="baselines", help="baselines folder (default: %(default)s)")


def _add_scoring(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", required=True, help="a suite name from the suites file, or a data file")
    parser.add_argument("--candidate", default=None, help="a candidate name, 'mean:TEXT' or 'file:PATH.csv'")
    parser.add_argument("--embedder", default="auto", help="auto, st5, minilm or path:DIR (default: %(default)s)")
    parser.add_argument("--truth-column", default=None, help="with a data file: the column holding the true prompt")
    parser.add_argument("--id-column", default=None, help="with a data file: the id column ('' numbers the rows)")
    parser.add_argument("--group-column", default=None, help="with a data file: a column to cluster the statistics by")
    parser.add_argument("--predictions", default=None, help="a CSV with predictions (may be the suite file itself)")
    parser.add_argument("--prediction-column", default="rewrite_prompt", help="column of --predictions (default: %(default)s)")
    parser.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (default: %(default)s)")
    parser.add_argument("--ci-method", choices=("bca", "percentile"), default="bca")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--signed", action="store_true", help="keep the sign of the cosine (default: |cos|^3)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prh", description="Prompt-recovery harness: score candidates with SCS and bootstrap CIs.")
    commands = parser.add_subparsers(dest="command", required=True)

    score = commands.add_parser("score", help="score one candidate on one suite")
    _add_scoring(score)
    _add_common(score)
    score.add_argument("--json", action="store_true", help="print one JSON object")
    score.add_argument("--rows", action="store_true", help="with --json: include per-row scores")

    baseline = commands.add_parser("baseline", help="score a candidate and store it as the suite's baseline")
    _add_scoring(baseline)
    _add_common(baseline)

    board = commands.add_parser("leaderboard", help="re-render reports/ from the store's history")
    board.add_argument("--store", default=None)
    board.add_argument("--report-dir", default="reports")

    suites = commands.add_parser("suites", help="list and validate the suites")
    suites.add_argument("--suites-file", default="suites.toml")
    for module in COMMAND_MODULES:
        # Each package (generate, train, optimize) owns its subcommands: `add_commands(subparsers)`
        # registers them with `set_defaults(handler=...)`. Their modules must import nothing heavy.
        package = module.rsplit(".", 1)[0]
        if importlib.util.find_spec(package) is not None and importlib.util.find_spec(module) is not None:
            importlib.import_module(module).add_commands(commands)
    return parser


def _suite_for(args):
    from harness.data import load_suite, load_suite_specs, spec_for_file

    path = Path(args.suite)
    specs = load_suite_specs(args.suites_file) if Path(args.suites_file).is_file() else {}
    if args.suite in specs and not path.is_file():
        return load_suite(specs[args.suite]), True
    if not path.is_file():
        known = ", ".join(specs) or "(no suites file)"
        raise HarnessError(f"--suite {args.suite!r} is neither a suite in {args.suites_file} ({known}) nor a file")
    columns = {}
    if args.truth_column:
        columns["rewrite_prompt"] = args.truth_column
    if args.id_column is not None:
        columns["id"] = args.id_column
    if args.group_column:
        columns["group"] = args.group_column
    # A raw file often has only ids and prompts: texts are needed by model candidates, not for scoring.
    for field in ("original_text", "rewritten_text"):
        columns.setdefault(field, "")
    return load_suite(spec_for_file(path, columns)), False


def _candidate_for(args, store):
    from harness.candidates import (
        CandidateContext,
        PredictionsFileCandidate,
        load_candidate_registry,
        resolve_candidate,
    )
    from harness.data import load_suite_specs

    if args.predictions:
        if args.candidate:
            raise HarnessError("give either --candidate or --predictions, not both")
        return PredictionsFileCandidate(args.predictions, id_column=args.id_column or "id",
                                        prediction_column=args.prediction_column)
    if not args.candidate:
        raise HarnessError("--candidate (or --predictions) is required")
    registry_path = Path(args.candidates_file)
    registry = load_candidate_registry(registry_path if registry_path.is_file() else None)
    suites = load_suite_specs(args.suites_file) if Path(args.suites_file).is_file() else {}
    return resolve_candidate(args.candidate, registry, CandidateContext(store=store, suites=suites))


def _score(args, *, quiet: bool):
    from harness.baselines import compare_with_baseline, load_baseline
    from harness.embedders import make_embedder
    from harness.evaluate import BootstrapSettings, evaluate
    from harness.progress import stage_progress
    from harness.store import Store

    suite, named = _suite_for(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        embedder = make_embedder(args.embedder)
    for warning in caught:
        print(f"WARNING: {warning.message}", file=sys.stderr)
    bootstrap = BootstrapSettings(n_resamples=args.resamples, method=args.ci_method, seed=args.seed)
    with Store(args.store) as store, stage_progress(None if not quiet else False) as progress:
        candidate = _candidate_for(args, store)
        result = evaluate(candidate, suite, embedder, store=store, bootstrap=bootstrap, signed=args.signed,
                          on_progress=progress)
        comparison = None
        if named:
            baseline = load_baseline(args.baselines_dir, result.embedder, suite.name)
            comparison = compare_with_baseline(result, baseline, bootstrap=bootstrap)
        store.record_run(result.to_run_record(session="cli", baseline=comparison.to_dict() if comparison else None))
    return result, comparison


def cmd_score(args) -> int:
    result, comparison = _score(args, quiet=args.json)
    if args.json:
        data = result.to_dict(rows=args.rows)
        data["baseline"] = comparison.to_dict() if comparison else None
        print(json.dumps(data, ensure_ascii=False))
    else:
        from rich.console import Console

        from harness.report import rich_table

        # Piped output (logs, CI) is rendered wide instead of squeezing every column into 80 characters.
        Console(width=None if sys.stdout.isatty() else 160).print(rich_table([result.to_run_record(baseline=comparison.to_dict() if comparison else None)],
                                   title=f"{result.candidate} on {result.suite}"))
        if not result.comparable_with_kaggle:
            from harness.embedders import NOT_COMPARABLE_WARNING

            print(f"WARNING: {NOT_COMPARABLE_WARNING}", file=sys.stderr)
    if not result.complete:
        ids = result.empty_prediction_ids
        print(f"error: {len(ids)} of {result.n} predictions are empty (Kaggle rejects such a submission); "
              f"the score above counts them as 0. Row ids: {', '.join(ids[:10])}{' …' if len(ids) > 10 else ''}",
              file=sys.stderr)
        return EXIT_INCOMPLETE
    return 0


def cmd_baseline(args) -> int:
    from harness.baselines import write_baseline

    result, _ = _score(args, quiet=False)
    if not result.complete:
        print(f"error: not storing a baseline with {len(result.empty_prediction_ids)} empty predictions", file=sys.stderr)
        return EXIT_INCOMPLETE
    path = write_baseline(args.baselines_dir, result)
    print(f"baseline for suite '{result.suite}' under embedder '{result.embedder}': {result.candidate} "
          f"{result.mean:.4f} [{result.interval.low:.4f}, {result.interval.high:.4f}] → {path}")
    return 0


def cmd_leaderboard(args) -> int:
    from harness.report import write_reports
    from harness.store import Store

    with Store(args.store) as store:
        paths = write_reports(store.runs(), args.report_dir)
    for path in paths:
        print(path)
    return 0


def cmd_suites(args) -> int:
    from harness.data import load_suite, load_suite_specs

    for spec in load_suite_specs(args.suites_file).values():
        suite = load_suite(spec)
        groups = len(set(suite.groups)) if suite.groups else 0
        print(f"{spec.name}: {len(suite)} rows, {groups or 'no'} groups, {len(set(suite.prompts))} distinct prompts "
              f"({spec.path})")
    return 0


COMMANDS = {"score": cmd_score, "baseline": cmd_baseline, "leaderboard": cmd_leaderboard, "suites": cmd_suites}
COMMAND_MODULES = ("harness.generate.cli", "harness.train.cli", "harness.optimize.cli")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        handler = getattr(args, "handler", None) or COMMANDS[args.command]
        return handler(args)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
