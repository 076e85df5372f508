"""Write audit for multi-process tests: put this folder on PYTHONPATH and set PRH_AUDIT_UNDER=DIR and
PRH_AUDIT_LOG=FOLDER, and every Python process started with that environment logs (pid, event, path)
for each file it opens for writing, creates, renames, replaces or removes under DIR, and each SQLite
database it opens there, into FOLDER/PID.tsv (`sys.addaudithook`; Python's own audit events, so the code
under test is not changed). Native writers (torch.save, safetensors) are not seen, but the rename that
moves their folder into place is. Used by tests/test_train_processes.py to check that only one process
of a torchrun launch writes the run's files.
"""

from __future__ import annotations

import os
import sys

_UNDER = os.environ.get("PRH_AUDIT_UNDER")
_LOG = os.environ.get("PRH_AUDIT_LOG")


def _install() -> None:
    under = os.path.realpath(_UNDER)
    log = os.open(os.path.join(_LOG, f"{os.getpid()}.tsv"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    busy = [False]

    def inside(path: object) -> str | None:
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, str):
            return None
        full = os.path.realpath(path)
        return full if full == under or full.startswith(under + os.sep) else None

    def record(event: str, path: str) -> None:
        os.write(log, f"{os.getpid()}\t{event}\t{path}\n".encode())

    def hook(event: str, args: tuple) -> None:
        if busy[0]:
            return
        busy[0] = True
        try:
            if event == "open" and args:
                mode, flags = (args[1] if len(args) > 1 else None), (args[2] if len(args) > 2 else 0)
                writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                    isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
                path = inside(args[0]) if writing else None
                if path:
                    record("write", path)
            elif event in ("os.rename", "os.replace") and len(args) >= 2:
                path = inside(args[1])
                if path:
                    record("rename", path)
            elif event in ("os.remove", "os.rmdir", "os.mkdir", "shutil.rmtree", "sqlite3.connect") and args:
                path = inside(args[0])
                if path:
                    record(event, path)
        finally:
            busy[0] = False

    sys.addaudithook(hook)


if _UNDER and _LOG:
    _install()
