"""pytest plugin: `pytest suites/ --candidate=NAME` scores a candidate on every suite.

Registered through the `pytest11` entry point, so every pytest run in an environment with the harness
installed sees the options. It stays out of the way of other projects: importing it imports nothing but
pytest and the standard library, and it only does work when a test asks for its fixtures (the checks in
`suites/`).

The candidate is scored on the suites as one family, when the first check needs a result: every suite
is evaluated and compared with its stored baseline, the regression verdicts are corrected across the
family (Holm by default, `--gate-correction none` for per-suite gating), baselines are updated when
asked, and each run is recorded in the store. Each suite then has one test item per check. Mistakes in
the command line or the configuration (unknown suite or candidate, invalid TOML, a missing model) stop
the run with one line and pytest's usage-error exit code 4. No scoring logic lives here: it maps the
Workspace's results and verdicts onto pass, fail and skip.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.errors import HarnessError
from harness.options import add_workspace_paths, non_negative_float, resamples, workspace_paths
from harness.workspace import CORRECTIONS, DEFAULT_TOLERANCE

if TYPE_CHECKING:
    from harness.baselines import BaselineUpdate
    from harness.workspace import Scored, Workspace

DEFAULT_CANDIDATE = "mean-prompt"
#: options whose value is a number, with the check that parses it
_NUMBER_OPTIONS = {"--bootstrap-resamples": resamples, "--regression-tolerance": non_negative_float}
_SESSION_KEY = pytest.StashKey["PrhSession"]()
_UPDATE_MODES = ("on", "force")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("prh", "prompt-recovery harness (scores candidates on suites)")
    group.addoption("--candidate", default=DEFAULT_CANDIDATE,
                    help="candidate to score: a name from candidates.toml, 'mean:TEXT' or 'file:PATH.csv' "
                         f"(default: {DEFAULT_CANDIDATE})")
    group.addoption("--embedder", default="auto",
                    help="auto (st5 when available locally, else minilm), st5, minilm, or path:DIR")
    group.addoption("--suite", action="append", default=None, dest="prh_suites",
                    help="score only this suite (repeatable; default: every suite in the suites file)")
    add_workspace_paths(group.addoption, dest_prefix="prh_", root="<rootdir>/")
    group.addoption("--update-baselines", nargs="?", const="on", default=None, metavar="force",
                    help="accept the candidate as the baseline of every suite it scores; the summary lists "
                         "old → new. A candidate significantly worse than the current baseline is refused "
                         "unless --update-baselines=force")
    # Numbers are parsed in `validate` with harness.options' checks: a mistake is then pytest's one-line
    # usage error (exit 4) naming the option, not argparse's usage block.
    group.addoption("--regression-tolerance", default=DEFAULT_TOLERANCE,
                    help="a regression is a paired CI entirely below -TOL, TOL >= 0 (default: %(default)s)")
    group.addoption("--gate-correction", choices=CORRECTIONS, default="holm",
                    help="multiple-suite correction of the regression gate (default: %(default)s)")
    group.addoption("--bootstrap-resamples", default=10_000,
                    help="bootstrap resamples, at least 200 (default: %(default)s)")
    group.addoption("--bootstrap-seed", type=int, default=0)
    group.addoption("--ci-method", choices=("studentized", "bca", "percentile"), default="studentized",
                    help="bootstrap interval of each suite's score (default: %(default)s; bench/coverage.py)")


@dataclass
class SuiteOutcome:
    """What the checks of one suite look at."""

    suite: str
    scored: Scored | None = None
    error: str | None = None
    not_applicable: str | None = None
    baseline_update: BaselineUpdate | None = None

    @property
    def result(self):
        return self.scored.result if self.scored else None

    @property
    def comparison(self):
        return self.scored.comparison if self.scored else None


class PrhSession:
    """Per-process state: the Workspace, the suites to run, and one outcome per suite (scored once)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.session_id = getattr(config, "workerinput", {}).get("prh_session") or uuid.uuid4().hex
        self.usage_error: str | None = None
        self.embedder_warnings: tuple[str, ...] = ()
        self.outcomes: dict[str, SuiteOutcome] | None = None
        self.report_paths: list[Path] = []
        self.report_error: str | None = None
        self.report_replaced: str | None = None
        self._workspace: Workspace | None = None
        self._names: list[str] | None = None

    @property
    def workspace(self) -> Workspace:
        if self._workspace is None:
            from harness.workspace import Workspace

            self._workspace = Workspace.from_dir(Path(self.config.rootpath),
                                                 **workspace_paths(self.config.option, dest_prefix="prh_"))
        return self._workspace

    def suite_names(self) -> list[str]:
        if self._names is None:
            self._names = self.workspace.suite_names(self.config.option.prh_suites)
        return self._names

    def validate(self) -> None:
        """Everything that is not the candidate's quality, checked before any test: the options, every
        suite's data, the store, the embedder, and whether the candidate can answer (its model loads, its
        endpoint answers). Raises HarnessError naming the first problem (the run stops with exit 4)."""
        option = self.config.option
        for name, parse in _NUMBER_OPTIONS.items():
            dest = name.lstrip("-").replace("-", "_")
            try:
                setattr(option, dest, parse(str(getattr(option, dest))))
            except argparse.ArgumentTypeError as exc:
                raise HarnessError(f"{name}: {exc}") from None
        mode = option.update_baselines
        if mode is not None and mode not in _UPDATE_MODES:
            raise HarnessError(f"--update-baselines takes no value or 'force', got {mode!r}")
        workspace = self.workspace
        for name in self.suite_names():
            workspace.suite(name)  # a missing, empty or malformed data file stops here, not in every check
        workspace.store()
        self.embedder_warnings = workspace.embedder(option.embedder).warnings
        workspace.check_candidate(option.candidate, self.suite_names())

    def close(self) -> None:
        if self._workspace is not None:
            self._workspace.close()

    # -- scoring -----------------------------------------------------------------------------------------
    def outcome(self, suite_name: str) -> SuiteOutcome:
        if self.outcomes is None:
            self.outcomes = self._score_family()
        return self.outcomes[suite_name]

    def _score_family(self) -> dict[str, SuiteOutcome]:
        from harness.candidates import MissingPredictionsError
        from harness.errors import LearnedFromSuiteError
        from harness.evaluation import BootstrapSettings

        option = self.config.option
        workspace = self.workspace
        bootstrap = BootstrapSettings(n_resamples=option.bootstrap_resamples, method=option.ci_method,
                                      seed=option.bootstrap_seed)
        outcomes = {name: SuiteOutcome(name) for name in self.suite_names()}
        judged: list[Scored] = []
        for name, outcome in outcomes.items():
            try:
                with self._progress() as progress:
                    judged.append(workspace.judge(option.candidate, name, embedder=option.embedder,
                                                  bootstrap=bootstrap, tolerance=option.regression_tolerance,
                                                  on_progress=progress))
            except MissingPredictionsError as exc:
                if len(exc.missing) != exc.total:
                    outcome.error = str(exc)
                else:
                    outcome.not_applicable = f"{option.candidate} has no prediction for any row of suite '{name}'"
            except LearnedFromSuiteError as exc:
                outcome.not_applicable = str(exc)
            except HarnessError as exc:
                outcome.error = str(exc)
        gated = workspace.gate(judged, option.gate_correction)
        if option.update_baselines is not None:  # all or nothing: one refused suite leaves every file as it was
            updates = workspace.update_baselines(gated, force=option.update_baselines == "force")
            for update in updates:
                outcomes[update.suite].baseline_update = update
        for scored in gated:
            outcomes[scored.result.suite].scored = workspace.record(scored, session=self.session_id,
                                                                    once_per_session=True)
        return outcomes

    @contextmanager
    def _progress(self):
        """A rich progress bar on the real terminal while embedding (pytest captures output inside tests,
        so capturing is suspended for it); nothing at all when no person is watching (CI, xdist)."""
        from harness.progress import person_watching, stage_progress

        stream = sys.__stderr__
        watching = person_watching(stream) and not _is_worker(self.config)
        capture = self.config.pluginmanager.getplugin("capturemanager")
        if not watching or capture is None:
            with stage_progress(False) as progress:
                yield progress
            return
        with capture.global_and_fixture_disabled(), stage_progress(True, stream=stream) as progress:
            yield progress


def _session(config: pytest.Config) -> PrhSession:
    if _SESSION_KEY not in config.stash:
        config.stash[_SESSION_KEY] = PrhSession(config)
    return config.stash[_SESSION_KEY]


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "prh_suite(name): a check of one prompt-recovery suite")
    if not config.pluginmanager.hasplugin("xdist"):
        config.addinivalue_line("markers", "xdist_group(name): group tests on one xdist worker")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """xdist: every worker records its runs under the controller's session id."""
    node.workerinput["prh_session"] = _session(node.config).session_id


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One item per suite. A configuration error is kept and raised as a usage error once collection ends
    (raised here, pytest would print it as a collection error with a long traceback)."""
    if "prh_suite" not in metafunc.fixturenames:
        return
    session = _session(metafunc.config)
    names: list[str] = []
    if session.usage_error is None:
        try:
            names = session.suite_names()
        except HarnessError as exc:
            session.usage_error = str(exc)
    params = [pytest.param(name, marks=pytest.mark.xdist_group(name=f"prh-{name}")) for name in names]
    metafunc.parametrize("prh_suite", params, ids=names)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Check the suites, the candidate and the embedder before any test runs: a mistake there is one line
    and exit code 4, not one failed test per check."""
    if not any("prh_suite" in getattr(item, "fixturenames", ()) for item in items):
        return
    state = _session(config)
    if state.usage_error is None:
        try:
            state.validate()
        except HarnessError as exc:
            state.usage_error = str(exc)
        except OSError as exc:  # a path given on the command line that cannot be read or written
            state.usage_error = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    if state.usage_error is not None:
        raise pytest.UsageError(state.usage_error)


@pytest.fixture(scope="session")
def prh_session(request: pytest.FixtureRequest) -> PrhSession:
    return _session(request.config)


@pytest.fixture
def prh_outcome(prh_session: PrhSession, prh_suite: str) -> SuiteOutcome:
    """The scored suite (the family is scored once, shared by every check)."""
    return prh_session.outcome(prh_suite)


def _require_scored(outcome: SuiteOutcome) -> None:
    """A data error fails each check with that one clear message (no traceback); a suite the candidate has
    no answers for at all (another suite's submission file) or learned from is skipped."""
    if outcome.error:
        pytest.fail(outcome.error, pytrace=False)
    if outcome.not_applicable:
        pytest.skip(outcome.not_applicable)


def check_predictions_complete(outcome: SuiteOutcome) -> None:
    """Kaggle's scorer fails a submission with any empty or missing prediction: so does this check."""
    _require_scored(outcome)
    result = outcome.result
    if result.empty_prediction_ids:
        ids = result.empty_prediction_ids
        shown = ", ".join(repr(i) for i in ids[:10]) + (" …" if len(ids) > 10 else "")
        pytest.fail(f"suite '{result.suite}': {len(ids)} of {result.n} predictions by '{result.candidate}' are "
                    f"empty (Kaggle rejects such a submission); row ids: {shown}", pytrace=False)


def check_gate(outcome: SuiteOutcome) -> None:
    """The regression gate's verdict for one suite (`Workspace.gate` corrected it over the run's suites).
    Fails when the (corrected) paired CI of (candidate − baseline) lies entirely below −tolerance, or when
    replacing the baseline was refused; passes when the candidate was just accepted as the baseline."""
    _require_scored(outcome)
    update = outcome.baseline_update
    if update is not None and update.refused:
        pytest.fail(f"baseline not replaced: {update.describe()}", pytrace=False)
    if update is not None and update.written:
        return  # the candidate is now the baseline; the summary says old → new
    # held back (another suite was refused): this suite is judged against its unchanged baseline
    comparison = outcome.comparison
    if comparison is None or comparison.status == "no-baseline":
        pytest.skip(comparison.message if comparison else f"suite '{outcome.suite}' has no baseline")
    if comparison.status == "not-judged":
        pytest.skip(comparison.message)
    if comparison.fails:
        pytest.fail(comparison.message, pytrace=False)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Render the reports from the store's whole history when this run scored something, also when checks
    failed."""
    config = session.config
    state = _session(config)
    try:
        if not _scored_here(state):
            return
        if not state.workspace.store(create=False).runs(session=state.session_id):
            return  # this pytest run scored nothing: leave the reports alone
        state.report_replaced = state.workspace.reports_replacing()
        state.report_paths = state.workspace.write_reports()
    except Exception as exc:  # a broken report must not hide the test results
        state.report_error = f"{type(exc).__name__}: {exc}"


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    state = _session(config)
    try:
        _summary(terminalreporter, state)
    finally:
        state.close()


def _scored_here(state: PrhSession) -> bool:
    """Whether this process should report: it scored suites itself, or it is the xdist controller of
    workers that may have (they record under its session id). Other pytest runs are left alone."""
    config = state.config
    if _is_worker(config) or state.usage_error:
        return False
    distributed = getattr(config.option, "dist", "no") != "no"
    return (state.outcomes is not None or distributed) and state.workspace.store_path.exists()


def _summary(terminalreporter, state: PrhSession) -> None:
    if not _scored_here(state):
        return
    records = state.workspace.store(create=False).runs(session=state.session_id)
    updates = [o.baseline_update for o in (state.outcomes or {}).values() if o.baseline_update is not None]
    if not records and not updates:
        return
    from rich.console import Console

    from harness.report import latest_runs, output_width, rich_table, summary_notes, wrap_note

    # Not a terminal (CI logs): 100 columns rather than squeezing into 80 or sprawling; $COLUMNS wins.
    width = output_width(terminalreporter.isatty, terminalreporter._tw.fullwidth)
    console = Console(file=terminalreporter._tw._file, force_terminal=terminalreporter.isatty, width=width)
    terminalreporter.section("prompt-recovery scores")
    latest = latest_runs(records)
    # the embedder's warning is printed once below, so the table does not repeat it
    console.print(rich_table(latest, title="this run", note_not_comparable=False))

    def say(line: str, **markup: bool) -> None:
        terminalreporter.write_line(wrap_note(line, width), **markup)

    for note in summary_notes(latest):
        say(note)
    outcomes = list((state.outcomes or {}).values())
    for outcome in outcomes:
        if outcome.not_applicable:
            say(f"not applicable, skipped: {outcome.suite}: {outcome.not_applicable}")
    for outcome in outcomes:  # the reason of a "not judged" skip, without -rs
        if outcome.comparison is not None and outcome.comparison.status == "not-judged":
            say(f"not judged, skipped: {outcome.suite}: {outcome.comparison.message}", yellow=True)
    warnings = list(state.embedder_warnings)
    if not warnings and any(not record.comparable_with_kaggle for record in records):
        from harness.embedders import NOT_COMPARABLE_WARNING

        warnings.append(NOT_COMPARABLE_WARNING)
    for warning in warnings:  # once, not on every row
        say(f"WARNING: {warning}", red=True, bold=True)
    refused = [update.suite for update in updates if update.refused]
    if refused:
        say(f"baselines unchanged: {', '.join(refused)} refused, so no baseline file was written (all or nothing; "
            "--update-baselines=force writes them all)", red=True, bold=True)
    for update in updates:
        say(("baseline " if update.written else "") + update.describe(), red=not update.written,
            green=update.written)
    if state.report_paths:
        pages = [p for p in state.report_paths if p.parent.name == "candidates" and p.suffix == ".md"]
        main = [p for p in state.report_paths if p.parent.name != "candidates"]
        line = "reports written: " + ", ".join(str(p) for p in main)
        if pages:
            line += f"; {len(pages)} candidate page(s) in {pages[0].parent}"
        say(line)
    if state.report_replaced:
        say(f"WARNING: {state.report_replaced}", yellow=True)
    if state.report_error:
        terminalreporter.write_line(f"could not write the leaderboard: {state.report_error}", red=True)
