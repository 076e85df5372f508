"""`prh history list/prune` and `prh show`: reading and pruning the run history (and listing the submissions
`prh predict` wrote), and a candidate's rows.

A thin shell over the store and harness.report; importing it imports nothing heavy. Every command here
reads an existing store: a store path that does not exist is an error, never a new empty database.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone

from harness.errors import HarnessError
from harness.options import add_workspace_paths, positive_int
from harness.report.model import PAGE_ROWS, settings_label
from harness.store import RunRecord, SubmissionRecord
from harness.submission import rows_text
from harness.workspace import Workspace


def add_commands(subparsers) -> None:
    """Register `history` (list, prune) and `show` on the `prh` parser."""
    history = subparsers.add_parser("history", help="list or prune the run history (the caches stay)")
    actions = history.add_subparsers(dest="history_command", required=True)
    listing = actions.add_parser("list", help="list recorded runs, oldest first")
    _add_filters(listing)
    _add_store(listing)
    listing.set_defaults(handler=cmd_history_list)
    prune = actions.add_parser("prune", help="remove runs from the history; the prediction and embedding caches "
                                             "are left alone")
    _add_filters(prune)
    prune.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    _add_store(prune)
    prune.set_defaults(handler=cmd_history_prune)

    show = subparsers.add_parser("show", help="a candidate's worst rows and its rows that lost and gained most "
                                              "against the baseline")
    show.add_argument("candidate", help="the candidate's name as recorded (e.g. mean-prompt, mean:TEXT)")
    show.add_argument("--suite", default=None, help="only this suite (default: every suite it was scored on)")
    show.add_argument("--worst", type=positive_int, default=PAGE_ROWS, metavar="N",
                      help="rows per table (default: %(default)s)")
    show.add_argument("--embedder", default=None, help="only runs of this embedder (e.g. minilm)")
    _add_store(show)
    show.set_defaults(handler=cmd_show)


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--candidate", action="append", default=None, help="runs of this candidate (repeatable)")
    parser.add_argument("--suite", action="append", default=None,
                        help="runs on this suite: a suite name, or the path an ad-hoc file was recorded as (repeatable)")
    parser.add_argument("--embedder", default=None, help="runs of this embedder")
    parser.add_argument("--before", type=parse_date, default=None, metavar="DATE",
                        help="runs recorded before DATE (YYYY-MM-DD or an ISO time; UTC unless it says otherwise)")


def _add_store(parser: argparse.ArgumentParser) -> None:
    add_workspace_paths(parser.add_argument, only=("--store", "--suites-file"))


def parse_date(text: str) -> datetime:
    """A date or an ISO time; without a time zone it is UTC (the time `history list` shows)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2024-05-01 or 2024-05-01T12:00, got {text!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def select_runs(records: list[RunRecord], *, candidates: list[str] | None = None, suites: list[str] | None = None,
                embedder: str | None = None, before: datetime | None = None) -> list[RunRecord]:
    """The runs matching every filter given (a filter not given matches everything)."""
    cutoff = before.timestamp() if before is not None else None
    return [r for r in records
            if (not candidates or r.candidate in candidates) and (not suites or r.suite in suites)
            and (embedder is None or r.embedder == embedder) and (cutoff is None or r.created < cutoff)]


def _describe(record: RunRecord) -> str:
    when = datetime.fromtimestamp(record.created, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    kind = "" if record.suite_kind == "named" else " (file)"
    settings = settings_label(record)
    return (f"#{record.run_id}  {when} UTC  {record.candidate}  on {record.suite}{kind}  {record.embedder}  "
            f"{record.mean:.4f} (n={record.n}){'  [' + settings + ']' if settings else ''}")


def _open(args) -> Workspace:
    return Workspace.from_args(args)


def describe_submission(submission: SubmissionRecord) -> str:
    """One line per submission: when, which candidate, the file, the counts, and the gate it relied on."""
    when = datetime.fromtimestamp(submission.created, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    if submission.forced:
        gate = f"FORCED past the gate: {submission.refusal}"
    else:
        gate = f"gate passed: {submission.gate_summary}"
    return (f"submission #{submission.submission_id}  {when} UTC  {submission.candidate} "
            f"(fingerprint {submission.candidate_fingerprint[:12]})  → {submission.output_path}  "
            f"{rows_text(submission.n_rows)}, {submission.n_repaired} repaired  {gate}")


def cmd_history_list(args) -> int:
    with _open(args) as workspace:
        store = workspace.store(create=False)
        records = select_runs(store.runs(), candidates=args.candidate, suites=args.suite,
                              embedder=args.embedder, before=args.before)
        # submissions are not of a suite or an embedder: those filters select runs only
        submissions = [] if args.suite or args.embedder else [
            s for s in store.submissions() if (not args.candidate or s.candidate in args.candidate)
            and (args.before is None or s.created < args.before.timestamp())]
    for record in records:
        print(_describe(record))
    print(f"{len(records)} run(s)")
    for submission in submissions:
        print(describe_submission(submission))
    if submissions:
        print(f"{len(submissions)} submission(s)")
    return 0


def cmd_history_prune(args) -> int:
    if not (args.candidate or args.suite or args.embedder or args.before):
        raise HarnessError("prune needs at least one of --candidate, --suite, --embedder, --before "
                           "(it never empties the whole history by default)")
    with _open(args) as workspace:
        store = workspace.store(create=False)
        records = select_runs(store.runs(), candidates=args.candidate, suites=args.suite, embedder=args.embedder,
                              before=args.before)
        verb = "would remove" if args.dry_run else "removing"
        print(f"{verb} {len(records)} run(s):")
        for record in records:
            print(f"  {_describe(record)}")
        if args.dry_run:
            return 0
        removed = store.delete_runs(r.run_id for r in records if r.run_id is not None)
    print(f"removed {removed} run(s) and their rows from the history; the prediction and embedding caches are "
          "untouched. Run `prh leaderboard` to re-render the reports.")
    return 0


def cmd_show(args) -> int:
    from rich.console import Console

    from harness.report.model import build_page
    from harness.report.terminal import print_page

    with _open(args) as workspace:
        store = workspace.store(create=False)
        records = [r for r in store.runs() if args.embedder is None or r.embedder == args.embedder]
        known = sorted({r.candidate for r in records})
        if args.candidate not in known:
            raise HarnessError(f"no runs of candidate {args.candidate!r} in {workspace.store_path}; "
                               f"recorded: {', '.join(known) or '(none)'}")
        mine = [r for r in records if r.candidate == args.candidate]
        if args.suite is not None and args.suite not in {r.suite for r in mine}:
            raise HarnessError(f"candidate {args.candidate!r} has no run on suite {args.suite!r}; its suites: "
                               f"{', '.join(sorted({r.suite for r in mine}))}")
        page = build_page(mine, args.candidate, store.run_rows, suite=args.suite, limit=args.worst,
                          suite_order=list(workspace.suite_specs))
    from harness.report.terminal import output_width

    console = Console(width=output_width(sys.stdout.isatty(), piped=80))
    print_page(console, page, limit=args.worst)
    return 0
