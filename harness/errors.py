"""Errors a user can act on.

Every error the harness raises on bad input says *where* (file, row, column) and *what was expected*,
so the CLI and the pytest plugin can print it as one line instead of a traceback from deep inside a
parser or torch.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path


class HarnessError(Exception):
    """Base class: a problem the user can fix (bad input, missing model, bad configuration)."""


class DataError(HarnessError, ValueError):
    """A problem in an input file, located as precisely as the format allows."""

    def __init__(
        self,
        path: str | Path,
        problem: str,
        *,
        row: int | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.path = str(path)
        self.problem = problem
        self.row = row
        self.line = line
        self.column = column
        where = [self.path]
        if row is not None:
            where.append(f"row {row}" + (f" (line {line})" if line is not None else ""))
        elif line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column '{column}'")
        super().__init__(": ".join([", ".join(where), problem]))


class ConfigError(HarnessError, ValueError):
    """A problem in suites.toml / candidates.toml or a command-line spec."""


class ModelUnavailableError(HarnessError, RuntimeError):
    """An embedding or generation model is not available locally; the message says how to provide it."""


class LearnedFromSuiteError(ConfigError):
    """The candidate learned from the suite it is asked to be scored on (few-shot pool, retrieval index,
    training data): such a score measures memorisation, so it is refused."""


def print_warnings(messages: Iterable[str], stream=None) -> None:
    """Print warnings a command should show (e.g. an embedder's fallback) as `WARNING: …` lines on stderr."""
    for message in messages:
        print(f"WARNING: {message}", file=stream or sys.stderr)
