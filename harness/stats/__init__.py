"""Statistics of scores, in one home: import every name from `harness.stats`.

The private modules hold one job each and may move without breaking an import:
- `_bootstrap`: the project's one resampler (`resample_means`), bootstrap intervals (`bootstrap_mean`,
  `paired_bootstrap_delta`), the regression gate's paired test and Holm correction, and what a suite can
  detect (MDE, design effect, win/tie/loss, the small-sample warning).

Everything is a pure function of plain arrays with explicit randomness (`seed`), in the spirit of
scipy.stats.bootstrap. Importing this package loads numpy, never scipy.
"""

from harness.stats._bootstrap import (
    MIN_GROUPS,
    MIN_ROWS,
    TIE_EPSILON,
    ConfidenceInterval,
    PairedDelta,
    Seed,
    WinTieLoss,
    bootstrap_mean,
    design_effect,
    factorize_groups,
    holm_adjust,
    minimum_detectable_effect,
    paired_bootstrap_delta,
    paired_bootstrap_test,
    resample_means,
    small_sample_warning,
    standard_error_of_mean,
    win_tie_loss,
)

__all__ = [
    "MIN_GROUPS", "MIN_ROWS", "TIE_EPSILON", "ConfidenceInterval", "PairedDelta", "Seed", "WinTieLoss",
    "bootstrap_mean", "design_effect", "factorize_groups", "holm_adjust", "minimum_detectable_effect",
    "paired_bootstrap_delta", "paired_bootstrap_test", "resample_means", "small_sample_warning",
    "standard_error_of_mean", "win_tie_loss",
]
