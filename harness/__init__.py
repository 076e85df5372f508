"""Prompt-recovery evaluation harness.

The public face is small on purpose (inspect_ai's style): the names below, imported from `harness`; the
modules behind them are private and may move.

    from harness import Workspace
    scored = Workspace.from_dir(".").score("mean-prompt", "leaked")
    print(scored.result.mean, scored.result.interval, scored.comparison.status)

Names are resolved lazily (PEP 562): importing `harness` loads no model and imports neither torch nor
scipy; each name imports its module on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "Workspace": "harness.workspace",
    "Scored": "harness.workspace",
    "Suite": "harness.data",
    "Sample": "harness.data",
    "Candidate": "harness.candidates",
    "ConstantCandidate": "harness.candidates",
    "Embedder": "harness.embedders",
    "choose_embedder": "harness.embedders",
    "evaluate": "harness.evaluate",
    "Result": "harness.evaluate",
    "BootstrapSettings": "harness.evaluate",
    "Comparison": "harness.verdict",
    "scs": "harness.metric",
    "scs_rows": "harness.metric",
    "bootstrap_mean": "harness.stats",
    "paired_bootstrap_delta": "harness.stats",
    "HarnessError": "harness.errors",
}

__all__ = [
    "BootstrapSettings", "Candidate", "Comparison", "ConstantCandidate", "Embedder", "HarnessError", "Result",
    "Sample", "Scored", "Suite", "Workspace", "bootstrap_mean", "choose_embedder", "evaluate",
    "paired_bootstrap_delta", "scs", "scs_rows",
]
assert sorted(__all__) == sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from harness.candidates import Candidate, ConstantCandidate
    from harness.data import Sample, Suite
    from harness.embedders import Embedder, choose_embedder
    from harness.errors import HarnessError
    from harness.evaluate import BootstrapSettings, Result, evaluate
    from harness.metric import scs, scs_rows
    from harness.stats import bootstrap_mean, paired_bootstrap_delta
    from harness.verdict import Comparison
    from harness.workspace import Scored, Workspace


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
