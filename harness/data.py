"""Suites: the rows a candidate is scored on.

A suite is data, not code (as tasks are YAML in lm-evaluation-harness): an entry in `suites.toml` names
a file, its format and how its columns map onto the fields of a `Sample`. Loading validates every row
and fails with the file, row and column of the first problem.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from harness.errors import ConfigError, DataError
from harness.hashing import json_fingerprint
from harness.tables import Table, detect_format, is_missing, read_table
from harness.tomlfile import read_toml

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


def load_suite(spec: SuiteSpec) -> Suite:
    """Read and validate a suite. Raises DataError naming file, row and column on the first bad value."""
    table = read_table(spec.path, spec.format)
    return suite_from_table(spec, table)


def suite_from_table(spec: SuiteSpec, table: Table) -> Suite:
    path = table.path
    mapping = _resolve_columns(spec, table)
    samples: list[Sample] = []
    first_row_of_id: dict[str, int] = {}
    for record in table.records:
        values: dict[str, str | None] = {}
        for field_name, column in mapping.items():
            if column is None:
                values[field_name] = None
                continue
            value = record.fields.get(column)
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


def _resolve_columns(spec: SuiteSpec, table: Table) -> dict[str, str | None]:
    """Map each Sample field to a column of this table, or None when the suite goes without it."""
    unknown = set(spec.columns) - set(KAGGLE_COLUMNS)
    if unknown:
        raise ConfigError(f"suite '{spec.name}': unknown field(s) in columns: {', '.join(sorted(unknown))}; "
                          f"known fields: {', '.join(KAGGLE_COLUMNS)}")
    found = ", ".join(table.columns) or "(none)"
    mapping: dict[str, str | None] = {}
    for field_name in KAGGLE_COLUMNS:
        column = spec.column_for(field_name)
        explicitly_mapped = field_name in spec.columns
        if column == "" and field_name in OPTIONAL_FIELDS:
            mapping[field_name] = None
        elif column in table.columns:
            mapping[field_name] = column
        elif field_name == "group" and not explicitly_mapped:
            mapping[field_name] = None  # groups are optional unless asked for
        else:
            hint = "" if field_name not in OPTIONAL_FIELDS else f' (map it to "" in the suite entry if the data has no {field_name})'
            raise DataError(table.path, f"missing column '{column}' for field {field_name}; columns found: {found}{hint}")
    return mapping


def load_suite_specs(path: str | Path) -> dict[str, SuiteSpec]:
    """Read a suites file (TOML). Relative data paths are resolved against the file's folder."""
    path = Path(path)
    config = read_toml(path, "suites file")
    entries = config.get("suites")
    if not isinstance(entries, dict) or not entries:
        raise ConfigError(f"{path}: expected a [suites.NAME] table per suite")
    specs: dict[str, SuiteSpec] = {}
    for name, entry in entries.items():
        if not isinstance(entry, dict) or "path" not in entry:
            raise ConfigError(f"{path}: suite '{name}' needs a 'path'")
        unknown = set(entry) - {"path", "format", "columns", "description"}
        if unknown:
            raise ConfigError(f"{path}: suite '{name}': unknown key(s) {', '.join(sorted(unknown))}")
        data_path = Path(entry["path"])
        if not data_path.is_absolute():
            data_path = path.parent / data_path
        columns = entry.get("columns", {})
        if not isinstance(columns, dict) or not all(isinstance(v, str) for v in columns.values()):
            raise ConfigError(f"{path}: suite '{name}': 'columns' must map field names to column names")
        specs[name] = SuiteSpec(name, data_path, entry.get("format"), dict(columns), entry.get("description", ""))
    return specs


def spec_for_file(path: str | Path, columns: Mapping[str, str] | None = None, name: str | None = None) -> SuiteSpec:
    """An ad-hoc suite for a data file given on the command line (no suites.toml entry needed)."""
    path = Path(path)
    detect_format(path)
    return SuiteSpec(name or path.stem, path, None, dict(columns or {}))


def select_specs(specs: Mapping[str, SuiteSpec], names: Sequence[str] | None) -> list[SuiteSpec]:
    """The specs to run, in file order; unknown names are an error that lists the known ones."""
    if not names:
        return list(specs.values())
    missing = [n for n in names if n not in specs]
    if missing:
        raise ConfigError(f"unknown suite(s): {', '.join(missing)}; known: {', '.join(specs)}")
    return [specs[n] for n in names]
