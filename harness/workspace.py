"""The Workspace: the one place where the project's names and paths become suites, candidates, embedders,
a store and baselines, and where a score becomes a result, a verdict and a line of history.

Every entry point (the `prh` command, the pytest plugin, `prh generate/train/optimize/calibrate`) starts
from a Workspace instead of rebuilding that plumbing, so one rule holds everywhere:

    ws = Workspace.from_dir(".")
    scored = ws.score("mean-prompt", "leaked")
    print(scored.result.mean, scored.comparison.status)

**How `--suite X` is read** (the one rule): a name defined in the suites file is that suite. Anything
else is the path of a data file (CSV, JSONL or parquet): the file of a suites-file entry is that suite
(same name, same columns); any other file is an *ad-hoc* suite named by its path, read with Kaggle's
column names unless `columns` maps them, rows numbered when it has no `id` column, and text columns it
lacks left empty (scoring needs only the true prompt). A name that is neither is an error listing the
known suites. Ad-hoc suites have no baseline, and reports show them in their own section.

Nothing heavy is imported here at module level: importing the pytest plugin must stay cheap for every
pytest run in the environment.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import ConfigError
from harness.options import (
    BASELINES_DIR,
    CANDIDATES_FILE,
    REPORT_DIR,
    STORE_ENV,
    STORE_PATH,
    SUITES_FILE,
    workspace_paths,
)

if TYPE_CHECKING:
    from harness.baselines import Baseline, BaselineUpdate
    from harness.candidates import Candidate, CandidateRegistry
    from harness.data import Suite, SuiteSpec
    from harness.embedders import EmbedderChoice
    from harness.evaluation import BootstrapSettings, Result
    from harness.report import ReportView
    from harness.store import RunRecord, RunRow, Store
    from harness.verdict import Comparison

#: the gate's default: a regression is a paired CI entirely below −tolerance (rounding noise of baselines)
DEFAULT_TOLERANCE = 0.001
#: the multiple-suite corrections of the gate
CORRECTIONS = ("holm", "none")
#: in the report folder: the store and suites file its reports were rendered from
REPORT_SOURCE_FILE = ".prh-source.json"

ProgressCallback = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Scored:
    """One candidate scored on one suite: the result (identity and rows) and the history record written for
    it, which holds the run's one verdict (`comparison`: None for ad-hoc suites and signed scores, which have
    no baseline to compare with). `baseline` is the baseline the verdict compared with, kept so the recorded
    rows carry the scores that verdict measured."""

    result: Result
    record: RunRecord
    baseline: Baseline | None = None

    @property
    def comparison(self) -> Comparison | None:
        return self.record.baseline

    @property
    def suite_kind(self) -> str:
        return self.result.suite_kind


@dataclass
class Workspace:
    """A project's paths, and the objects built from them on demand (each built once).

    Use `Workspace.from_dir(root, …)`; pass a path to override one default. Paths given explicitly must
    exist (a typo is an error, never an empty file); the default suites and candidates files may be
    absent (then only data files and inline candidate specs work).
    """

    root: Path
    suites_file: Path
    candidates_file: Path | None
    baselines_dir: Path
    store_path: Path
    report_dir: Path
    _suite_specs: dict[str, SuiteSpec] | None = field(default=None, repr=False)
    _registry: CandidateRegistry | None = field(default=None, repr=False)
    _embedders: dict[str, EmbedderChoice] = field(default_factory=dict, repr=False)
    _candidates: dict[str, Candidate] = field(default_factory=dict, repr=False)
    _named_suites: dict[tuple[str, bool], Suite] = field(default_factory=dict, repr=False)
    #: builds the embedder of a spec (auto, st5, minilm, path:DIR); None: harness.embedders.choose_embedder.
    #: Tests and callers give their own here (one tiny model for every spec), never by patching the module.
    embedder_factory: Callable[[str], EmbedderChoice] | None = field(default=None, repr=False)
    _store: Store | None = field(default=None, repr=False)
    _explicit_suites_file: bool = field(default=False, repr=False)

    @classmethod
    def from_dir(cls, root: str | Path = ".", *, suites_file: str | Path | None = None,
                 candidates_file: str | Path | None = None, baselines_dir: str | Path | None = None,
                 store: str | Path | None = None, report_dir: str | Path | None = None,
                 embedder_factory: Callable[[str], EmbedderChoice] | None = None) -> Workspace:
        """The workspace of the project in `root`. Explicit paths are taken as given (relative to the
        current directory, as a shell user typed them); defaults are files and folders of `root`; the
        store defaults to $PRH_STORE, else `root/.prh/store.sqlite`. `embedder_factory` replaces
        `choose_embedder` for every embedder this workspace builds (scoring, retrieval candidates,
        calibration)."""
        root = Path(root)
        if suites_file is not None and not Path(suites_file).is_file():
            raise ConfigError(f"suites file not found: {suites_file}")
        if candidates_file is not None and not Path(candidates_file).is_file():
            raise ConfigError(f"candidates file not found: {candidates_file}")
        default_candidates = root / CANDIDATES_FILE
        return cls(
            root=root,
            suites_file=Path(suites_file) if suites_file is not None else root / SUITES_FILE,
            candidates_file=(Path(candidates_file) if candidates_file is not None
                             else default_candidates if default_candidates.is_file() else None),
            baselines_dir=Path(baselines_dir) if baselines_dir is not None else root / BASELINES_DIR,
            store_path=Path(store if store is not None else os.environ.get(STORE_ENV) or root / STORE_PATH),
            report_dir=Path(report_dir) if report_dir is not None else root / REPORT_DIR,
            _explicit_suites_file=suites_file is not None,
            embedder_factory=embedder_factory,
        )

    @classmethod
    def from_args(cls, args: object, root: str | Path = ".") -> Workspace:
        """The workspace a command line names: `args` may carry suites_file, candidates_file, baselines_dir,
        store and report_dir (argparse's names for --suites-file …); absent or None means the default.
        `args.embedder_factory`, when set (`harness.cli.main(argv, embedder_factory=…)`), is passed on."""
        return cls.from_dir(root, **workspace_paths(args), embedder_factory=getattr(args, "embedder_factory", None))

    # -- suites ------------------------------------------------------------------------------------------
    @property
    def suite_specs(self) -> dict[str, SuiteSpec]:
        """The suites file's entries by name ({} when the default suites file does not exist)."""
        if self._suite_specs is None:
            from harness.data import load_suite_specs

            self._suite_specs = load_suite_specs(self.suites_file) if self.suites_file.is_file() else {}
        return self._suite_specs

    def suite_names(self, selected: Sequence[str] | None = None) -> list[str]:
        """The named suites to run, in file order: all of them, or `selected` (unknown names are an error)."""
        from harness.data import select_specs

        if not self.suite_specs and not selected:
            raise ConfigError(f"no suites: {self.suites_file} does not exist or defines none")
        return [spec.name for spec in select_specs(self.suite_specs, selected)]

    def is_named_suite(self, name: str) -> bool:
        return name in self.suite_specs

    def suite(self, name_or_path: str | Path, *, columns: Mapping[str, str] | None = None,
              needs_truth: bool = True) -> Suite:
        """A suite by name, or an ad-hoc suite read from a data file (see the module docstring's rule).

        `columns` maps Sample fields to the file's columns and is only for data files: a named suite's
        columns are in its suites-file entry. `needs_truth=False` reads rows to be answered (`prh predict`'s
        input, Kaggle's test.csv): no true prompt, and the texts and ids a candidate and a submission need
        are required rather than left empty.
        """
        from harness.data import load_suite, spec_for_file, suite_from_table
        from harness.tables import read_table

        name = str(name_or_path)
        if name in self.suite_specs:
            if columns:
                raise ConfigError(f"suite '{name}' is defined in {self.suites_file}: its columns are set there, "
                                  "not on the command line")
            # Read once: the plugin reads every suite before any test (to stop a broken set-up) and again
            # to score it.
            if (name, needs_truth) not in self._named_suites:
                self._named_suites[name, needs_truth] = load_suite(self.suite_specs[name], needs_truth=needs_truth)
            return self._named_suites[name, needs_truth]
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            known = ", ".join(self.suite_specs) or f"none ({self.suites_file} not found)"
            raise ConfigError(f"suite {name!r} is neither a suite in {self.suites_file} (known: {known}) "
                              "nor a data file")
        if not columns:
            resolved = path.resolve()
            for spec in self.suite_specs.values():
                if spec.path.resolve() == resolved:
                    return load_suite(spec, needs_truth=needs_truth)
        mapping = dict(columns or {})
        table = read_table(path)
        if needs_truth:
            # Scoring needs only the true prompt: text columns the file does not have are left empty.
            for text_field in ("original_text", "rewritten_text"):
                if text_field not in mapping and text_field not in table.columns:
                    mapping[text_field] = ""
            if "id" not in mapping and "id" not in table.columns:
                mapping["id"] = ""
        return suite_from_table(spec_for_file(path, mapping, name=path.as_posix()), table, needs_truth=needs_truth)

    # -- candidates --------------------------------------------------------------------------------------
    @property
    def registry(self) -> CandidateRegistry:
        if self._registry is None:
            from harness.candidates import load_candidate_registry

            self._registry = load_candidate_registry(self.candidates_file)
        return self._registry

    def candidate(self, spec: str | Candidate) -> Candidate:
        """A candidate from a spec: a candidates-file name, `mean:TEXT` or `file:PATH` (a Candidate
        object is returned as is). Building loads no model. Built once per spec, so that its preflight
        (`check_candidate`) and a loaded model serve every suite of the run."""
        if not isinstance(spec, str):
            return spec
        if spec not in self._candidates:
            from harness.candidates import CandidateContext, resolve_candidate

            context = CandidateContext(base_dir=self.root, store=self.store(), suites=self.suite_specs,
                                       embedder=lambda spec: self.embedder(spec).embedder)
            self._candidates[spec] = resolve_candidate(spec, self.registry, context)
        return self._candidates[spec]

    def check_candidate(self, spec: str | Candidate, suites: Sequence[str] = ()) -> Candidate:
        """Build the candidate and check, before any row, that it can answer: its model is there and fits
        this machine, its endpoint answers with the key (the candidate's `preflight`). Skipped when it
        learned from every one of `suites` (it will not be scored on any of them). Raises HarnessError."""
        candidate = self.candidate(spec)
        learned = set(getattr(candidate, "train_suites", ()) or ())
        preflight = getattr(candidate, "preflight", None)
        if preflight is not None and (not suites or not set(suites) <= learned):
            preflight()
        return candidate

    # -- embedders ---------------------------------------------------------------------------------------
    def embedder(self, spec: str = "auto") -> EmbedderChoice:
        """The embedder for `spec` (auto, st5, minilm, path:DIR), built once per spec, with the warnings
        its choice carries (e.g. auto falling back to MiniLM) as data."""
        if spec not in self._embedders:
            from harness.embedders import choose_embedder

            self._embedders[spec] = (self.embedder_factory or choose_embedder)(spec)
        return self._embedders[spec]

    # -- store -------------------------------------------------------------------------------------------
    def store(self, *, create: bool = True) -> Store:
        """The store, opened once. Reading commands pass `create=False`: a missing store is an error."""
        if self._store is None:
            from harness.store import Store

            self._store = Store(self.store_path, create=create)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        self._candidates.clear()  # they hold the closed store; a reopened workspace builds them afresh

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- scoring -----------------------------------------------------------------------------------------
    def score(self, candidate: str | Candidate, suite: str | Suite, *, embedder: str = "auto",
              bootstrap: BootstrapSettings | None = None, signed: bool = False,
              tolerance: float = DEFAULT_TOLERANCE, session: str = "", record: bool = True,
              on_progress: ProgressCallback | None = None) -> Scored:
        """Score one candidate on one suite: evaluate, compare with the baseline, record the run."""
        scored = self.judge(candidate, suite, embedder=embedder, bootstrap=bootstrap, signed=signed,
                            tolerance=tolerance, on_progress=on_progress)
        scored = self.gate([scored], "none")[0]
        return self.record(scored, session=session) if record else scored

    def score_many(self, candidate: str | Candidate, suites: Sequence[str | Suite], *, embedder: str = "auto",
                   bootstrap: BootstrapSettings | None = None, signed: bool = False,
                   tolerance: float = DEFAULT_TOLERANCE, correction: str = "holm", session: str = "",
                   record: bool = True, on_progress: ProgressCallback | None = None) -> list[Scored]:
        """Score one candidate on several suites as one family: judge each, correct the gate's verdicts
        across the family (`correction`: holm or none), then record each run."""
        judged = [self.judge(candidate, suite, embedder=embedder, bootstrap=bootstrap, signed=signed,
                             tolerance=tolerance, on_progress=on_progress) for suite in suites]
        gated = self.gate(judged, correction)
        return [self.record(s, session=session) for s in gated] if record else gated

    def judge(self, candidate: str | Candidate, suite: str | Suite, *, embedder: str = "auto",
              bootstrap: BootstrapSettings | None = None, signed: bool = False,
              tolerance: float = DEFAULT_TOLERANCE, on_progress: ProgressCallback | None = None) -> Scored:
        """Evaluate and compare with the stored baseline; nothing is recorded yet (see `gate`, `record`).

        Signed scores and ad-hoc suites get no comparison: the baselines hold unsigned scores of named
        suites.
        """
        from harness.baselines import compare_with_baseline, load_baseline
        from harness.evaluation import DEFAULT_BOOTSTRAP, evaluate

        bootstrap = bootstrap or DEFAULT_BOOTSTRAP
        loaded = self.suite(suite) if isinstance(suite, (str, Path)) else suite
        kind = "named" if self.is_named_suite(loaded.name) else "file"
        result = evaluate(self.candidate(candidate), loaded, self.embedder(embedder).embedder, store=self.store(),
                          bootstrap=bootstrap, signed=signed, suite_kind=kind, on_progress=on_progress)
        comparison = predicted = baseline = st5 = None
        if not signed:
            from harness.leaderboard.prediction import predicted_lb, st5_estimate
            from harness.leaderboard.usable_probes import declared_strings, not_judged

            declared = declared_strings(self.registry.entries, candidate) if isinstance(candidate, str) else []
            predicted = predicted_lb(self.baselines_dir, result, loaded, self.embedder(embedder).embedder,
                                     store=self.store(), resolve=self.candidate, declared=declared)
            st5 = st5_estimate(self.baselines_dir, result, self.embedder(embedder).embedder, store=self.store(),
                               declared=declared)
        if kind == "named" and not signed:
            baseline = load_baseline(self.baselines_dir, result.embedder, loaded.name)
            comparison = compare_with_baseline(result, baseline, tolerance=tolerance, bootstrap=bootstrap)
            # An embedder that cannot see what the answers rely on gives no verdict (numbers kept).
            comparison = not_judged(comparison, result, declared)
        record = result.to_run_record(baseline=comparison, predicted_lb=predicted, st5_estimate=st5)
        return Scored(result, record, baseline)

    def predict(self, candidate: str | Candidate, rows: Suite, *,
                on_progress: ProgressCallback | None = None) -> list[str]:
        """The candidate's answers for `rows` (e.g. Kaggle's test.csv, read with `suite(..., needs_truth=False)`)
        through exactly the path scoring takes (preflight, prediction cache, the candidate's own formatting,
        batching and post-processing); nothing is embedded or recorded. Empty answers stay "" for the caller
        to report."""
        from harness.evaluation import predict_rows

        return predict_rows(self.candidate(candidate), rows, self.store(), on_progress=on_progress)

    @staticmethod
    def gate(family: Sequence[Scored], correction: str = "holm") -> list[Scored]:
        """The family's verdicts corrected for testing several suites at once (see baselines.apply_correction)."""
        from harness.baselines import apply_correction

        if correction not in CORRECTIONS:
            raise ConfigError(f"unknown gate correction {correction!r}; expected one of {', '.join(CORRECTIONS)}")
        corrected = apply_correction([s.comparison for s in family], correction)
        return [replace(s, record=replace(s.record, baseline=c)) for s, c in zip(family, corrected)]

    def record(self, scored: Scored, *, session: str = "", once_per_session: bool = False) -> Scored:
        """Append the run and its rows to the store's history (with `once_per_session`, at most once per
        session). The rows feed the per-candidate drill-down pages."""
        run = replace(scored.record, session=session)
        run_id = self.store().record_run(run, once_per_session=once_per_session, rows=self._run_rows(scored))
        return replace(scored, record=replace(run, run_id=run_id))

    @staticmethod
    def _run_rows(scored: Scored) -> list[RunRow]:
        """Per-row data of a scored run, with the baseline's score of each row when the verdict compared the
        run with a baseline (the very baseline it compared with, whatever the baselines file holds now)."""
        from harness.store import RunRow

        result, comparison, baseline = scored.result, scored.comparison, scored.baseline
        compared = (comparison is not None and comparison.delta is not None and baseline is not None
                    and comparison.baseline_fingerprint == baseline.fingerprint)
        reference = baseline.scores if compared else {}
        groups = result.groups or [None] * result.n
        return [RunRow(position, str(sample_id), None if group is None else str(group), float(score), prediction,
                       truth, reference.get(sample_id))
                for position, (sample_id, group, score, prediction, truth)
                in enumerate(zip(result.ids, groups, result.scores, result.predictions, result.truths))]

    # -- baselines and reports ------------------------------------------------------------------------
    def update_baseline(self, scored: Scored, *, force: bool = False) -> BaselineUpdate:
        """Accept a scored result as its suite's baseline (refused when significantly worse, unless forced)."""
        return self.update_baselines([scored], force=force)[0]

    def update_baselines(self, family: Sequence[Scored], *, force: bool = False) -> list[BaselineUpdate]:
        """Accept every scored result of a run as its suite's baseline, all or nothing: when one suite is
        refused, no baseline file changes (see harness.baselines.update_baselines)."""
        from harness.baselines import update_baselines

        for scored in family:
            if scored.suite_kind != "named":
                raise ConfigError(f"'{scored.result.suite}' is a data file, not a suite of {self.suites_file}: "
                                  "only named suites have baselines")
        return update_baselines(self.baselines_dir, [(s.result, s.comparison) for s in family], force=force)

    def reports_replacing(self) -> str | None:
        """What `write_reports` is about to replace, when `report_dir` was last rendered from another store or
        suites file (`--store`, `--suites-file`): a sentence naming both, or None. The reports of a folder
        come from one store at a time, so a run on another store rebuilds them and must say so."""
        import json

        marker = self.report_dir / REPORT_SOURCE_FILE
        try:
            before = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        now = self._report_source()
        changed = [key for key in ("store", "suites_file") if before.get(key) != now[key]]
        if not changed:
            return None
        pages = len(list((self.report_dir / "candidates").glob("*.md")))
        what = " and ".join(f"{key.replace('_', ' ')} {before.get(key)} → {now[key]}" for key in changed)
        return (f"{self.report_dir} was rendered from another {' and '.join(k.replace('_', ' ') for k in changed)}; "
                f"its leaderboard and {pages} candidate page(s) are replaced ({what})")

    def _report_source(self) -> dict[str, str]:
        return {"store": str(self.store_path.resolve()), "suites_file": str(self.suites_file.resolve())}

    def write_reports(self) -> list[Path]:
        """Render the reports under `report_dir` from the store's whole history: ranked over the suites of
        the suites file, candidates ranked without the suites they learned from, pages with stored rows.
        `report_dir/.prh-source.json` records which store and suites file they came from (see
        `reports_replacing`)."""
        from harness.files import write_json_atomic
        from harness.report import write_reports

        store = self.store(create=False)
        records = store.runs()
        paths = write_reports(records, self.report_dir, main_suites=list(self.suite_specs) or None,
                              learned_from=self._learned_from(records), rows=store.run_rows,
                              submissions=store.submissions())
        write_json_atomic(self.report_dir / REPORT_SOURCE_FILE, self._report_source())
        return paths

    def leaderboard(self) -> ReportView:
        """The leaderboard the reports show (same history, suites and rule as `write_reports`)."""
        from harness.report import build_view

        records = self.store(create=False).runs()
        return build_view(records, main_suites=list(self.suite_specs) or None,
                          learned_from=self._learned_from(records))

    def _learned_from(self, records: Sequence[RunRecord]) -> dict[str, frozenset[str]]:
        """Candidate fingerprint → the suites it learned from (`train_suites`), for candidates of the history
        that miss a suite of the suites file: the plugin skips such a suite, so the report must know why it
        is missing. Only candidates that can still be built here, with the same fingerprint, count: for any
        other, the suites it learned from are not known."""
        main = set(self.suite_specs)
        covered: dict[str, set[str]] = {}
        specs: dict[str, str] = {}
        for record in records:
            if record.suite_kind == "named":
                covered.setdefault(record.candidate_fingerprint, set()).add(record.suite)
                specs[record.candidate_fingerprint] = record.candidate_spec or record.candidate
        learned: dict[str, frozenset[str]] = {}
        for fingerprint, suites in covered.items():
            if main <= suites:
                continue
            try:
                candidate = self.candidate(specs[fingerprint])
            except Exception:  # noqa: BLE001 - a candidate that cannot be built now just gets no note
                continue
            train = frozenset(getattr(candidate, "train_suites", ()) or ())
            if train and candidate.fingerprint == fingerprint:
                learned[fingerprint] = train
        return learned
