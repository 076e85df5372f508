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
    tasks: dict[str, int] = {}
    with rich_progress(stream, transient=True) as progress:
        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done, total=total)

        yield update


def rich_progress(stream, *fields: str, transient: bool, eta_label: bool = False):
    """The one bar every long job draws: description, bar, done/total, elapsed, remaining, then the
    job's own `{task.fields[NAME]}` columns (generation shows its running cost)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    eta = [TextColumn("ETA")] if eta_label else []
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    *eta, TimeRemainingColumn(), *(TextColumn(f"{{task.fields[{name}]}}") for name in fields),
                    console=Console(file=stream), transient=transient)
