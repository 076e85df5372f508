"""Read tabular files (CSV, JSONL, parquet) into located records.

One job: turn a file into rows of fields, each row knowing where it came from (row number and, for text
formats, the line it starts on), so every later validation error can point at the exact place. Every
field is offered as text; a value the file typed as something else (a JSON number, a parquet int64
column) also keeps that type in `Record.types`, because "0" read from a number column is not a prompt
anyone wrote. Nothing here knows what the columns mean: `field_text` applies the caller's rule.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path

from harness.errors import DataError
from harness.jsontext import describe_json_error

SUPPORTED_FORMATS = ("csv", "jsonl", "parquet")

#: The csv module refuses fields over its limit (131,072 characters by default), so a valid file with a
#: long essay in an unused column read as "malformed". The limit is lifted to this, or to the largest
#: value below it that the platform's C long holds (sys.maxsize overflows it on Windows).
CSV_FIELD_LIMIT = sys.maxsize


@dataclass(frozen=True)
class SourceType:
    """How the file typed a value that is not text.

    Args:
        name: the type as the file's user knows it: an Arrow type ("int64", "list<item: string>") or a
            JSON kind ("a JSON number", "a JSON object").
        is_number: numbers have one obvious text form, so a field may accept them (ids, group labels).
    """

    name: str
    is_number: bool = False


@dataclass(frozen=True)
class Record:
    """One data row: 1-based `row` (header excluded), the `line` it starts on (None for parquet).

    `fields` holds every value as text (None when missing). `types` holds, for the values the file typed
    as something other than text, that type; text and missing values are absent, so a CSV record's
    `types` is empty."""

    row: int
    line: int | None
    fields: dict[str, str | None]
    types: Mapping[str, SourceType] = dataclass_field(default_factory=dict)


@dataclass(frozen=True)
class Table:
    path: Path
    columns: tuple[str, ...]
    records: tuple[Record, ...]


def field_text(path: str | Path, record: Record, column: str, *, numbers: bool = False) -> str | None:
    """The value of `column` as text, None when missing.

    Raises DataError naming the file, row and column when the file typed the value as something other
    than text (a number too, unless `numbers`): a JSON 0 or a parquet int64 must not quietly become the
    prompt "0"."""
    value = record.fields.get(column)
    found = record.types.get(column)
    if found is not None and not (numbers and found.is_number):
        shown = value if value is None or len(value) <= 40 else value[:39] + "…"
        expected = "text or a number" if numbers else "text"
        raise DataError(path, f"expected {expected}, found {found.name} ({shown})",
                        row=record.row, line=record.line, column=column)
    return value


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
    try:
        text = _decode(path)
    except OSError as exc:
        raise DataError(path, f"cannot read the file: {exc.strerror or exc}") from None
    if fmt == "csv":
        return _read_csv(path, text)
    if not text.strip():
        raise DataError(path, "the file is empty (no JSON lines)")
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


def _lift_csv_field_limit() -> int:
    """Raise the csv module's field limit to CSV_FIELD_LIMIT (or the largest value under it that a C
    long holds) and return the limit in force. The limit is the csv module's process-wide state: it is
    only ever raised, which lets more valid files through and changes nothing else for other readers."""
    wanted = CSV_FIELD_LIMIT
    while csv.field_size_limit() < wanted:
        try:
            csv.field_size_limit(wanted)
        except OverflowError:
            wanted //= 2
    return csv.field_size_limit()


def _read_csv(path: Path, text: str) -> Table:
    limit = _lift_csv_field_limit()
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    # newline="" as the csv docs require: quoted fields keep their own line breaks (\n, \r\n, \r), and
    # other Unicode line separators inside fields are not mistaken for row ends.
    buffer = io.StringIO(text, newline="")
    reader = csv.reader(buffer, delimiter=delimiter, strict=True)
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
        offset = buffer.tell()  # the reader pulls one line at a time: this is where the next row starts
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                index = _field_over_limit(text, offset, delimiter, limit)
                column = header[index] if index is not None and index < len(header) else None
                raise DataError(path, f"a field of over {limit:,} characters, the most the csv module reads on "
                                "this platform", row=row + 1, line=start_line, column=column) from None
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


def _field_over_limit(text: str, offset: int, delimiter: str, limit: int) -> int | None:
    """Index of the first field longer than `limit` in the CSV row that starts at `offset`, or None. The
    csv module only says that *some* field was too long; the error should name the column."""
    field_pattern = re.compile(rf'"(?P<quoted>[^"]*(?:""[^"]*)*)"?|(?P<plain>[^"{re.escape(delimiter)}\r\n]*)')
    index, position = 0, offset
    while True:
        match = field_pattern.match(text, position)
        quoted = match.group("quoted")
        length = len(match.group("plain")) if quoted is None else len(quoted) - quoted.count('""')
        if length > limit:
            return index
        position = match.end()
        if not text.startswith(delimiter, position):
            return None
        index, position = index + 1, position + len(delimiter)


def _check_header(path: Path, header: Sequence[str]) -> None:
    seen: set[str] = set()
    for name in header:
        if _has_undecodable(name):
            raise DataError(path, "undecodable bytes in the header (the file is not valid UTF-8)", line=1)
        if name in seen:
            raise DataError(path, f"the header repeats column '{name}'", line=1)
        seen.add(name)


def _json_cell(value: object) -> tuple[str | None, SourceType | None]:
    """A JSON value as (text, type when it is not a string). null and NaN are missing (None)."""
    if value is None or isinstance(value, float) and math.isnan(value):
        return None, None
    if isinstance(value, str):
        return value, None
    if isinstance(value, bool):
        return str(value).lower(), SourceType("a JSON boolean")
    if isinstance(value, (int, float)):
        return str(value), SourceType("a JSON number", is_number=True)
    kind = "a JSON object" if isinstance(value, dict) else "a JSON array"
    return json.dumps(value, ensure_ascii=False), SourceType(kind)


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
            raise DataError(path, f"invalid JSON: {describe_json_error(exc)}", row=row, line=line_number) from None
        if not isinstance(obj, dict):
            raise DataError(path, f"expected a JSON object per line, found {type(obj).__name__}", row=row, line=line_number)
        fields: dict[str, str | None] = {}
        types: dict[str, SourceType] = {}
        for key, value in obj.items():
            fields[str(key)], found = _json_cell(value)
            if found is not None:
                types[str(key)] = found
        columns.update(dict.fromkeys(fields))
        records.append(Record(row, line_number, fields, types))
    return Table(path, tuple(columns), tuple(records))


def _read_parquet(path: Path) -> Table:
    try:
        import pyarrow.parquet as pq
        import pyarrow.types as pa_types
    except ImportError:  # pragma: no cover - pyarrow is a declared dependency
        raise DataError(path, "reading parquet needs pyarrow (pip install pyarrow)") from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises a zoo of types for corrupt files
        raise DataError(path, f"cannot read parquet file: {exc}") from None
    columns = tuple(table.column_names)
    _check_header(path, columns)
    cells: list[list[tuple[str | None, SourceType | None]]] = []
    for index in range(len(columns)):
        arrow_type = table.schema.field(index).type
        value_type = arrow_type.value_type if pa_types.is_dictionary(arrow_type) else arrow_type
        source = SourceType(str(arrow_type), is_number=pa_types.is_integer(value_type)
                            or pa_types.is_floating(value_type) or pa_types.is_decimal(value_type))
        cells.append([_arrow_cell(value, source) for value in table.column(index).to_pylist()])
    records = []
    for row, row_cells in enumerate(zip(*cells), start=1):
        fields = {column: text for column, (text, _) in zip(columns, row_cells)}
        types = {column: found for column, (_, found) in zip(columns, row_cells) if found is not None}
        records.append(Record(row, None, fields, types))
    return Table(path, columns, tuple(records))


def _arrow_cell(value: object, source: SourceType) -> tuple[str | None, SourceType | None]:
    """A parquet value as (text, its column's type when the value is not a string). null and NaN are missing."""
    if value is None or isinstance(value, float) and math.isnan(value):
        return None, None
    if isinstance(value, str):
        return value, None
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, (bytes, bytearray)):
        text = bytes(value).decode("utf-8", "backslashreplace")
    elif isinstance(value, (dict, list, tuple)):
        text = json.dumps(value, ensure_ascii=False, default=str)
    else:  # numbers, decimals, dates and times
        text = str(value)
    return text, source


def iter_missing(values: Sequence[str | None]) -> Iterator[int]:
    """Indices of values that are missing: None, empty/blank, or a NaN spelled as text."""
    for index, value in enumerate(values):
        if is_missing(value):
            yield index


def is_missing(value: str | None) -> bool:
    return value is None or value.strip() == "" or value.strip().lower() in {"nan", "null", "none"}
