"""The `prh` command: score, baseline, leaderboard, suites.

A thin shell over the library: parse arguments, build the Workspace (the same one the pytest plugin
uses), call it, print.
Errors a user can fix print one line and exit 2; a result with empty predictions prints and exits 1
(Kaggle would reject it), never passing itself off as complete.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from harness.errors import HarnessError, print_warnings
from harness.options import OneLineParser, add_workspace_paths, resamples
from harness.workspace import Workspace

EXIT_INCOMPLETE = 1
EXIT_USAGE = 2
#: the shell's code for a process stopped by Ctrl-C (128 + SIGINT)
EXIT_INTERRUPTED = 130


def _add_common(parser: argparse.ArgumentParser) -> None:
    """The workspace paths every command shares (defaults: the project in the current folder)."""
    add_workspace_paths(parser.add_argument)


def _add_scoring(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", required=True,
                        help="a suite name from the suites file, or else the path of a data file")
    parser.add_argument("--candidate", default=None, help="a candidate name, 'mean:TEXT' or 'file:PATH.csv'")
    parser.add_argument("--embedder", default="auto", help="auto, st5, minilm or path:DIR (default: %(default)s)")
    parser.add_argument("--truth-column", default=None, help="with a data file: the column holding the true prompt")
    parser.add_argument("--id-column", default=None, help="with a data file: the id column ('' numbers the rows)")
    parser.add_argument("--group-column", default=None, help="with a data file: a column to cluster the statistics by")
    parser.add_argument("--predictions", default=None,
                        help="a CSV/JSONL/parquet file of predictions; when it is the suite's own file, rows "
                             "align by position")
    parser.add_argument("--prediction-column", default="rewrite_prompt",
                        help="column of --predictions (default: %(default)s)")
    parser.add_argument("--prediction-id-column", default=None,
                        help="id column of --predictions (default: id; '' aligns rows by position, and the row "
                             "counts must match)")
    parser.add_argument("--resamples", type=resamples, default=10_000,
                        help="bootstrap resamples, at least 200 (default: %(default)s)")
    parser.add_argument("--ci-method", choices=("studentized", "bca", "percentile"), default="studentized",
                        help="bootstrap interval (default: %(default)s; bench/coverage.py measures all three)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--signed", action="store_true", help="keep the sign of the cosine (default: |cos|^3)")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="prh", description="Prompt-recovery harness: score candidates with SCS and bootstrap CIs.")
    commands = parser.add_subparsers(dest="command", required=True)

    score = commands.add_parser("score", help="score one candidate on one suite")
    _add_scoring(score)
    _add_common(score)
    score.add_argument("--json", action="store_true", help="print one JSON object")
    score.add_argument("--rows", action="store_true", help="with --json: include per-row scores")

    baseline = commands.add_parser("baseline", help="score a candidate and store it as the suite's baseline")
    _add_scoring(baseline)
    _add_common(baseline)
    baseline.add_argument("--force", action="store_true",
                          help="replace the baseline even with a significantly worse candidate")

    board = commands.add_parser("leaderboard", help="re-render the reports from the store's history")
    _add_common(board)

    suites = commands.add_parser("suites", help="list and validate every suite")
    _add_common(suites)
    for module in COMMAND_MODULES:
        # Each job's module (harness/commands/) registers its subcommands: `add_commands(subparsers)`
        # with `set_defaults(handler=...)`. They must import nothing heavy.
        importlib.import_module(module).add_commands(commands)
    return parser


def _suite_columns(args) -> dict[str, str]:
    columns = {}
    if args.truth_column:
        columns["rewrite_prompt"] = args.truth_column
    if args.id_column is not None:
        columns["id"] = args.id_column
    if args.group_column:
        columns["group"] = args.group_column
    return columns


def _candidate_for(args, suite):
    """`--candidate SPEC`, or `--predictions FILE` read by id, or by position when FILE is the suite's file."""
    if not args.predictions:
        if not args.candidate:
            raise HarnessError("--candidate (or --predictions) is required")
        return args.candidate
    if args.candidate:
        raise HarnessError("give either --candidate or --predictions, not both")
    from harness.candidates import PredictionsFileCandidate

    same_file = suite.source and Path(suite.source).resolve() == Path(args.predictions).resolve()
    id_column = args.prediction_id_column
    if id_column is None:
        id_column = "" if same_file else "id"
    return PredictionsFileCandidate(args.predictions, id_column=id_column, prediction_column=args.prediction_column)


def _score(args, workspace, *, quiet: bool):
    from harness.evaluation import BootstrapSettings
    from harness.progress import stage_progress

    suite = workspace.suite(args.suite, columns=_suite_columns(args) or None)
    print_warnings(workspace.embedder(args.embedder).warnings)
    bootstrap = BootstrapSettings(n_resamples=args.resamples, method=args.ci_method, seed=args.seed)
    with stage_progress(None if not quiet else False) as progress:
        return workspace.judge(_candidate_for(args, suite), suite, embedder=args.embedder, bootstrap=bootstrap,
                               signed=args.signed, on_progress=progress)


def _report_incomplete(result) -> int:
    ids = result.empty_prediction_ids
    print(f"error: {len(ids)} of {result.n} predictions are empty (Kaggle rejects such a submission); "
          f"the score above counts them as 0. Row ids: {', '.join(ids[:10])}{' …' if len(ids) > 10 else ''}",
          file=sys.stderr)
    return EXIT_INCOMPLETE


def cmd_score(args) -> int:
    with Workspace.from_args(args) as workspace:
        scored = workspace.record(_score(args, workspace, quiet=args.json), session="cli")
    result = scored.result
    if args.json:
        from harness.run import run_json

        note = None
        if scored.record.predicted_lb is None and not args.signed:
            from harness.leaderboard.prediction import model_note

            note = model_note(workspace.baselines_dir, result)
        print(json.dumps(run_json(scored.record, result, rows=args.rows, predicted_lb_note=note), ensure_ascii=False))
    else:
        from rich.console import Console

        from harness.report import output_width, rich_table

        Console(width=output_width(sys.stdout.isatty())).print(
            rich_table([scored.record], title=f"{result.candidate} on {result.suite}"))
    return 0 if result.complete else _report_incomplete(result)


def cmd_baseline(args) -> int:
    with Workspace.from_args(args) as workspace:
        scored = workspace.record(_score(args, workspace, quiet=False), session="cli")
        update = workspace.update_baseline(scored, force=args.force)
    if not update.written:
        print(f"error: {update.describe()}", file=sys.stderr)
        return EXIT_INCOMPLETE if not scored.result.complete else EXIT_USAGE
    print(f"baseline {update.describe()}")
    return 0


def cmd_leaderboard(args) -> int:
    from rich.console import Console

    from harness.report import output_width, print_ranking

    with Workspace.from_args(args) as workspace:
        replacing = workspace.reports_replacing()
        paths = workspace.write_reports()
        view = workspace.leaderboard()
    print_ranking(Console(width=output_width(sys.stdout.isatty()), highlight=False), view)
    print("reports written:")
    for path in paths:
        print(f"  {path}")
    if replacing:
        print_warnings([replacing])
    return 0


def cmd_suites(args) -> int:
    """Every suite, loaded and checked; every broken one named with its problem (exit 2 if any)."""
    from harness.data import check_suites

    workspace = Workspace.from_args(args)
    broken = []
    for check in check_suites(workspace.suites_file):
        if check.error is not None:
            broken.append(check.name)
            print(f"BROKEN {check.error}")
            continue
        suite = check.suite
        groups = len(set(suite.groups)) if suite.groups else 0
        print(f"{check.name}: {len(suite)} rows, {groups or 'no'} groups, {len(set(suite.prompts))} distinct "
              f"prompts ({suite.source})")
    if broken:
        print(f"error: {len(broken)} broken suite(s) in {workspace.suites_file}: {', '.join(broken)} (see BROKEN above)",
              file=sys.stderr)
        return EXIT_USAGE
    return 0


COMMANDS = {"score": cmd_score, "baseline": cmd_baseline, "leaderboard": cmd_leaderboard, "suites": cmd_suites}
COMMAND_MODULES = ("harness.commands.generate", "harness.commands.train", "harness.commands.optimize",
                   "harness.commands.calibrate", "harness.commands.history", "harness.commands.predict",
                   "harness.commands.deepeval_dataset")


def main(argv: list[str] | None = None, *, embedder_factory=None) -> int:
    """Run `prh`. `embedder_factory` (spec → EmbedderChoice) replaces the embedders every Workspace of the
    command builds: for tests and programs that run prh with their own model."""
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what a command that relaunches itself repeats
    args.embedder_factory = embedder_factory
    try:
        handler = getattr(args, "handler", None) or COMMANDS[args.command]
        return handler(args)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # a path the user gave that cannot be read or written: theirs to fix, not a bug
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        # Every answer, embedding and finished run is written to the store as it arrives, so a rerun
        # starts where this one stopped; what was not finished is not recorded.
        print(f"interrupted: prh {args.command} stopped; every prediction and embedding computed so far is kept "
              "in the store (a rerun reuses them), no unfinished run was recorded", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
