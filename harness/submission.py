"""The Kaggle submission file: `id,rewrite_prompt`, one row per test id, in the test file's order.

One job: turn (ids, answers) into a file Kaggle's scorer accepts, or say precisely why not. Kaggle reads
the file with pandas and fails the whole submission on a missing id or an empty/NaN prompt, so:
- an answer that is empty, blank or that pandas would read as NaN ("nan", "NULL", "N/A", …) is replaced
  by a fallback string (what Kaggle-safe notebooks do) and counted, by id;
- ids must be non-empty and each present once (the error names the rows);
- the text is rendered with the csv module (quotes, commas and line breaks inside a prompt are quoted),
  read back with the csv module, and compared row by row with what was meant to be written before the
  file is written (atomically, by `harness.files`). `pandas_read_back` does the same check with pandas
  where it is installed (as on Kaggle); it is not a dependency of the harness.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.files import write_text_atomic
from harness.tables import is_missing

COLUMNS = ("id", "rewrite_prompt")
#: The default fallback: the public 0.63 mean prompt (candidates.toml's `mean-prompt`). A repaired row
#: then scores what the best-known constant scores instead of failing the submission.
DEFAULT_FALLBACK = ("Please improve this text using the writing style with maintaining the original meaning but "
                    "altering the tone.")
#: Strings pandas.read_csv reads as NaN by default (pandas' STR_NA_VALUES): such a prompt would reach
#: Kaggle's scorer as NaN.
PANDAS_NA_STRINGS = frozenset({
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A",
    "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})


class SubmissionError(HarnessError):
    """The rows cannot make a valid Kaggle submission; the message names the rows."""


@dataclass(frozen=True)
class SubmissionRows:
    """What will be written: ids and prompts in input order, and which ids had their answer repaired."""

    ids: tuple[str, ...]
    prompts: tuple[str, ...]
    repaired_ids: tuple[str, ...]
    fallback: str

    @property
    def n_repaired(self) -> int:
        return len(self.repaired_ids)


def needs_repair(answer: str | None) -> bool:
    """Whether Kaggle would see this answer as empty or NaN."""
    return answer is None or is_missing(answer) or answer.strip() in PANDAS_NA_STRINGS


def rows_text(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


def submission_rows(ids: Sequence[str], answers: Sequence[str | None], *,
                    fallback: str = DEFAULT_FALLBACK) -> SubmissionRows:
    """Check the ids (non-empty, each once) and repair empty or NaN-like answers with `fallback`.

    Raises SubmissionError naming the rows (1-based, as in the input file) when the ids are wrong or the
    fallback itself would be read as empty.
    """
    if needs_repair(fallback):
        raise SubmissionError(f"the fallback prompt {fallback!r} is itself empty or read as NaN by pandas; "
                              "give a real sentence with --fallback")
    if len(ids) != len(answers):
        raise SubmissionError(f"{len(answers)} answers for {len(ids)} ids")
    if not ids:
        raise SubmissionError("no rows to write: the input has no rows")
    first_row: dict[str, int] = {}
    problems: list[str] = []
    for row, sample_id in enumerate(ids, start=1):
        if not str(sample_id).strip():
            problems.append(f"row {row}: empty id")
        elif sample_id in first_row:
            problems.append(f"row {row}: id {sample_id!r} again (first in row {first_row[sample_id]})")
        else:
            first_row[sample_id] = row
    if problems:
        raise SubmissionError(f"every id must be present once: {'; '.join(problems[:10])}"
                              + (f" … ({len(problems)} problems)" if len(problems) > 10 else ""))
    repaired = [sample_id for sample_id, answer in zip(ids, answers) if needs_repair(answer)]
    prompts = tuple(fallback if needs_repair(answer) else answer for answer in answers)
    return SubmissionRows(tuple(ids), prompts, tuple(repaired), fallback)


def render_csv(rows: SubmissionRows) -> str:
    """The file's text: a header and one quoted-as-needed row per id ("\\n" line ends, as Kaggle's samples).

    The csv module quotes a field holding the delimiter, a quote or a character of the line terminator, but
    not a lone "\\r" when lines end in "\\n": every reader would take it for a line end. Such rows are
    written fully quoted."""
    buffer = io.StringIO(newline="")
    minimal = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    quoted = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL)
    minimal.writerow(COLUMNS)
    for row in zip(rows.ids, rows.prompts):
        (quoted if any("\r" in value for value in row) else minimal).writerow(row)
    return buffer.getvalue()


def _mismatches(rows: SubmissionRows, read: Sequence[tuple[str, str]], how: str) -> None:
    """Raise SubmissionError naming the rows where `read` differs from `rows`."""
    if len(read) != len(rows.ids):
        raise SubmissionError(f"read back with {how}, the file has {len(read)} rows instead of {len(rows.ids)}")
    wrong = [row for row, (expected, found) in enumerate(zip(zip(rows.ids, rows.prompts), read), start=1)
             if tuple(found) != expected]
    if wrong:
        raise SubmissionError(f"read back with {how}, {len(wrong)} row(s) differ from what was written "
                              f"(rows {', '.join(map(str, wrong[:10]))}; first: id {rows.ids[wrong[0] - 1]!r})")


def csv_read_back(text: str, rows: SubmissionRows) -> None:
    """Parse `text` with the csv module and compare every row with `rows` (SubmissionError on a mismatch)."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        read = [tuple(values) for values in reader]
    except csv.Error as error:  # e.g. a NUL character, which Python 3.10's reader refuses
        raise SubmissionError(f"read back with csv, line {reader.line_num} cannot be parsed: {error}") from None
    if tuple(header or ()) != COLUMNS:
        raise SubmissionError(f"read back with csv, the header is {header!r}, not {','.join(COLUMNS)}")
    _mismatches(rows, read, "csv")


def pandas_read_back(text: str, rows: SubmissionRows) -> bool:
    """The same comparison after `pandas.read_csv` (how Kaggle reads a submission), with its NaN strings
    and every value read as text (so "007" stays "007": the texts are compared, not pandas' guess of a
    type). Returns False, checking nothing, where pandas is not installed."""
    try:
        import pandas
    except ImportError:
        return False
    frame = pandas.read_csv(io.StringIO(text), dtype=str, keep_default_na=True)
    if tuple(frame.columns) != COLUMNS:
        raise SubmissionError(f"read back with pandas, the columns are {list(frame.columns)}, not {list(COLUMNS)}")
    nan = [row for row, value in enumerate(frame["rewrite_prompt"], start=1) if not isinstance(value, str)]
    if nan:
        raise SubmissionError(f"read back with pandas, {len(nan)} prompt(s) are NaN (rows {', '.join(map(str, nan[:10]))})")
    _mismatches(rows, list(zip(frame["id"], frame["rewrite_prompt"])), "pandas")
    return True


@dataclass(frozen=True)
class WrittenSubmission:
    path: Path
    sha256: str
    n_rows: int
    #: the readers that parsed the text back identically before it was written
    checked_with: tuple[str, ...]


def write_submission(path: str | Path, rows: SubmissionRows) -> WrittenSubmission:
    """Render, read back (csv, and pandas where installed), then write atomically. Nothing is written when
    a check fails, so a previous file at `path` survives a failed attempt."""
    text = render_csv(rows)
    csv_read_back(text, rows)
    checked = ("csv", "pandas") if pandas_read_back(text, rows) else ("csv",)
    data = text.encode("utf-8")
    written = write_text_atomic(path, text)
    return WrittenSubmission(written, hashlib.sha256(data).hexdigest(), len(rows.ids), checked)


def describe_existing(path: Path) -> str | None:
    """What a file about to be replaced holds (rows, sha256 prefix), for the old → new line; None if absent."""
    if not path.is_file():
        return None
    data = path.read_bytes()
    try:
        n_rows = max(sum(1 for _ in csv.reader(io.StringIO(data.decode("utf-8"), newline=""))) - 1, 0)
        rows = rows_text(n_rows)
    except (UnicodeDecodeError, csv.Error):
        rows = f"{len(data)} bytes, not a readable CSV"
    return f"{rows}, sha256 {hashlib.sha256(data).hexdigest()[:12]}"
