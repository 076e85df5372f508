"""The store: one SQLite file (standard library) holding everything expensive or historical.

- embeddings, keyed by (embedder fingerprint, text hash): each unique text is embedded once per model;
- predictions, keyed by (candidate fingerprint, sample id, input hash): a rerun never pays twice;
- run history: one row per (candidate, suite, embedder) scoring, from which leaderboards are rendered, and
  its rows (`run_rows`: id, group, score, the baseline's score, prediction, truth) for the drill-down pages.
  Deleting runs (`delete_runs`) deletes their rows and nothing else: the caches stay.
- submissions: one row per Kaggle file `prh predict` wrote (candidate fingerprint, the gate run it relied
  on, row and repair counts, output path). Tables added after the first release come through numbered
  `_MIGRATIONS` (SQLite's user_version), so an older store opens and gains them.

Several processes may write at once (pytest-xdist workers): the database runs in WAL mode with a busy
timeout, and every write is one short IMMEDIATE transaction. No secrets are ever written here: only
fingerprints, texts and scores.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from harness.errors import HarnessError
from harness.run import RunRecord  # the record type lives in harness.run; imported from here too

T = TypeVar("T")

_SQL_VARIABLE_LIMIT = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    embedder TEXT NOT NULL, text_hash TEXT NOT NULL, dim INTEGER NOT NULL, vector BLOB NOT NULL,
    PRIMARY KEY (embedder, text_hash)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS predictions (
    candidate TEXT NOT NULL, sample_id TEXT NOT NULL, input_hash TEXT NOT NULL, prediction TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (candidate, sample_id, input_hash)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT, created REAL NOT NULL, session TEXT NOT NULL,
    candidate TEXT NOT NULL, candidate_fingerprint TEXT NOT NULL, suite TEXT NOT NULL,
    suite_fingerprint TEXT NOT NULL, embedder TEXT NOT NULL, embedder_fingerprint TEXT NOT NULL,
    record TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS runs_by_embedder ON runs (embedder, suite, candidate);
CREATE TABLE IF NOT EXISTS run_rows (
    run_id INTEGER NOT NULL, position INTEGER NOT NULL, sample_id TEXT NOT NULL, group_name TEXT,
    score REAL NOT NULL, baseline_score REAL, prediction TEXT NOT NULL, truth TEXT NOT NULL,
    PRIMARY KEY (run_id, position)) WITHOUT ROWID;
"""
#: Schema changes after the first release, applied in order to stores whose user_version is older (1: the
#: submissions table). Each is idempotent (IF NOT EXISTS), so processes opening one store at once cannot
#: break it, and older code still reads a migrated store (it ignores tables it does not know).
_MIGRATIONS: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS submissions (
        submission_id INTEGER PRIMARY KEY AUTOINCREMENT, created REAL NOT NULL, candidate TEXT NOT NULL,
        candidate_fingerprint TEXT NOT NULL, gate_session TEXT, record TEXT NOT NULL);""",
)


@dataclass(frozen=True)
class RunRow:
    """One scored row of a run, as the drill-down pages show it. `baseline_score` is the baseline's score
    on the same row when the run was compared with one (None otherwise)."""

    position: int
    id: str
    group: str | None
    score: float
    prediction: str
    truth: str
    baseline_score: float | None = None

    @property
    def delta(self) -> float | None:
        return None if self.baseline_score is None else self.score - self.baseline_score


class StoreError(HarnessError):
    """The store's path is not a SQLite file (a folder, someone else's file, a corrupt database)."""


class StoreNotFoundError(StoreError):
    """A reading command was pointed at a store that does not exist."""


_SQLITE_MAGIC = b"SQLite format 3\x00"


def _check_sqlite_header(path: Path) -> None:
    """A non-empty file that does not start with SQLite's magic is someone else's file: refuse it before
    sqlite3 would (with a traceback), and never write into it."""
    if path.is_file() and path.stat().st_size > 0:
        with path.open("rb") as handle:
            head = handle.read(len(_SQLITE_MAGIC))
        if head != _SQLITE_MAGIC:
            raise StoreError(f"store {path} is not a SQLite database (it starts with {head[:16]!r}); "
                             "check --store or $PRH_STORE, the file was left unchanged")


class Store:
    """A handle on the SQLite store; cheap to open, safe to use from several processes."""

    def __init__(self, path: str | Path, *, create: bool = True, timeout_seconds: float = 60.0) -> None:
        """Open the store at `path` (the Workspace decides the default: $PRH_STORE or .prh/store.sqlite).
        Only scoring creates a store (`create=True`): a reading command given a path that does not exist
        (a typo) gets an error instead of a new empty database. A folder, or a file that is not SQLite, is
        a StoreError naming the path, and the file is left as it was."""
        self.path = Path(path)
        in_memory = str(self.path) == ":memory:"
        if not in_memory and self.path.is_dir():
            raise StoreError(f"store {self.path} is a folder, not a SQLite file; give --store the path of a file "
                             f"(e.g. {self.path / 'store.sqlite'})")
        if not in_memory and not create and not self.path.is_file():
            raise StoreNotFoundError(f"store not found: {self.path} (nothing has been scored into it; "
                                     "check the path, or score a candidate first)")
        if not in_memory:
            _check_sqlite_header(self.path)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:  # a parent that is a file, a folder nobody may write to
                raise StoreError(f"store {self.path}: cannot create its folder {self.path.parent}: "
                                 f"{error.strerror or error}") from None
        try:
            self._connection = sqlite3.connect(self.path, timeout=timeout_seconds, isolation_level=None)
            self._connection.execute(f"PRAGMA busy_timeout = {int(timeout_seconds * 1000)}")
            self._retry(lambda: self._connection.execute("PRAGMA journal_mode = WAL"))
            self._connection.execute("PRAGMA synchronous = NORMAL")
            self._retry(lambda: self._connection.executescript(_SCHEMA))
            self._retry(self._migrate)
        except sqlite3.DatabaseError as error:  # corrupt past its header, read-only folder, …
            raise StoreError(f"store {self.path} cannot be opened as a SQLite database: {error}") from None

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def _retry(action, attempts: int = 20):
        """Schema and mode changes can meet a lock even with busy_timeout when workers start together."""
        for attempt in range(attempts):
            try:
                return action()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == attempts - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def _transaction(self, work: Callable[[sqlite3.Cursor], T]) -> T:
        """Run `work` in one IMMEDIATE transaction (the write lock is taken up front, so two writers
        queue on busy_timeout instead of deadlocking on a lock upgrade), retried while locked."""

        def attempt() -> T:
            cursor = self._connection.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                value = work(cursor)
                cursor.execute("COMMIT")
                return value
            except BaseException:
                cursor.execute("ROLLBACK")
                raise

        return self._retry(attempt)

    def _write(self, sql: str, rows: Sequence[tuple]) -> None:
        if rows:
            self._transaction(lambda cursor: cursor.executemany(sql, rows))

    def _select_in(self, sql: str, owner: str, keys: Iterable[str]) -> Iterator[tuple]:
        """Rows of `sql` (with `?` for `owner` and `{}` for an IN list) for any number of keys, queried in
        chunks below SQLite's limit on bound variables."""
        keys = list(keys)
        for start in range(0, len(keys), _SQL_VARIABLE_LIMIT):
            chunk = keys[start:start + _SQL_VARIABLE_LIMIT]
            yield from self._connection.execute(sql.format(",".join("?" * len(chunk))), (owner, *chunk))

    # -- embeddings -------------------------------------------------------------------------------
    def get_embeddings(self, embedder_fingerprint: str, text_hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """The cached vectors among `text_hashes` (missing ones are simply absent)."""
        rows = self._select_in("SELECT text_hash, vector FROM embeddings WHERE embedder = ? AND text_hash IN ({})",
                               embedder_fingerprint, dict.fromkeys(text_hashes))
        return {text_hash: np.frombuffer(blob, dtype=np.float32) for text_hash, blob in rows}

    def put_embeddings(self, embedder_fingerprint: str, text_hashes: Sequence[str], vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        rows = [(embedder_fingerprint, h, int(v.shape[0]), v.tobytes()) for h, v in zip(text_hashes, vectors)]
        self._write("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?)", rows)

    def count_embeddings(self, embedder_fingerprint: str | None = None) -> int:
        if embedder_fingerprint is None:
            return self._connection.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
        return self._connection.execute("SELECT COUNT(*) FROM embeddings WHERE embedder = ?",
                                        (embedder_fingerprint,)).fetchone()[0]

    # -- predictions ------------------------------------------------------------------------------
    def get_predictions(self, candidate_fingerprint: str, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Cached predictions for (sample id, input hash) keys."""
        wanted = set(keys)
        rows = self._select_in(
            "SELECT sample_id, input_hash, prediction FROM predictions WHERE candidate = ? AND sample_id IN ({})",
            candidate_fingerprint, {sample_id for sample_id, _ in wanted})
        return {(i, h): prediction for i, h, prediction in rows if (i, h) in wanted}

    def put_predictions(self, candidate_fingerprint: str, items: Iterable[tuple[str, str, str]]) -> None:
        """Store (sample id, input hash, prediction) triples as soon as they exist."""
        now = time.time()
        rows = [(candidate_fingerprint, sample_id, input_hash, prediction, now)
                for sample_id, input_hash, prediction in items]
        self._write("INSERT OR REPLACE INTO predictions VALUES (?, ?, ?, ?, ?)", rows)

    # -- run history ------------------------------------------------------------------------------
    def record_run(self, record: RunRecord, *, once_per_session: bool = False,
                   rows: Sequence[RunRow] = ()) -> int:
        """Append a run (and its `rows`, in the same transaction) to the history. With `once_per_session`,
        a run of the same candidate, suite and embedder already recorded under the record's session is kept
        instead (pytest-xdist workers may both score a suite; the history must still say it was run once)."""
        payload = json.dumps({k: v for k, v in record.to_dict().items() if k != "run_id"}, sort_keys=True)

        def insert(cursor: sqlite3.Cursor) -> int:
            if once_per_session:
                existing = cursor.execute(
                    "SELECT run_id FROM runs WHERE session = ? AND suite = ? AND candidate_fingerprint = ?"
                    " AND embedder_fingerprint = ?",
                    (record.session, record.suite, record.candidate_fingerprint, record.embedder_fingerprint),
                ).fetchone()
                if existing:
                    return int(existing[0])
            cursor.execute(
                "INSERT INTO runs (created, session, candidate, candidate_fingerprint, suite, suite_fingerprint,"
                " embedder, embedder_fingerprint, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.created, record.session, record.candidate, record.candidate_fingerprint, record.suite,
                 record.suite_fingerprint, record.embedder, record.embedder_fingerprint, payload))
            run_id = int(cursor.lastrowid)
            cursor.executemany("INSERT INTO run_rows VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                               [(run_id, r.position, r.id, r.group, float(r.score), r.baseline_score,
                                 r.prediction, r.truth) for r in rows])
            return run_id

        return self._transaction(insert)

    def runs(self, *, session: str | None = None, embedder: str | None = None) -> list[RunRecord]:
        """Run history, oldest first, optionally for one pytest session or one embedder."""
        sql, args = "SELECT run_id, record FROM runs", []
        clauses = []
        if session is not None:
            clauses.append("session = ?")
            args.append(session)
        if embedder is not None:
            clauses.append("embedder = ?")
            args.append(embedder)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY run_id"
        records = []
        for run_id, payload in self._connection.execute(sql, args):
            data = json.loads(payload)
            data["run_id"] = run_id
            records.append(RunRecord.from_dict(data))
        return records

    def run_rows(self, run_ids: Iterable[int]) -> dict[int, list[RunRow]]:
        """The stored rows of each run, in suite order (a run recorded without rows is absent)."""
        found: dict[int, list[RunRow]] = {}
        ids = [int(i) for i in dict.fromkeys(run_ids)]
        for start in range(0, len(ids), _SQL_VARIABLE_LIMIT):
            chunk = ids[start:start + _SQL_VARIABLE_LIMIT]
            query = ("SELECT run_id, position, sample_id, group_name, score, prediction, truth, baseline_score"
                     f" FROM run_rows WHERE run_id IN ({','.join('?' * len(chunk))}) ORDER BY run_id, position")
            for run_id, *values in self._connection.execute(query, chunk):
                found.setdefault(run_id, []).append(RunRow(*values))
        return found

    def delete_runs(self, run_ids: Iterable[int]) -> int:
        """Remove runs and their rows from the history; returns how many runs were removed. The prediction
        and embedding caches are left alone: they are keyed by content, not by run, and were paid for."""
        ids = [int(i) for i in dict.fromkeys(run_ids)]

        def delete(cursor: sqlite3.Cursor) -> int:
            removed = 0
            for start in range(0, len(ids), _SQL_VARIABLE_LIMIT):
                chunk = ids[start:start + _SQL_VARIABLE_LIMIT]
                marks = ",".join("?" * len(chunk))
                cursor.execute(f"DELETE FROM run_rows WHERE run_id IN ({marks})", chunk)
                removed += cursor.execute(f"DELETE FROM runs WHERE run_id IN ({marks})", chunk).rowcount
            return removed

        return self._transaction(delete) if ids else 0

    # -- schema migrations ------------------------------------------------------------------------
    def _migrate(self) -> None:
        """Bring an older store up to `_MIGRATIONS` (one transaction each, the version bumped with it)."""
        version = self._connection.execute("PRAGMA user_version").fetchone()[0]
        for number, statement in enumerate(_MIGRATIONS, start=1):
            if number <= version:
                continue

            def apply(cursor: sqlite3.Cursor, statement: str = statement, number: int = number) -> None:
                cursor.execute(statement)
                cursor.execute(f"PRAGMA user_version = {number}")

            self._transaction(apply)

    # -- submissions ------------------------------------------------------------------------------
    def record_submission(self, record: SubmissionRecord) -> int:
        """Append a submission to the history; returns its id."""
        payload = json.dumps({k: v for k, v in record.to_dict().items() if k != "submission_id"}, sort_keys=True)

        def insert(cursor: sqlite3.Cursor) -> int:
            cursor.execute("INSERT INTO submissions (created, candidate, candidate_fingerprint, gate_session, record)"
                           " VALUES (?, ?, ?, ?, ?)", (record.created, record.candidate, record.candidate_fingerprint,
                                                       record.gate_session, payload))
            return int(cursor.lastrowid)

        return self._transaction(insert)

    def submissions(self) -> list[SubmissionRecord]:
        """Every recorded submission, oldest first."""
        return [SubmissionRecord.from_dict({**json.loads(payload), "submission_id": submission_id})
                for submission_id, payload in self._connection.execute(
                    "SELECT submission_id, record FROM submissions ORDER BY submission_id")]


@dataclass(frozen=True)
class SubmissionRecord:
    """One submission file written by `prh predict`: which candidate (by fingerprint), the gate run it relied
    on (None: never gated), whether the gate was overridden with --force and why it refused, and the file."""

    candidate: str
    candidate_fingerprint: str
    candidate_spec: str
    output_path: str
    output_sha256: str
    input_path: str
    input_fingerprint: str
    n_rows: int
    n_repaired: int
    fallback: str
    gate_session: str | None = None
    gate_run_ids: tuple[int, ...] = ()
    gate_created: float | None = None
    gate_summary: str = ""
    forced: bool = False
    #: with --force: the refusal that was overridden
    refusal: str | None = None
    repaired_ids: tuple[str, ...] = ()
    created: float = field(default_factory=time.time)
    submission_id: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> SubmissionRecord:
        known = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)
