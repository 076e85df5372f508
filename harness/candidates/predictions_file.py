"""A predictions file as a candidate: score a Kaggle submission CSV (`id,rewrite_prompt`) before you
spend one of the day's submissions on it.

Rows are matched to the suite by id, or, with `id_column=""`, by position (the i-th prediction row answers
the i-th suite row; the counts must match): the mode for a file without ids, such as the suite file itself
with a column of guesses.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from harness.data import Sample
from harness.errors import DataError
from harness.hashing import file_fingerprint, json_fingerprint
from harness.tables import Table, field_text, is_missing, read_table


class MissingPredictionsError(DataError):
    """The file has no prediction for some rows of the suite."""

    def __init__(self, path: str | Path, missing: Sequence[str], total: int) -> None:
        self.missing = list(missing)
        self.total = total
        shown = ", ".join(repr(i) for i in self.missing[:5]) + (" …" if len(self.missing) > 5 else "")
        super().__init__(path, f"no prediction for {len(self.missing)} of the suite's {total} ids (first: {shown})")


class PredictionsFileCandidate:
    """Predictions read from a CSV, JSONL or parquet file.

    Args:
        path: the file.
        id_column: the column of sample ids; "" aligns rows by position instead.
        prediction_column: the column of predicted prompts (text; a number or an object is an error).
        name, spec: how reports and specs name the candidate.
    """

    def __init__(self, path: str | Path, *, id_column: str = "id", prediction_column: str = "rewrite_prompt",
                 name: str | None = None, spec: str | None = None) -> None:
        self.path = Path(path)
        self.id_column = id_column
        self.prediction_column = prediction_column
        self.name = name or f"file:{self.path.name}"
        self.spec = spec or f"file:{self.path}"
        if not self.path.is_file():
            raise DataError(self.path, "predictions file not found")
        self.fingerprint = json_fingerprint({
            "kind": "predictions-file", "content": file_fingerprint(self.path),
            "id_column": id_column, "prediction_column": prediction_column})
        self._rows: list[tuple[str | None, str]] | None = None

    def __repr__(self) -> str:
        return f"PredictionsFileCandidate(path='{self.path}')"

    @property
    def by_position(self) -> bool:
        return not self.id_column

    def rows(self) -> list[tuple[str | None, str]]:
        """(id, prediction) per row in file order, read once; the id is None when aligning by position.
        Empty predictions are kept (as "") so the suite check can name them."""
        if self._rows is None:
            self._rows = self._read(read_table(self.path))
        return self._rows

    def predictions(self) -> dict[str, str]:
        """id → prediction (matching by id only)."""
        if self.by_position:
            raise DataError(self.path, "predictions are aligned by position (no id column): there is no id to look up")
        return {sample_id: prediction for sample_id, prediction in self.rows() if sample_id is not None}

    def _read(self, table: Table) -> list[tuple[str | None, str]]:
        for column in (self.id_column, self.prediction_column):
            if column and column not in table.columns:
                raise DataError(self.path, f"missing column '{column}'; columns found: {', '.join(table.columns) or '(none)'}")
        rows: list[tuple[str | None, str]] = []
        first_row: dict[str, int] = {}
        for record in table.records:
            sample_id = None
            if not self.by_position:
                sample_id = (field_text(self.path, record, self.id_column, numbers=True) or "").strip()
                if not sample_id:
                    raise DataError(self.path, "empty id", row=record.row, line=record.line, column=self.id_column)
                if sample_id in first_row:
                    raise DataError(self.path, f"duplicate id {sample_id!r} (first seen in row {first_row[sample_id]})",
                                    row=record.row, line=record.line, column=self.id_column)
                first_row[sample_id] = record.row
            value = field_text(self.path, record, self.prediction_column)
            rows.append((sample_id, "" if is_missing(value) else value))
        return rows

    def predict(self, samples: Sequence[Sample]) -> list[str]:
        if self.by_position:
            rows = self.rows()
            if len(rows) != len(samples):
                raise DataError(self.path, f"predictions align with the suite by position (no id column), but the "
                                           f"file has {len(rows)} prediction rows and the suite {len(samples)} rows; "
                                           "the counts must match")
            return [prediction for _, prediction in rows]
        predictions = self.predictions()
        missing = [s.id for s in samples if s.id not in predictions]
        if missing:
            raise MissingPredictionsError(self.path, missing, len(samples))
        return [predictions[s.id] for s in samples]
