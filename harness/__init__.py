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

from typing import TYPE_CHECKING

from harness._lazy import lazy_exports

__version__ = "0.1.0"

_names, __getattr__, __dir__ = lazy_exports(__name__, {
    "harness.workspace": ("Workspace", "Scored"),
    "harness.data": ("Suite", "Sample"),
    "harness.candidates": ("Candidate", "ConstantCandidate"),
    "harness.embedders": ("Embedder", "choose_embedder"),
    "harness.evaluation": ("evaluate", "Result", "BootstrapSettings"),
    "harness.verdict": ("Comparison",),
    "harness.metric": ("scs", "scs_rows"),
    "harness.stats": ("bootstrap_mean", "paired_bootstrap_delta"),
    "harness.errors": ("HarnessError",),
})
__all__ = [
    "BootstrapSettings", "Candidate", "Comparison", "ConstantCandidate", "Embedder", "HarnessError", "Result",
    "Sample", "Scored", "Suite", "Workspace", "bootstrap_mean", "choose_embedder", "evaluate",
    "paired_bootstrap_delta", "scs", "scs_rows",
]
assert sorted(__all__) == _names

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from harness.candidates import Candidate, ConstantCandidate
    from harness.data import Sample, Suite
    from harness.embedders import Embedder, choose_embedder
    from harness.errors import HarnessError
    from harness.evaluation import BootstrapSettings, Result, evaluate
    from harness.metric import scs, scs_rows
    from harness.stats import bootstrap_mean, paired_bootstrap_delta
    from harness.verdict import Comparison
    from harness.workspace import Scored, Workspace
