"""Writing files safely: atomic writes and TOML entries, the one implementation used everywhere.

Every file the harness writes (reports, baselines, derived suites, training cards, candidates.toml and
suites.toml entries) goes through a temporary file in the target's folder and `os.replace`, so a reader,
a concurrent pytest-xdist worker or a crash never sees half a file. TOML entries are rendered here, and an
append is parsed back before it replaces the file: a written entry is always one the harness can read.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from harness.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


# -- atomic writes -----------------------------------------------------------------------------------------
#: a temporary file of `write_atomic` older than this was left by a killed writer: no write takes so long
#: between creating its temporary file and moving it into place (reports render in seconds)
STALE_TEMPORARY_SECONDS = 60.0


def remove_stale_temporaries(path: Path, *, older_than: float = STALE_TEMPORARY_SECONDS) -> list[Path]:
    """Remove the temporary files a killed `write_atomic` of `path` left behind (`.NAME.*.tmp` next to it,
    older than `older_than` seconds: a concurrent writer's fresh one is left alone). Returns what was removed."""
    import time

    removed = []
    cutoff = time.time() - older_than
    for temporary in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):
        try:
            if temporary.stat().st_mtime < cutoff:
                temporary.unlink()
                removed.append(temporary)
        except FileNotFoundError:  # another process removed it first
            continue
    return removed


def glob_escape(name: str) -> str:
    import glob

    return glob.escape(name)


def write_atomic(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call `write(binary_handle)` on a temporary file next to `path`, then move it into place.

    The file is fsynced before the rename, and gets 0644 permissions (mkstemp's 0600 would hide reports
    from other users). On any error the temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write `text` as UTF-8, atomically."""
    data = text.encode("utf-8")
    return write_atomic(path, lambda handle: handle.write(data))


def write_png_atomic(path: str | Path, figure: Any, *, dpi: int) -> Path:
    """Save a matplotlib `figure` as PNG, atomically (every figure the harness draws is written here)."""
    return write_atomic(path, lambda handle: figure.savefig(handle, format="png", dpi=dpi))


def write_json_atomic(path: str | Path, data: Any, *, indent: int | None = 2) -> Path:
    """Write one JSON document (UTF-8, non-ASCII kept readable, no NaN), atomically."""
    return write_text_atomic(path, json.dumps(data, indent=indent, ensure_ascii=False, allow_nan=False) + "\n")


def write_jsonl_atomic(path: str | Path, records: Iterable[Mapping[str, Any]]) -> Path:
    """Write one compact JSON object per line, atomically (derived files; generators append instead)."""
    return write_text_atomic(path, "".join(json.dumps(dict(r), ensure_ascii=False, separators=(",", ":")) + "\n"
                                           for r in records))


# -- TOML entries ------------------------------------------------------------------------------------------
def toml_string(text: str) -> str:
    """A TOML basic string: JSON's escapes (\\" \\\\ \\n \\t \\uXXXX) are all valid TOML escapes."""
    return json.dumps(text, ensure_ascii=False)


def toml_key(name: str) -> str:
    """A bare key when TOML allows one, else a quoted key."""
    return name if _BARE_KEY.match(name) else toml_string(name)


def toml_value(value: Any) -> str:
    """A TOML value for str, bool, int, float, list/tuple of those, or an inline table (dict)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{toml_key(str(k))} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as a TOML value")


def toml_table(section: str, name: str, values: Mapping[str, Any]) -> str:
    """One `[section.NAME]` table as TOML text (None values are left out)."""
    lines = [f"[{section}.{toml_key(name)}]"]
    lines += [f"{toml_key(key)} = {toml_value(value)}" for key, value in values.items() if value is not None]
    return "\n".join(lines) + "\n"


def append_toml_table(path: str | Path, section: str, name: str, text: str, *, what: str) -> Path:
    """Append the table `text` (`[section.name]` …) to the TOML file at `path` (created if missing).

    Refuses to shadow an existing `[section.name]` (TOML would reject the duplicate anyway), and parses
    the result before replacing the file, so a bad entry leaves the file untouched and the error names it.
    """
    path = Path(path)
    before = path.read_text(encoding="utf-8") if path.is_file() else ""
    try:
        existing = tomllib.loads(before).get(section, {}) if before else {}
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML ({error}); not changed") from None
    if name in existing:
        raise ConfigError(f"{path} already has a {what} named {name!r}; choose another name")
    separator = "" if not before or before.endswith("\n\n") else ("\n" if before.endswith("\n") else "\n\n")
    after = before + separator + text
    try:
        parsed = tomllib.loads(after)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: appending the {what} {name!r} would make it invalid TOML ({error}); "
                          "not changed") from None
    if name not in parsed.get(section, {}):
        raise ConfigError(f"{path}: the appended text does not define [{section}.{toml_key(name)}]; not changed")
    return write_text_atomic(path, after)
