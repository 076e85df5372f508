"""Progress display for long work (rich), shown only where a person is watching (a terminal)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def person_watching(stream, enabled: bool | None = None) -> bool:
    """Whether to draw progress on `stream`: as asked, or when it is a terminal (never in CI logs)."""
    if enabled is not None:
        return enabled
    return stream is not None and hasattr(stream, "isatty") and stream.isatty()


@contextmanager
def stage_progress(enabled: bool | None = None, *, stream=None) -> Iterator[Callable[[str, int, int], None]]:
    """Yields `update(stage, done, total)`. Disabled (a no-op) when the stream is not a terminal, so CI
    logs and JSON output stay clean."""
    stream = stream or sys.stderr
    if not person_watching(stream, enabled):
        yield lambda stage, done, total: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    tasks: dict[str, int] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=Console(file=stream), transient=True) as progress:
        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done, total=total)

        yield update
