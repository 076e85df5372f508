"""Read the project's TOML configuration files (suites.toml, candidates.toml) with errors naming the file,
and check the type of each value so that `path = 42` is an error naming the key, not a TypeError."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path
from typing import Any

from harness.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """The parsed document; a missing file or invalid TOML is a ConfigError naming `what` and the path."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def toml_type(value: object) -> str:
    """The TOML name of a parsed value's type ("integer", "table"…): what the user wrote, not Python's name."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, datetime.datetime):
        return "date-time"
    names = ((int, "integer"), (float, "float"), (str, "string"), (list, "array"), (dict, "table"),
             (datetime.date, "date"), (datetime.time, "time"))
    return next((name for kind, name in names if isinstance(value, kind)), type(value).__name__)


def describe_value(value: object) -> str:
    """`value` for an error message: its TOML type and, for a short scalar, the value itself."""
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    shown = "true" if value is True else "false" if value is False else repr(value)
    return f"{toml_type(value)} {shown if len(shown) <= 40 else shown[:39] + '…'}"


def expect_type(value: Any, kind: type | tuple[type, ...], where: str, key: str, expected: str) -> Any:
    """`value` when it is an instance of `kind` (a boolean never counts as a number); otherwise a
    ConfigError "{where}: '{key}' must be {expected}, found {type and value}"."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or isinstance(value, bool) and bool not in kinds:
        raise ConfigError(f"{where}: '{key}' must be {expected}, found {describe_value(value)}")
    return value
