"""A progress bar for paid generation: done/total, ETA, failures and the money spent so far.

Shown only where a person is watching (stderr is a terminal), like `harness.progress`; that module's
bar has no place for a running cost, which is the number that matters while an API bill grows.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from harness.progress import person_watching, rich_progress

#: update(done, total, cost_usd or None, failed)
ProgressUpdate = Callable[[int, int, "float | None", int], None]


def format_cost(cost: float | None) -> str:
    return f"${cost:,.4f}" if cost is not None else "$?"


@contextmanager
def generation_progress(description: str, total: int, enabled: bool | None = None, *, stream=None
                        ) -> Iterator[ProgressUpdate]:
    """Yields `update(done, total, cost, failed)`; a no-op when disabled or not on a terminal."""
    stream = stream or sys.stderr
    if not person_watching(stream, enabled):
        yield lambda done, total, cost, failed: None
        return
    with rich_progress(stream, "cost", "failed", transient=False, eta_label=True) as progress:
        task = progress.add_task(description, total=total, cost=format_cost(0.0), failed="")

        def update(done: int, total: int, cost: float | None, failed: int) -> None:
            progress.update(task, completed=done, total=total, cost=format_cost(cost),
                            failed=f"{failed} failed" if failed else "")

        yield update
