"""Read tabular files (CSV, JSONL, parquet) into located records.

One job: turn a file into rows of string fields, each row knowing where it came from (row number and,
for text formats, the line it starts on), so every later validation error can point at the exact place.
Nothing here knows what the columns mean.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import DataError

SUPPORTED_FORMATS = ("csv", "jsonl", "parquet")


@dataclass(frozen=True)
class Record:
    """One data row: 1-based `row` (header excluded), the `line` it starts on (None for parquet)."""

    row: int
    line: int | None
    fields: dict[str, str | None]


@dataclass(frozen=True)
class Table:
    path: Path
    columns: tuple[str, ...]
    records: tuple[Record, ...]


def detect_format(path: Path, declared: str | None = None) -> str:
    """The file format, from a declared name or the extension (.csv, .jsonl/.ndjson/.json, .parquet/.pq)."""
    if declared:
        fmt = declared.lower()
    else:
        suffix = path.suffix.lower()
        fmt = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
               ".parquet": "parquet", ".pq": "parquet"}.get(suffix, "")
    if fmt not in SUPPORTED_FORMATS:
        raise DataError(path, f"unknown file format {declared or path.suffix!r}; expected one of {', '.join(SUPPORTED_FORMATS)}")
    return fmt


def read_table(path: str | Path, fmt: str | None = None) -> Table:
    """Read a whole table. Raises DataError for missing files, undecodable bytes and malformed rows."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    fmt = detect_format(path, fmt)
    if fmt == "parquet":
        return _read_parquet(path)
    text = _decode(path)
    if fmt == "csv":
        return _read_csv(path, text)
    return _read_jsonl(path, text)


def _decode(path: Path) -> str:
    """Decode UTF-8 (BOM tolerated). Undecodable bytes survive as surrogates so the parser can say
    which row and column holds them instead of failing at a bare byte offset."""
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return data.decode("utf-8", "surrogateescape")


def _has_undecodable(value: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in value)


def _check_decodable(path: Path, record: Record) -> None:
    for column, value in record.fields.items():
        if value is not None and _has_undecodable(value):
            raise DataError(path, "undecodable bytes (the file is not valid UTF-8)",
                            row=record.row, line=record.line, column=column)


def _read_csv(path: Path, text: str) -> Table:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    # newline="" as the csv docs require: quoted fields keep their own line breaks (\n, \r\n, \r), and
    # other Unicode line separators inside fields are not mistaken for row ends.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(path, "the file is empty (no header row)") from None
    except csv.Error as exc:
        raise DataError(path, f"malformed CSV header: {exc}", line=1) from None
    header = [name.strip() for name in header]
    _check_header(path, header)
    records: list[Record] = []
    row = 0
    while True:
        start_line = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise DataError(path, f"malformed CSV: {exc}", row=row + 1, line=start_line) from None
        if not values or all(v == "" for v in values) and len(values) <= 1:
            continue  # blank line
        row += 1
        if len(values) != len(header):
            raise DataError(path, f"expected {len(header)} fields as in the header, found {len(values)}",
                            row=row, line=start_line)
        record = Record(row, start_line, dict(zip(header, values)))
        _check_decodable(path, record)
        records.append(record)
    return Table(path, tuple(header), tuple(records))


def _check_header(path: Path, header: Sequence[str]) -> None:
    seen: set[str] = set()
    for name in header:
        if _has_undecodable(name):
            raise DataError(path, "undecodable bytes in the header (the file is not valid UTF-8)", line=1)
        if name in seen:
            raise DataError(path, f"the header repeats column '{name}'", line=1)
        seen.add(name)


def _scalar_to_text(value: object) -> str | None:
    """JSON/parquet scalars become strings; None and NaN stay missing (None)."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float, str)):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _read_jsonl(path: Path, text: str) -> Table:
    records: list[Record] = []
    columns: dict[str, None] = {}
    row = 0
    # Split on "\n" only: JSON escapes it inside strings, but not U+2028/U+0085, which str.splitlines
    # would wrongly treat as line ends.
    for line_number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        row += 1
        if _has_undecodable(line):
            raise DataError(path, "undecodable bytes (the file is not valid UTF-8)", row=row, line=line_number)
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(path, f"invalid JSON: {exc.msg} at character {exc.colno}", row=row, line=line_number) from None
        if not isinstance(obj, dict):
            raise DataError(path, f"expected a JSON object per line, found {type(obj).__name__}", row=row, line=line_number)
        fields = {str(key): _scalar_to_text(value) for key, value in obj.items()}
        columns.update(dict.fromkeys(fields))
        records.append(Record(row, line_number, fields))
    return Table(path, tuple(columns), tuple(records))


def _read_parquet(path: Path) -> Table:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow is a declared dependency
        raise DataError(path, "reading parquet needs pyarrow (pip install pyarrow)") from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises a zoo of types for corrupt files
        raise DataError(path, f"cannot read parquet file: {exc}") from None
    columns = tuple(table.column_names)
    rows = table.to_pylist()
    records = tuple(Record(i, None, {k: _scalar_to_text(v) for k, v in r.items()}) for i, r in enumerate(rows, start=1))
    return Table(path, columns, records)


def iter_missing(values: Sequence[str | None]) -> Iterator[int]:
    """Indices of values that are missing: None, empty/blank, or a NaN spelled as text."""
    for index, value in enumerate(values):
        if is_missing(value):
            yield index


def is_missing(value: str | None) -> bool:
    return value is None or value.strip() == "" or value.strip().lower() in {"nan", "null", "none"}
