"""The probe book: submissions whose leaderboard score is known, with where that fact comes from.

A probe is one submission and its public (and optionally private) leaderboard score. What it answered is
one of three kinds:
- `constant`: one string for every row (a "mean prompt"); `submission` is that string, taken literally;
- `template`: a row template such as `{original_text}`, filled per row (`{{`/`}}` are literal braces);
- `candidate`: any candidate spec the harness resolves (`file:sub_0412.csv`, a candidates.toml name,
  `mean:TEXT`), which is how a user records "my LoRA submission of 12 April scored 0.62".

A book is a CSV (or JSONL / parquet) with one probe per row:

| column | required | meaning |
| --- | --- | --- |
| `submission` (or `prompt`) | yes | the string, the template or the candidate spec |
| `public` (or `leaderboard_score`) | one of the two scores | public leaderboard score in [0, 1] |
| `private` | | private leaderboard score in [0, 1] |
| `kind` | | constant, template or candidate; default: template when the text has a placeholder, else constant |
| `name` | | a unique label (default: the submission, shortened) |
| `date` | | when it was scored, YYYY-MM-DD |
| `reproducible` | | yes (default) or no: a row that describes a submission rather than giving it |
| `exclude` | when not reproducible | why the probe is left out of every fit |
| `note`, `source` | | what it is; where the score was published (repository, path, commit, URL) |

The older two-column format (`prompt`, `leaderboard_score`) is the same book with defaults. Every error
names the file, the row and the column. `append_probe` adds a row atomically (harness.files).
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.candidates.base import Candidate
from harness.candidates.chat import PLACEHOLDERS, check_template
from harness.candidates.constant import ConstantCandidate
from harness.candidates.registry import parse_spec
from harness.candidates.template import TemplateCandidate
from harness.errors import ConfigError, DataError
from harness.files import write_text_atomic
from harness.hashing import file_fingerprint
from harness.tables import Record, is_missing, read_table

KINDS = ("constant", "template", "candidate")
COLUMNS = ("name", "kind", "submission", "public", "private", "date", "reproducible", "exclude", "note", "source")
#: columns of the older probes format, read as their new names
ALIASES = {"prompt": "submission", "leaderboard_score": "public"}
TARGETS = ("public", "private")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_YES, _NO = ("yes", "true", "1", ""), ("no", "false", "0")


@dataclass(frozen=True)
class Probe:
    """One probe: a submission, its leaderboard scores and their provenance."""

    name: str
    submission: str
    public: float | None = None
    kind: str = "constant"
    private: float | None = None
    date: str = ""
    reproducible: bool = True
    exclude: str = ""
    note: str = ""
    source: str = ""

    def score(self, target: str = "public") -> float | None:
        """The leaderboard score the models fit (public by default)."""
        return self.public if target == "public" else self.private

    @property
    def leaderboard_score(self) -> float | None:
        return self.public

    @property
    def row_dependent(self) -> bool:
        """Whether its answers differ by row (templates and candidates may; constants never do)."""
        return self.kind != "constant"

    def unusable_reason(self, target: str = "public") -> str | None:
        """Why this probe cannot enter a fit of `target` scores, or None when it can."""
        if not self.reproducible:
            return f"not reproducible: {self.exclude}"
        if self.exclude:
            return f"excluded by the book: {self.exclude}"
        if self.score(target) is None:
            return f"no {target} score" + (f" (only {'private' if target == 'public' else 'public'})"
                                           if self.score("private" if target == "public" else "public") is not None
                                           else "")
        return None

    def candidate(self, resolve: Callable[[str], Candidate] | None = None) -> Candidate:
        """The candidate that answers what the submission answered. A `candidate` probe needs `resolve`
        (normally `Workspace.candidate`) to turn its spec into a candidate."""
        if self.kind == "constant":
            return ConstantCandidate(f"probe:{self.name}", self.submission)
        if self.kind == "template":
            return TemplateCandidate(f"probe:{self.name}", self.submission)
        if resolve is None:
            raise ConfigError(f"probe '{self.name}' is the candidate {self.submission!r}: building it needs a "
                              "workspace (its candidates file and store)")
        return resolve(self.submission)

    def to_row(self) -> dict[str, str]:
        """The probe as a book row (numbers as written, empty cells for absent values)."""
        def number(value: float | None) -> str:
            return "" if value is None else f"{value:g}"
        return {"name": self.name, "kind": self.kind, "submission": self.submission, "public": number(self.public),
                "private": number(self.private), "date": self.date, "reproducible": "yes" if self.reproducible else "no",
                "exclude": self.exclude, "note": self.note, "source": self.source}


@dataclass(frozen=True)
class ProbeBook:
    """The probes of one book file, and the hash of its bytes (models record which book they were fitted on)."""

    path: Path
    probes: tuple[Probe, ...]
    hash: str
    columns: tuple[str, ...] = COLUMNS

    def __iter__(self):
        return iter(self.probes)

    def __len__(self) -> int:
        return len(self.probes)

    def by_name(self) -> dict[str, Probe]:
        return {p.name: p for p in self.probes}


def _has_placeholder(text: str) -> bool:
    return any("{" + p + "}" in text.replace("{{", "").replace("}}", "") for p in PLACEHOLDERS)


def short_name(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= 40 else flat[:39] + "…"


def parse_score(raw: str | None, path: Path | str, column: str, where: Mapping[str, int | None]) -> float | None:
    """A leaderboard score in [0, 1], or None for an empty cell; anything else is a DataError."""
    if is_missing(raw):
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise DataError(path, f"{column} must be a number in [0, 1], got {raw!r}", column=column, **where)
    return value


def _parse_row(path: Path, columns: Mapping[str, str], record: Record) -> Probe:
    """One book row as a Probe; a DataError names the file, row and column of the first problem."""
    where = {"row": record.row, "line": record.line}

    def cell(name: str) -> str:
        column = columns.get(name)
        value = record.fields.get(column) if column else None
        return "" if value is None else value

    def fail(name: str, problem: str) -> DataError:
        return DataError(path, problem, column=columns.get(name, name), **where)

    submission = cell("submission")
    if is_missing(submission):
        raise fail("submission", "the submission is empty; every probe needs what it submitted (a string, a "
                                 "template or a candidate spec)")
    reproducible_text = cell("reproducible").strip().lower()
    if reproducible_text not in _YES + _NO:
        raise fail("reproducible", f"reproducible must be yes or no, got {cell('reproducible')!r}")
    reproducible = reproducible_text in _YES
    exclude = cell("exclude").strip()
    if not reproducible and not exclude:
        raise fail("exclude", "a probe marked not reproducible needs the reason in 'exclude'")
    kind = cell("kind").strip().lower()
    literal = submission
    if not kind:  # the older format: a placeholder makes a template, and {{ }} are escaped braces
        kind = "template" if _has_placeholder(submission) else "constant"
        if kind == "constant":
            literal = submission.replace("{{", "{").replace("}}", "}")
    if kind not in KINDS:
        raise fail("kind", f"kind must be one of {', '.join(KINDS)}, got {cell('kind')!r}")
    if kind == "template" and reproducible:
        try:
            check_template(submission, "probe template", require_placeholder=True)
        except ConfigError as error:
            raise fail("submission", str(error)) from None
    public = parse_score(cell("public"), path, columns.get("public", "public"), where)
    private = parse_score(cell("private"), path, columns.get("private", "private"), where)
    if public is None and private is None:
        raise fail("public", "no leaderboard score: give 'public' and/or 'private'")
    date = cell("date").strip()
    if date and not _DATE.match(date):
        raise fail("date", f"date must be YYYY-MM-DD, got {date!r}")
    return Probe(name=cell("name").strip() or short_name(submission), submission=literal, public=public, kind=kind,
                 private=private, date=date, reproducible=reproducible, exclude=exclude, note=cell("note").strip(),
                 source=cell("source").strip())


def load_book(path: str | Path) -> ProbeBook:
    """Read and validate a probe book; a DataError names the file, row and column of the first problem."""
    table = read_table(path)
    columns = {ALIASES.get(c, c): c for c in table.columns}  # our name -> the file's column
    unknown = [c for c in table.columns if ALIASES.get(c, c) not in COLUMNS]
    if unknown:
        raise DataError(table.path, f"unknown column(s) {', '.join(unknown)}; a probe book has "
                        f"{', '.join(COLUMNS)} (or the older prompt, leaderboard_score)")
    missing = [c for c in ("submission",) if c not in columns]
    if missing or ("public" not in columns and "private" not in columns):
        raise DataError(table.path, "missing column(s): a probe book needs 'submission' (or 'prompt') and a score "
                        "column, 'public' (or 'leaderboard_score') and/or 'private'; columns found: "
                        f"{', '.join(table.columns) or '(none)'}")
    probes: list[Probe] = []
    first_row: dict[str, int] = {}
    first_submission: dict[tuple[str, str], int] = {}
    for record in table.records:
        probe = _parse_row(table.path, columns, record)
        where = {"row": record.row, "line": record.line}
        if probe.name in first_row:
            raise DataError(table.path, f"duplicate probe name {probe.name!r} (first in row {first_row[probe.name]}); "
                            "give the probes distinct names in a 'name' column", column=columns.get("name", "name"),
                            **where)
        key = (probe.kind, probe.submission)
        if key in first_submission and probe.reproducible:
            raise DataError(table.path, f"the same {probe.kind} submission is already probe row "
                            f"{first_submission[key]}; keep one probe and list every source in its 'source' cell",
                            column=columns["submission"], **where)
        first_row[probe.name] = record.row
        if probe.reproducible:
            first_submission.setdefault(key, record.row)
        probes.append(probe)
    if not probes:
        raise DataError(table.path, "the probe book has no rows")
    return ProbeBook(Path(path), tuple(probes), file_fingerprint(path), tuple(table.columns))


def parse_candidate_spec(spec: str) -> tuple[str, str]:
    """(kind, submission) for `prh probes add --candidate SPEC`: `mean:TEXT` is a constant, `template:TEXT` a
    row template, anything else (`file:…`, a candidates.toml name) a candidate spec."""
    kind, text = parse_spec(spec)
    return (kind, text) if kind in ("constant", "template") else ("candidate", spec.strip())


def append_probe(path: str | Path, probe: Probe) -> ProbeBook:
    """Append `probe` to the book at `path` (created with the standard columns when missing), atomically.

    Refuses a name already in the book, and the same submission under another name (one submission, one
    probe: several sources go in one `source` cell). The result is read back before it replaces the file,
    so a row the book could not read never lands. Returns the new book.
    """
    path = Path(path)
    if path.suffix.lower() != ".csv":
        raise ConfigError(f"{path}: prh probes add writes CSV books (a .csv file)")
    if not path.parent.is_dir():  # a typo in the folder is an error, never a new tree of folders
        raise ConfigError(f"{path}: the folder {path.parent} does not exist; create it first or fix --book")
    if path.exists():
        book = load_book(path)
        if probe.name in book.by_name():
            raise ConfigError(f"{path} already has a probe named {probe.name!r}; choose another --name")
        for other in book:
            if other.reproducible and (other.kind, other.submission) == (probe.kind, probe.submission):
                raise ConfigError(f"{path} already has this {probe.kind} submission as probe {other.name!r}; "
                                  "add your source to that row instead")
        header = list(book.columns)
        text = path.read_text(encoding="utf-8")
    else:
        header, text = list(COLUMNS), ""
    row = probe.to_row()
    renamed = {name: next((c for c in header if ALIASES.get(c, c) == name), name) for name in row}
    missing = [name for name, value in row.items() if value and renamed[name] not in header]
    if missing:
        raise ConfigError(f"{path} has no column for {', '.join(missing)}; add the column(s) to its header first")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n", extrasaction="ignore")
    if not text:
        writer.writeheader()
    writer.writerow({renamed[name]: value for name, value in row.items()})
    if text and not text.endswith("\n"):
        text += "\n"
    new_text = text + buffer.getvalue()
    temporary = path.with_name(f".{path.stem}.check{path.suffix}")
    try:
        temporary.write_text(new_text, encoding="utf-8")
        load_book(temporary)  # the appended row must read back
    except DataError as error:
        raise ConfigError(f"{path}: the new probe would not read back ({error.problem}); not changed") from None
    except OSError as error:  # the book's folder cannot be written: name the book, not the check file
        raise ConfigError(f"{path}: cannot write into {path.parent} ({error.strerror or error}); not changed") from None
    finally:
        temporary.unlink(missing_ok=True)
    write_text_atomic(path, new_text)
    return load_book(path)
