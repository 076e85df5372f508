"""Read the project's TOML configuration files (suites.toml, candidates.toml) with errors naming the file."""

from __future__ import annotations

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
