"""pytest plugin: `pytest suites/ --candidate=NAME` scores a candidate on every suite.

Registered through the `pytest11` entry point, so any pytest run in an environment with the harness
installed has the options; it only does work when a test asks for its fixtures (the checks in
`suites/`). Per suite there is one test item per check (complete predictions, no regression against the
stored baseline); scoring happens once per suite and is shared by its checks. The run is recorded in the
store, and at the end of the session the leaderboard under `--report-dir` is re-rendered from the whole
history, whether tests passed or not. No scoring logic lives here: it maps results and verdicts onto
pass, fail and skip.
"""

from __future__ import annotations

import os
import sys
import uuid
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.baselines import (
    DEFAULT_TOLERANCE,
    Comparison,
    compare_with_baseline,
    load_baseline,
    write_baseline,
)
from harness.candidates import (
    CandidateContext,
    MissingPredictionsError,
    load_candidate_registry,
    resolve_candidate,
)
from harness.data import load_suite, load_suite_specs, select_specs
from harness.embedders import NOT_COMPARABLE_WARNING, make_embedder
from harness.errors import HarnessError, LearnedFromSuiteError
from harness.evaluate import BootstrapSettings, Result, evaluate
from harness.progress import person_watching, stage_progress
from harness.store import STORE_ENV, Store

DEFAULT_CANDIDATE = "mean-prompt"
_SESSION_KEY = pytest.StashKey["PrhSession"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("prh", "prompt-recovery harness (scores candidates on suites)")
    group.addoption("--candidate", default=DEFAULT_CANDIDATE,
                    help="candidate to score: a name from candidates.toml, 'mean:TEXT' or 'file:PATH.csv' "
                         f"(default: {DEFAULT_CANDIDATE})")
    group.addoption("--embedder", default="auto",
                    help="auto (st5 when available locally, else minilm), st5, minilm, or path:DIR")
    group.addoption("--suites-file", default=None, help="suites file (default: <rootdir>/suites.toml)")
    group.addoption("--suite", action="append", default=None, dest="prh_suites",
                    help="score only this suite (repeatable; default: every suite in the suites file)")
    group.addoption("--candidates-file", default=None, help="candidates file (default: <rootdir>/candidates.toml)")
    group.addoption("--baselines-dir", default=None, help="baselines folder (default: <rootdir>/baselines)")
    group.addoption("--update-baselines", action="store_true", default=False,
                    help="accept the current candidate as the baseline of every suite it scores")
    group.addoption("--report-dir", default=None, help="where the leaderboard is written (default: <rootdir>/reports)")
    group.addoption("--store", default=None, dest="prh_store",
                    help=f"SQLite store path (default: ${STORE_ENV} or <rootdir>/.prh/store.sqlite)")
    group.addoption("--regression-tolerance", type=float, default=DEFAULT_TOLERANCE,
                    help="a regression is a paired CI entirely below -TOL (default: %(default)s)")
    group.addoption("--bootstrap-resamples", type=int, default=10_000)
    group.addoption("--bootstrap-seed", type=int, default=0)
    group.addoption("--ci-method", choices=("bca", "percentile"), default="bca")


@dataclass
class SuiteOutcome:
    """What the checks of one suite look at."""

    suite: str
    result: Result | None = None
    comparison: Comparison | None = None
    error: str | None = None
    not_applicable: str | None = None


class PrhSession:
    """Per-process state: lazily built embedder, candidate and store; one outcome per suite."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        root = Path(config.rootpath)
        option = config.option
        self.suites_file = Path(option.suites_file) if option.suites_file else root / "suites.toml"
        default_candidates = root / "candidates.toml"
        self.candidates_file = (Path(option.candidates_file) if option.candidates_file
                                else default_candidates if default_candidates.is_file() else None)
        self.baselines_dir = Path(option.baselines_dir) if option.baselines_dir else root / "baselines"
        self.report_dir = Path(option.report_dir) if option.report_dir else root / "reports"
        self.store_path = Path(option.prh_store or os.environ.get(STORE_ENV) or root / ".prh" / "store.sqlite")
        self.session_id = getattr(config, "workerinput", {}).get("prh_session") or uuid.uuid4().hex
        self.bootstrap = BootstrapSettings(n_resamples=option.bootstrap_resamples, method=option.ci_method,
                                           seed=option.bootstrap_seed)
        self.outcomes: dict[str, SuiteOutcome] = {}
        self.embedder_warning: str | None = None
        self._embedder = None
        self._candidate = None
        self._store: Store | None = None
        self._specs = None

    # -- lazily built parts ------------------------------------------------------------------------
    def suite_names(self) -> list[str]:
        if self._specs is None:
            self._specs = select_specs(load_suite_specs(self.suites_file), self.config.option.prh_suites)
        return [spec.name for spec in self._specs]

    def _spec(self, name: str):
        self.suite_names()
        return next(spec for spec in self._specs if spec.name == name)

    @property
    def embedder(self):
        if self._embedder is None:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                self._embedder = make_embedder(self.config.option.embedder)
            if caught or not self._embedder.comparable_with_kaggle:
                self.embedder_warning = str(caught[0].message) if caught else getattr(self._embedder, "note", "")
        return self._embedder

    @property
    def candidate(self):
        if self._candidate is None:
            registry = load_candidate_registry(self.candidates_file)
            context = CandidateContext(store=self.store, suites=load_suite_specs(self.suites_file))
            self._candidate = resolve_candidate(self.config.option.candidate, registry, context)
        return self._candidate

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.store_path)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    # -- scoring -----------------------------------------------------------------------------------
    def outcome(self, suite_name: str) -> SuiteOutcome:
        if suite_name not in self.outcomes:
            self.outcomes[suite_name] = self._score(suite_name)
        return self.outcomes[suite_name]

    def _score(self, suite_name: str) -> SuiteOutcome:
        outcome = SuiteOutcome(suite_name)
        try:
            suite = load_suite(self._spec(suite_name))
            candidate, embedder = self.candidate, self.embedder
            try:
                with self._progress() as progress:
                    result = evaluate(candidate, suite, embedder, store=self.store, bootstrap=self.bootstrap,
                                      on_progress=progress)
            except MissingPredictionsError as exc:
                if len(exc.missing) == exc.total:
                    outcome.not_applicable = f"{candidate.name} has no prediction for any row of suite '{suite_name}'"
                    return outcome
                raise
            except LearnedFromSuiteError as exc:
                outcome.not_applicable = str(exc)
                return outcome
            if self.config.option.update_baselines and result.complete:
                write_baseline(self.baselines_dir, result)
            baseline = load_baseline(self.baselines_dir, result.embedder, suite_name)
            comparison = compare_with_baseline(result, baseline, tolerance=self.config.option.regression_tolerance,
                                               bootstrap=self.bootstrap)
            self.store.record_run(result.to_run_record(session=self.session_id, baseline=comparison.to_dict()),
                                  once_per_session=True)
            outcome.result, outcome.comparison = result, comparison
        except HarnessError as exc:
            outcome.error = str(exc)
        return outcome


    @contextmanager
    def _progress(self):
        """A rich progress bar on the real terminal while embedding (pytest captures output inside tests,
        so capturing is suspended for it); nothing at all when no person is watching (CI, xdist)."""
        stream = sys.__stderr__
        watching = person_watching(stream) and not hasattr(self.config, "workerinput")
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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "prh_suite(name): a check of one prompt-recovery suite")
    if not config.pluginmanager.hasplugin("xdist"):
        config.addinivalue_line("markers", "xdist_group(name): group tests on one xdist worker")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """xdist: every worker records its runs under the controller's session id."""
    node.workerinput["prh_session"] = _session(node.config).session_id


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "prh_suite" in metafunc.fixturenames:
        session = _session(metafunc.config)
        try:
            names = session.suite_names()
        except HarnessError as exc:
            raise pytest.UsageError(str(exc)) from None
        # Both checks of a suite share one scoring: under `--dist loadgroup` keep them on one worker.
        params = [pytest.param(name, marks=pytest.mark.xdist_group(name=f"prh-{name}")) for name in names]
        metafunc.parametrize("prh_suite", params, ids=names)


@pytest.fixture(scope="session")
def prh_session(request: pytest.FixtureRequest) -> PrhSession:
    return _session(request.config)


@pytest.fixture
def prh_outcome(prh_session: PrhSession, prh_suite: str) -> SuiteOutcome:
    """The scored suite (scored once, shared by its checks)."""
    return prh_session.outcome(prh_suite)


def _require_scored(outcome: SuiteOutcome) -> None:
    """A configuration or data error fails each check with that one clear message (no traceback); a
    suite the candidate has no answers for at all (another suite's submission file) is skipped."""
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


def check_no_regression(outcome: SuiteOutcome) -> None:
    """Fails when the paired CI of (candidate − baseline) lies entirely below −tolerance."""
    _require_scored(outcome)
    comparison = outcome.comparison
    if comparison.status == "no-baseline":
        pytest.skip(comparison.message)
    if comparison.status in ("regression", "stale"):
        pytest.fail(comparison.message, pytrace=False)


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Render the leaderboard from the store's whole history, also when checks failed."""
    config = session.config
    state = _session(config)
    try:
        if _is_worker(config) or not state.store_path.exists():
            return
        with Store(state.store_path) as store:
            if not store.runs(session=state.session_id):
                return  # this pytest run scored nothing: leave the reports alone
            from harness.report import write_reports

            state.report_paths = write_reports(store.runs(), state.report_dir)
    except Exception as exc:  # a broken report must not hide the test results
        state.report_error = f"{type(exc).__name__}: {exc}"
    finally:
        state.close()


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    state = _session(config)
    if _is_worker(config) or not state.store_path.exists():
        return
    with Store(state.store_path) as store:
        records = store.runs(session=state.session_id)
    if not records:
        return
    from rich.console import Console

    from harness.report import latest_runs, rich_table

    # Not a terminal (CI logs): render wide rather than squeezing every column into 80 characters.
    width = terminalreporter._tw.fullwidth if terminalreporter.isatty else 160
    console = Console(file=terminalreporter._tw._file, force_terminal=terminalreporter.isatty, width=width)
    terminalreporter.section("prompt-recovery scores")
    console.print(rich_table(latest_runs(records), title="this run"))
    if any(not record.comparable_with_kaggle for record in records):
        terminalreporter.write_line(f"WARNING: {state.embedder_warning or NOT_COMPARABLE_WARNING}", red=True, bold=True)
    if getattr(state, "report_paths", None):
        terminalreporter.write_line("leaderboard written: " + ", ".join(str(p) for p in state.report_paths))
    if getattr(state, "report_error", None):
        terminalreporter.write_line(f"could not write the leaderboard: {state.report_error}", red=True)
