"""Append-only JSONL: where paid-for generations go the moment they exist.

Each record is one `os.write` of one complete line to a file opened with O_APPEND, so a process killed
at any instant (SIGKILL included) leaves every earlier line intact and at most one torn line at the end.
Opening the file again repairs that tail: a fragment that still parses is completed with its newline;
one that does not is moved to `<file>.torn` (kept for inspection, never silently deleted) and cut off,
so the file always loads as a suite. Nothing is ever rewritten or reordered.

A unique-keyed file (the rows) refuses a second record with a key it already holds; an exclusive
`flock` on the file stops two runs from appending to the same output at once, which is how duplicates
would otherwise sneak in. Lines are durable against a process crash at once (they are in the kernel);
`close()` fsyncs them against a machine crash.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from harness.errors import DataError, HarnessError

try:  # POSIX; elsewhere runs are simply not protected against each other
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]


def read_jsonl(path: str | Path, *, allow_torn_tail: bool = True) -> list[dict[str, Any]]:
    """Every record of a JSONL file, in order. A torn last line (an interrupted append) is ignored when
    `allow_torn_tail`; any other line that is not a JSON object is a DataError naming file and line."""
    return [record for _, record in _records(Path(path), allow_torn_tail=allow_torn_tail)]


def _records(path: Path, *, allow_torn_tail: bool) -> Iterator[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise DataError(path, "file not found")
    data = path.read_bytes()
    lines = data.split(b"\n")
    complete = data.endswith(b"\n") or not data
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        last = number == len(lines)
        try:
            record = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            if last and not complete and allow_torn_tail:
                return  # an append cut short: not a row yet
            raise DataError(path, f"not a JSON line ({exc})", line=number) from None
        if not isinstance(record, dict):
            raise DataError(path, f"expected a JSON object, found {type(record).__name__}", line=number)
        yield number, record


class AppendOnlyJsonl:
    """An append-only JSONL file (see the module docstring).

    Args:
        path: the file; created (with its folder) on first open.
        key: the field identifying a record; with `unique`, a second record with the same value is refused.
        unique: whether keys must be unique (rows) or may repeat (a log of attempts).
    """

    def __init__(self, path: str | Path, *, key: str = "id", unique: bool = True) -> None:
        self.path = Path(path)
        self.key = key
        self.unique = unique
        self.keys: set[str] = set()
        self.count = 0
        self._fd: int | None = None

    def open(self) -> AppendOnlyJsonl:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise HarnessError(f"{self.path} is being written by another run (it holds the file's lock); "
                                   "wait for it to finish or write to another file") from None
        self._fd = fd
        try:
            self._repair_tail()
            for number, record in _records(self.path, allow_torn_tail=False):
                value = record.get(self.key)
                if self.unique:
                    if not isinstance(value, str) or not value:
                        raise DataError(self.path, f"record has no string '{self.key}'", line=number, column=self.key)
                    if value in self.keys:
                        raise DataError(self.path, f"duplicate {self.key} {value!r}", line=number, column=self.key)
                if isinstance(value, str):
                    self.keys.add(value)
                self.count += 1
        except BaseException:
            self.close()
            raise
        return self

    def _repair_tail(self) -> None:
        data = self.path.read_bytes()
        if not data or data.endswith(b"\n"):
            return
        cut = data.rfind(b"\n") + 1
        fragment = data[cut:]
        try:
            parsed = json.loads(fragment.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            parsed = None
        if isinstance(parsed, dict):
            os.write(self._fd, b"\n")  # a complete record whose newline was lost (or a hand edit)
            return
        with open(self.path.with_name(self.path.name + ".torn"), "ab") as torn:
            torn.write(fragment + b"\n")
        os.truncate(self.path, cut)

    def __contains__(self, key: str) -> bool:
        return key in self.keys

    def append(self, record: Mapping[str, Any]) -> bool:
        """Write `record` as one line now. Returns False (writing nothing) for a key already present in a
        unique file."""
        if self._fd is None:
            raise RuntimeError(f"{self.path}: open() the file before appending")
        value = record.get(self.key)
        if self.unique:
            if not isinstance(value, str) or not value:
                raise ValueError(f"record without a string '{self.key}': cannot append to {self.path}")
            if value in self.keys:
                return False
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        written = os.write(self._fd, line)
        while written < len(line):  # a short write (signal, full pipe) is finished, never left torn
            written += os.write(self._fd, line[written:])
        if isinstance(value, str):
            self.keys.add(value)
        self.count += 1
        return True

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.fsync(fd)
            finally:
                os.close(fd)  # closing releases the flock

    def __enter__(self) -> AppendOnlyJsonl:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()


def existing_keys(path: str | Path, key: str = "id") -> set[str]:
    """Keys of the records already in `path` (empty when the file does not exist): what a dry run
    subtracts without opening (or locking, or repairing) anything."""
    path = Path(path)
    if not path.is_file():
        return set()
    return {r[key] for r in read_jsonl(path) if isinstance(r.get(key), str)}
