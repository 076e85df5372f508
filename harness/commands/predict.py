"""`prh predict` and `prh wheelhouse`: from a candidate that passed the gate to the file Kaggle takes.

`prh predict --candidate NAME --input test.csv --out submission.csv` answers the input's rows through the
Workspace, on exactly the path scoring takes (`Workspace.predict`: preflight, prediction cache, the
candidate's own formatting, batching and post-processing), then writes `id,rewrite_prompt` with
`harness.submission`. It writes only for a candidate whose latest gate run, found by fingerprint in the
store, passed (`harness.gate_history`); `--force` overrides, and says so in the output and in the record.
Every submission is recorded in the store (`prh history list`, the HTML report).

`prh wheelhouse --out DIR` collects the project and its runtime dependencies as wheels
(`harness.wheelhouse`) for an offline Kaggle notebook.

Importing this module imports nothing heavy.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from harness.errors import ConfigError

EXIT_REFUSED = 1


def add_commands(subparsers) -> None:
    """Register `predict` and `wheelhouse` on the `prh` parser."""
    from harness.submission import DEFAULT_FALLBACK

    predict = subparsers.add_parser(
        "predict", help="write a Kaggle submission (id,rewrite_prompt) with a candidate that passed the gate")
    predict.add_argument("--candidate", required=True, help="a candidate name, 'mean:TEXT' or 'file:PATH.csv'")
    predict.add_argument("--input", required=True,
                         help="the rows to answer: a CSV/JSONL/parquet file with Kaggle's test.csv columns "
                              "(id, original_text, rewritten_text; no rewrite_prompt needed), or a suite name")
    predict.add_argument("--out", required=True, help="the submission file to write (its folder must exist)")
    predict.add_argument("--column", action="append", default=[], metavar="FIELD=COLUMN", type=_column_mapping,
                         help="read FIELD (id, original_text, rewritten_text) from COLUMN of the input, as a suite's "
                              "`columns` does (repeatable; id= numbers the rows)")
    predict.add_argument("--fallback", default=DEFAULT_FALLBACK,
                         help="the prompt written for a row the candidate left empty or NaN-like (default: the "
                              "0.63 mean prompt, candidates.toml's mean-prompt)")
    predict.add_argument("--force", action="store_true",
                         help="write even when the candidate never passed the gate (said in the output and recorded)")
    for option, what in (("--suites-file", "suites file (default: suites.toml)"),
                         ("--candidates-file", "candidates file (default: candidates.toml)"),
                         ("--store", "SQLite store holding the gate runs (default: $PRH_STORE or .prh/store.sqlite)")):
        predict.add_argument(option, default=None, help=what)
    predict.set_defaults(handler=cmd_predict)

    wheelhouse = subparsers.add_parser(
        "wheelhouse", help="collect the project and its dependencies as wheels for an offline (Kaggle) install")
    wheelhouse.add_argument("--out", required=True, help="the folder to fill with wheels (created if missing)")
    wheelhouse.add_argument("--with-torch", action="store_true",
                            help="include torch (and its CUDA/triton wheels); by default it is left out, because "
                                 "a Kaggle GPU notebook already has a CUDA torch that must not be replaced")
    wheelhouse.add_argument("--extra", action="append", default=[], metavar="NAME",
                            help="also collect this optional-dependency group of the project (e.g. quant)")
    wheelhouse.add_argument("--python-version", default=None,
                            help="the notebook's Python, e.g. 3.10 (default: this interpreter's); binary wheels only")
    wheelhouse.add_argument("--platform", action="append", default=None,
                            help="the notebook's platform tag, e.g. manylinux2014_x86_64 (repeatable; default: this machine's)")
    wheelhouse.set_defaults(handler=cmd_wheelhouse)


def _column_mapping(text: str) -> tuple[str, str]:
    field, sep, column = text.partition("=")
    if not sep or not field.strip():
        raise argparse.ArgumentTypeError(f"expected FIELD=COLUMN (e.g. original_text=Original), got {text!r}")
    return field.strip(), column.strip()


def _check_out(path: Path) -> None:
    """A mistyped --out is an error, never a file in a folder nobody meant."""
    if path.is_dir():
        raise ConfigError(f"--out {path} is a folder; give the submission file's path (e.g. {path / 'submission.csv'})")
    if not path.parent.is_dir():
        raise ConfigError(f"--out {path}: the folder {path.parent} does not exist (check the path; it is not created)")


def _check_store(args) -> None:
    if args.store is not None and not Path(args.store).is_file():
        raise ConfigError(f"--store {args.store}: store not found (it holds the gate runs; check the path)")


def cmd_predict(args) -> int:
    from harness.gate_history import latest_gate_run, refusal
    from harness.store import SubmissionRecord
    from harness.submission import describe_existing, rows_text, submission_rows, write_submission
    from harness.workspace import Workspace

    out = Path(args.out).expanduser()
    _check_out(out)
    _check_store(args)
    columns = dict(args.column)
    with Workspace.from_args(args) as workspace:
        if not workspace.is_named_suite(args.input) and not Path(args.input).expanduser().is_file():
            raise ConfigError(f"--input {args.input}: file not found (nor a suite of {workspace.suites_file})")
        rows = workspace.suite(args.input, columns=columns or None, needs_truth=False)
        candidate = workspace.candidate(args.candidate)
        history = workspace.store(create=False).runs() if workspace.store_path.is_file() else []
        gate = latest_gate_run(history, candidate.fingerprint)
        refused = refusal(gate, args.candidate)
        if refused and not args.force:
            print(f"refused: {refused}", file=sys.stderr)
            return EXIT_REFUSED
        print(f"candidate {args.candidate} (fingerprint {candidate.fingerprint[:12]})")
        print(f"FORCED (--force): writing although {refused}" if refused else f"gate: passed, {gate.summary()}")
        learned = set(getattr(candidate, "train_suites", ()) or ())
        uncovered = [name for name in workspace.suite_specs if gate and name not in gate.suites and name not in learned]
        if uncovered:
            print(f"note: that gate run did not score suite(s) {', '.join(uncovered)} of {workspace.suites_file}")

        started = time.perf_counter()
        answers, from_cache = _answer(workspace, candidate, rows)
        print(f"answered {rows_text(len(rows))} of {rows.source} in {time.perf_counter() - started:.1f} s"
              + (f" ({from_cache} from the prediction cache)" if from_cache else ""))

        prepared = submission_rows(rows.ids, answers, fallback=args.fallback)
        if prepared.n_repaired:
            shown = ", ".join(repr(i) for i in prepared.repaired_ids[:10])
            print(f"repaired {prepared.n_repaired} empty or NaN-like answer(s) with the fallback "
                  f"{args.fallback!r}: ids {shown}{' …' if prepared.n_repaired > 10 else ''}")
        else:
            print("repaired 0 answers (none was empty or NaN-like)")
        old = describe_existing(out)
        written = write_submission(out, prepared)
        print(f"checked: {written.n_rows} ids, each once, in input order; read back with "
              f"{' and '.join(written.checked_with)}: identical")
        new = f"{rows_text(written.n_rows)}, sha256 {written.sha256[:12]}"
        print(f"replaced {out}: {old} → {new}" if old else f"wrote {out} ({new})")
        record = SubmissionRecord(
            candidate=args.candidate, candidate_fingerprint=candidate.fingerprint,
            candidate_spec=getattr(candidate, "spec", args.candidate), output_path=str(out.resolve()),
            output_sha256=written.sha256, input_path=str(Path(rows.source).resolve()) if rows.source else args.input,
            input_fingerprint=rows.fingerprint, n_rows=written.n_rows, n_repaired=prepared.n_repaired,
            fallback=args.fallback, forced=bool(refused), refusal=refused, repaired_ids=prepared.repaired_ids[:1000],
            **_gate_fields(gate))
        number = workspace.store().record_submission(record)
        print(f"recorded submission #{number} in {workspace.store_path} (`prh history list`; `prh leaderboard` "
              "lists it in reports/index.html)")
    return 0


def _answer(workspace, candidate, rows) -> tuple[list[str], int]:
    """The candidate's answers (a progress bar on a terminal) and how many came from the prediction cache
    (the first progress report counts them)."""
    from harness.progress import stage_progress

    first_report: list[int] = []
    with stage_progress() as progress:
        def on_progress(done: int, total: int) -> None:
            if not first_report:
                first_report.append(done)
            progress("predict", done, total)

        answers = workspace.predict(candidate, rows, on_progress=on_progress)
    return answers, first_report[0] if first_report else 0


def _gate_fields(gate) -> dict:
    """What a submission record keeps of the gate run it relied on (nothing when it was never gated)."""
    if gate is None:
        return {}
    return {"gate_session": gate.session, "gate_run_ids": gate.run_ids, "gate_created": gate.created,
            "gate_summary": gate.summary()}


def cmd_wheelhouse(args) -> int:
    from harness.wheelhouse import build_wheelhouse

    result = build_wheelhouse(Path(args.out), with_torch=args.with_torch, extras=args.extra,
                              python_version=args.python_version, platforms=args.platform,
                              log=lambda line: print(line, flush=True))
    print(result.describe())
    return 0
