"""Writing derived files (deduplicated and mined suites, reports, suites.toml entries) safely.

Derived files are written whole, to a temporary file in the same folder and then renamed over the
target, so a reader (or a crash) never sees half a suite. Only the generators' own outputs are
append-only (`harness.generate.jsonl`); these can always be made again from them.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.tomlfile import read_toml


def write_text(path: Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_jsonl(path: Path, records: Iterable[Mapping[str, Any]]) -> Path:
    return write_text(path, "".join(json.dumps(dict(r), ensure_ascii=False, separators=(",", ":")) + "\n"
                                    for r in records))


def append_suite_entry(suites_file: Path, entry: str) -> None:
    """Append a `[suites.NAME]` entry to a suites file; the file must still parse afterwards (else it is
    left as it was and the error names it)."""
    suites_file = Path(suites_file)
    before = suites_file.read_text(encoding="utf-8") if suites_file.is_file() else ""
    after = before + ("" if not before or before.endswith("\n") else "\n") + "\n" + entry
    handle, temporary = tempfile.mkstemp(dir=suites_file.parent if str(suites_file.parent) else ".", suffix=".toml")
    os.close(handle)
    try:
        Path(temporary).write_text(after, encoding="utf-8")
        try:
            read_toml(temporary, "suites file")
        except ConfigError as error:
            raise ConfigError(f"{suites_file}: appending the new entry would make it invalid ({error}); not changed") from None
        os.replace(temporary, suites_file)
    finally:
        Path(temporary).unlink(missing_ok=True)
