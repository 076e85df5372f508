"""A predictions file as a candidate: score a Kaggle submission CSV (`id,rewrite_prompt`) before you
spend one of the day's submissions on it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from harness.data import Sample
from harness.errors import DataError
from harness.hashing import file_fingerprint, json_fingerprint
from harness.tables import Table, read_table


class MissingPredictionsError(DataError):
    """The file has no prediction for some rows of the suite."""

    def __init__(self, path: str | Path, missing: Sequence[str], total: int) -> None:
        self.missing = list(missing)
        self.total = total
        shown = ", ".join(repr(i) for i in self.missing[:5]) + (" …" if len(self.missing) > 5 else "")
        super().__init__(path, f"no prediction for {len(self.missing)} of the suite's {total} ids (first: {shown})")


class PredictionsFileCandidate:
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
        self._predictions: dict[str, str] | None = None

    def __repr__(self) -> str:
        return f"PredictionsFileCandidate(path='{self.path}')"

    def predictions(self) -> dict[str, str]:
        """id → prediction, read once. Empty predictions are kept (as "") so the suite check can name them."""
        if self._predictions is None:
            self._predictions = self._read(read_table(self.path))
        return self._predictions

    def _read(self, table: Table) -> dict[str, str]:
        for column in (self.id_column, self.prediction_column):
            if column not in table.columns:
                raise DataError(self.path, f"missing column '{column}'; columns found: {', '.join(table.columns) or '(none)'}")
        result: dict[str, str] = {}
        first_row: dict[str, int] = {}
        for record in table.records:
            sample_id = (record.fields.get(self.id_column) or "").strip()
            if not sample_id:
                raise DataError(self.path, "empty id", row=record.row, line=record.line, column=self.id_column)
            if sample_id in first_row:
                raise DataError(self.path, f"duplicate id {sample_id!r} (first seen in row {first_row[sample_id]})",
                                row=record.row, line=record.line, column=self.id_column)
            first_row[sample_id] = record.row
            value = record.fields.get(self.prediction_column)
            result[sample_id] = "" if value is None or value.strip().lower() in {"nan", "null", "none"} else value
        return result

    def predict(self, samples: Sequence[Sample]) -> list[str]:
        predictions = self.predictions()
        missing = [s.id for s in samples if s.id not in predictions]
        if missing:
            raise MissingPredictionsError(self.path, missing, len(samples))
        return [predictions[s.id] for s in samples]
