"""Leaderboard probes: submissions whose public leaderboard score is known, and the candidates that
reproduce them locally.

A probes file is a CSV (or JSONL / parquet) with columns
- `prompt` (required): what the submission answered for every row; it may use the placeholders
  `{original_text}` and `{rewritten_text}`, filled per row, so a submission that answered each row's
  original text is the probe `{original_text}` ("row-dependent" probes); `{{` and `}}` are literal braces;
- `leaderboard_score` (required): its public leaderboard score, a number in [0, 1];
- `name` (optional, unique): a short label for tables and plots (default: the prompt, shortened);
- `note` (optional): where the score comes from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.candidates.base import Candidate
from harness.candidates.chat import PLACEHOLDERS, check_template, render_template
from harness.candidates.constant import ConstantCandidate
from harness.data import Sample
from harness.errors import ConfigError, DataError
from harness.hashing import json_fingerprint
from harness.tables import is_missing, read_table

REQUIRED_COLUMNS = ("prompt", "leaderboard_score")
OPTIONAL_COLUMNS = ("name", "note")


@dataclass(frozen=True)
class Probe:
    """One probe: a submission and its public leaderboard score."""

    name: str
    prompt: str
    leaderboard_score: float
    note: str = ""

    @property
    def row_dependent(self) -> bool:
        """Whether the prediction depends on the row ({original_text} / {rewritten_text} in the prompt)."""
        return any("{" + p + "}" in self.prompt.replace("{{", "").replace("}}", "") for p in PLACEHOLDERS)

    def candidate(self) -> Candidate:
        """The candidate that answers what the probe's submission answered."""
        if self.row_dependent:
            return TemplateCandidate(f"probe:{self.name}", self.prompt)
        return ConstantCandidate(f"probe:{self.name}", self.prompt.replace("{{", "{").replace("}}", "}"))


class TemplateCandidate:
    """Answers `template` with each row's texts filled in (a row-dependent probe)."""

    def __init__(self, name: str, template: str) -> None:
        check_template(template, f"candidate '{name}'", require_placeholder=True)
        self.name = name
        self.spec = name
        self.template = template
        self.fingerprint = json_fingerprint({"kind": "template", "template": template})

    def __repr__(self) -> str:
        return f"TemplateCandidate(name={self.name!r}, template={self.template!r})"

    def predict(self, samples: Sequence[Sample]) -> list[str]:
        return [render_template(self.template, sample) for sample in samples]


def load_probes(path: str | Path) -> list[Probe]:
    """Read and validate a probes file; DataError names the file, row and column of the first problem."""
    table = read_table(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(table.path, f"missing column(s) {', '.join(missing)}; a probes file needs "
                        f"{', '.join(REQUIRED_COLUMNS)} (optional: {', '.join(OPTIONAL_COLUMNS)}); "
                        f"columns found: {', '.join(table.columns) or '(none)'}")
    probes: list[Probe] = []
    first_row: dict[str, int] = {}
    for record in table.records:
        where = {"row": record.row, "line": record.line}
        prompt = record.fields.get("prompt")
        if is_missing(prompt):
            raise DataError(table.path, "prompt is empty; every probe needs the text it submitted", column="prompt",
                            **where)
        try:
            check_template(prompt, "probe prompt", require_placeholder=False)
        except ConfigError as error:
            raise DataError(table.path, str(error), column="prompt", **where) from None
        raw_score = record.fields.get("leaderboard_score")
        try:
            score = float(raw_score or "")
        except ValueError:
            score = math.nan
        if not math.isfinite(score) or not 0.0 <= score <= 1.0:
            raise DataError(table.path, f"leaderboard_score must be a number in [0, 1], got {raw_score!r}",
                            column="leaderboard_score", **where)
        name = (record.fields.get("name") or "").strip()
        if not name:
            flat = " ".join(prompt.split())
            name = flat if len(flat) <= 40 else flat[:39] + "…"
        if name in first_row:
            raise DataError(table.path, f"duplicate probe name {name!r} (first in row {first_row[name]}); give the "
                            "probes distinct names in a 'name' column", column="name", **where)
        first_row[name] = record.row
        probes.append(Probe(name, prompt, score, (record.fields.get("note") or "").strip()))
    if not probes:
        raise DataError(table.path, "the probes file has no rows")
    return probes
