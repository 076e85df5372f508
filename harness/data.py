"""Suites: the rows a candidate is scored on.

A suite is data, not code (as tasks are YAML in lm-evaluation-harness): an entry in `suites.toml` names
a file, its format and how its columns map onto the fields of a `Sample`. Loading validates every row
and fails with the suite, file, row and column of the first problem; `check_suites` loads every suite of a
suites file and returns one outcome per suite, so a listing names every broken suite.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from harness.errors import ConfigError, DataError, HarnessError
from harness.hashing import json_fingerprint
from harness.tables import SUPPORTED_FORMATS, Table, detect_format, field_text, is_missing, read_table
from harness.tomlfile import describe_value, expect_type, read_toml

#: Sample fields and the Kaggle column each one is read from unless a suite maps it elsewhere.
KAGGLE_COLUMNS: dict[str, str] = {
    "id": "id",
    "original_text": "original_text",
    "rewrite_prompt": "rewrite_prompt",
    "rewritten_text": "rewritten_text",
    "group": "group",
}
#: Fields that may be switched off (mapped to "" in a suite entry) because a row can be scored without them.
OPTIONAL_FIELDS = ("id", "original_text", "rewritten_text", "group")
#: Fields that label a row rather than hold text: a number is a fine id or group (JSON 7, parquet int64).
LABEL_FIELDS = ("id", "group")
#: Keys of a `[suites.NAME]` entry.
ENTRY_KEYS = ("path", "format", "columns", "description")


@dataclass(frozen=True)
class Sample:
    """One prompt-recovery row. `group` clusters rows for the statistics (e.g. the prompt family)."""

    id: str
    original_text: str
    rewritten_text: str
    rewrite_prompt: str
    group: str | None = None


@dataclass(frozen=True)
class Suite:
    """A named, validated, ordered collection of samples."""

    name: str
    samples: tuple[Sample, ...]
    source: str = ""
    description: str = ""

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.samples]

    @property
    def prompts(self) -> list[str]:
        return [s.rewrite_prompt for s in self.samples]

    @property
    def has_groups(self) -> bool:
        return any(s.group is not None for s in self.samples)

    @property
    def groups(self) -> list[str] | None:
        """Group labels for clustered statistics, or None when the suite has no groups."""
        if not self.has_groups:
            return None
        return [s.group if s.group is not None else f"__row_{i}" for i, s in enumerate(self.samples)]

    @cached_property
    def fingerprint(self) -> str:
        """Changes whenever any row's content changes: baselines and caches are tied to it."""
        return json_fingerprint([[s.id, s.original_text, s.rewritten_text, s.rewrite_prompt, s.group]
                                 for s in self.samples])


@dataclass(frozen=True)
class SuiteSpec:
    """A `suites.toml` entry: where the data lives and how its columns map onto Sample fields."""

    name: str
    path: Path
    format: str | None = None
    columns: Mapping[str, str] = field(default_factory=dict)
    description: str = ""

    def column_for(self, field_name: str) -> str:
        """The source column for a field; "" means the suite does not have that field."""
        return self.columns.get(field_name, KAGGLE_COLUMNS[field_name])


class SuiteDataError(DataError):
    """A DataError met while loading a named suite. The message leads with the suite's name: one run or
    one listing loads many suites, and a file alone does not say which entry points at it."""

    def __init__(self, suite: str, error: DataError) -> None:
        super().__init__(error.path, error.problem, row=error.row, line=error.line, column=error.column)
        self.suite = suite
        self.args = (f"suite '{suite}': {self.args[0]}",)


def load_suite(spec: SuiteSpec, *, needs_truth: bool = True) -> Suite:
    """Read and validate a suite. Raises DataError naming the suite, file, row and column of the first bad value.
    `needs_truth=False` reads rows to be answered (Kaggle's test.csv): no true prompt is read or required."""
    try:
        return suite_from_table(spec, read_table(spec.path, spec.format), needs_truth=needs_truth)
    except SuiteDataError:
        raise
    except DataError as error:
        raise SuiteDataError(spec.name, error) from None


def suite_from_table(spec: SuiteSpec, table: Table, *, needs_truth: bool = True) -> Suite:
    path = table.path
    mapping = _resolve_columns(spec, table, needs_truth=needs_truth)
    samples: list[Sample] = []
    first_row_of_id: dict[str, int] = {}
    for record in table.records:
        values: dict[str, str | None] = {}
        for field_name, column in mapping.items():
            if column is None:
                values[field_name] = None
                continue
            value = field_text(path, record, column, numbers=field_name in LABEL_FIELDS)
            if field_name == "group":
                values[field_name] = None if is_missing(value) else value
                continue
            if is_missing(value):
                what = "missing" if value is None else ("empty" if not (value or "").strip() else f"NaN-like ({value!r})")
                raise DataError(path, f"{field_name} is {what}; every row needs a non-empty value",
                                row=record.row, line=record.line, column=column)
            values[field_name] = value
        sample_id = values["id"] if values["id"] is not None else str(record.row)
        sample_id = sample_id.strip()
        if sample_id in first_row_of_id:
            raise DataError(path, f"duplicate id {sample_id!r} (first seen in row {first_row_of_id[sample_id]})",
                            row=record.row, line=record.line, column=mapping["id"])
        first_row_of_id[sample_id] = record.row
        samples.append(Sample(
            id=sample_id,
            original_text=values["original_text"] or "",
            rewritten_text=values["rewritten_text"] or "",
            rewrite_prompt=values["rewrite_prompt"] or "",
            group=values["group"],
        ))
    if not samples:
        raise DataError(path, "the suite has no rows")
    return Suite(spec.name, tuple(samples), source=str(path), description=spec.description)


def _resolve_columns(spec: SuiteSpec, table: Table, *, needs_truth: bool = True) -> dict[str, str | None]:
    """Map each Sample field to a column of this table, or None when the suite goes without it. Rows to be
    answered (`needs_truth=False`) go without the true prompt: it is neither read nor required."""
    _check_columns(spec.columns, f"suite '{spec.name}'")
    mapping: dict[str, str | None] = {}
    missing: list[tuple[str, str]] = []  # (field, column): all of them in one error, not one per attempt
    for field_name in KAGGLE_COLUMNS:
        column = spec.column_for(field_name)
        explicitly_mapped = field_name in spec.columns
        if column == "" and field_name in OPTIONAL_FIELDS or field_name == "rewrite_prompt" and not needs_truth:
            mapping[field_name] = None
        elif column in table.columns:
            mapping[field_name] = column
        elif field_name == "group" and not explicitly_mapped:
            mapping[field_name] = None  # groups are optional unless asked for
        else:
            missing.append((field_name, column))
    if missing:
        found = ", ".join(table.columns) or "(none)"
        listed = ", ".join(f"'{column}' for field {field_name}" for field_name, column in missing)
        optional = [field_name for field_name, _ in missing if field_name in OPTIONAL_FIELDS]
        hint = (f' (map {" and ".join(optional)} to "" in the suite entry if the data has no '
                f'{" or ".join(optional)})' if optional else "")
        raise DataError(table.path, f"missing column{'s' if len(missing) > 1 else ''} {listed}; "
                                    f"columns found: {found}{hint}")
    return mapping


def _check_columns(columns: object, where: str) -> dict[str, str]:
    """A suite's column mapping, checked: a table of known field = column name ("" switches an optional
    field off). ConfigError names `where` and the key."""
    columns = expect_type(columns, dict, where, "columns", "a table of field = column name")
    for field_name, column in columns.items():
        key = f"columns.{field_name}"
        if field_name not in KAGGLE_COLUMNS:
            raise ConfigError(f"{where}: '{key}' is not a field; expected one of {', '.join(KAGGLE_COLUMNS)}")
        expect_type(column, str, where, key, "a string (the column name)")
        if not column.strip() and (column or field_name not in OPTIONAL_FIELDS):
            raise ConfigError(f"{where}: '{key}' must be a column name; only {', '.join(OPTIONAL_FIELDS)} can be "
                              'switched off with ""')
    return dict(columns)


def _suite_entries(path: Path) -> dict[str, object]:
    """The `[suites.NAME]` entries of a suites file, unchecked; ConfigError when the file has none."""
    config = read_toml(path, "suites file")
    entries = config.get("suites")
    if not isinstance(entries, dict) or not entries:
        raise ConfigError(f"{path}: expected a [suites.NAME] table per suite")
    return entries


def _spec_from_entry(path: Path, name: str, entry: object) -> SuiteSpec:
    """Check one `[suites.NAME]` entry (every key's type) and build its spec. Relative data paths are
    resolved against the suites file's folder."""
    where = f"{path}: suite '{name}'"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a table ([suites.{name}] with a 'path'), found {describe_value(entry)}")
    unknown = sorted(set(entry) - set(ENTRY_KEYS))
    unknown_text = f"unknown key(s) {', '.join(unknown)}; known: {', '.join(ENTRY_KEYS)}"
    if "path" not in entry:
        raise ConfigError(f"{where} needs a 'path' (the data file)" + (f"; {unknown_text}" if unknown else ""))
    if unknown:
        raise ConfigError(f"{where}: {unknown_text}")
    data_path = expect_type(entry["path"], str, where, "path", "a string (the data file)")
    if not data_path.strip():
        raise ConfigError(f"{where}: 'path' must be a non-empty string (the data file)")
    declared = entry.get("format")
    if declared is not None and (not isinstance(declared, str) or declared.lower() not in SUPPORTED_FORMATS):
        raise ConfigError(f"{where}: 'format' must be one of {', '.join(SUPPORTED_FORMATS)}, "
                          f"found {describe_value(declared)}")
    description = expect_type(entry.get("description", ""), str, where, "description", "a string")
    columns = _check_columns(entry.get("columns", {}), where)
    resolved = Path(data_path).expanduser()
    if not resolved.is_absolute():
        resolved = path.parent / resolved
    return SuiteSpec(name, resolved, declared, columns, description)


def load_suite_specs(path: str | Path) -> dict[str, SuiteSpec]:
    """Read a suites file (TOML). Every entry is checked; the first bad one is a ConfigError naming the
    file, the suite and the key. Relative data paths are resolved against the file's folder."""
    path = Path(path)
    return {name: _spec_from_entry(path, name, entry) for name, entry in _suite_entries(path).items()}


@dataclass(frozen=True)
class SuiteCheck:
    """The outcome of loading one suite of a suites file.

    Args:
        name: the suite's name in the file.
        suite: the loaded suite, or None when it could not be loaded.
        error: why it could not be loaded (the message names the suite), or None.
        spec: the suite's entry, or None when the entry itself is invalid.
    """

    name: str
    suite: Suite | None
    error: str | None
    spec: SuiteSpec | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def check_suites(path: str | Path) -> list[SuiteCheck]:
    """Load every suite of a suites file: one outcome per suite, in file order, so a listing names every
    broken suite instead of stopping at the first. A problem with the file as a whole (missing, invalid
    TOML, no [suites.NAME] table) still raises ConfigError: there is no suite to name."""
    path = Path(path)
    outcomes: list[SuiteCheck] = []
    for name, entry in _suite_entries(path).items():
        try:
            spec = _spec_from_entry(path, name, entry)
        except ConfigError as error:
            outcomes.append(SuiteCheck(name, None, str(error)))
            continue
        try:
            outcomes.append(SuiteCheck(name, load_suite(spec), None, spec))
        except HarnessError as error:
            outcomes.append(SuiteCheck(name, None, str(error), spec))
    return outcomes


def spec_for_file(path: str | Path, columns: Mapping[str, str] | None = None, name: str | None = None) -> SuiteSpec:
    """An ad-hoc suite for a data file given on the command line (no suites.toml entry needed)."""
    path = Path(path)
    detect_format(path)
    name = name or path.stem
    return SuiteSpec(name, path, None, _check_columns(dict(columns or {}), f"suite '{name}'"))


def select_specs(specs: Mapping[str, SuiteSpec], names: Sequence[str] | None) -> list[SuiteSpec]:
    """The specs to run, in file order; unknown names are an error that lists the known ones."""
    if not names:
        return list(specs.values())
    missing = [n for n in names if n not in specs]
    if missing:
        raise ConfigError(f"unknown suite(s): {', '.join(missing)}; known: {', '.join(specs)}")
    return [specs[n] for n in names]
