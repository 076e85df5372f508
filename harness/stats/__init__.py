"""Statistics of scores, in one home: import every name from `harness.stats`.

The private modules hold one job each and may move without breaking an import:
- `_bootstrap`: the project's one resampler (`resample_means`), bootstrap intervals (`bootstrap_mean`,
  `paired_bootstrap_delta`, `bootstrap_intervals` for many samples; studentized by default, as measured by
  bench/coverage.py), the regression gate's paired test and Holm correction, and what a suite can
  detect (MDE, design effect, win/tie/loss, the small-sample warning);
- `_percentile`: percentile intervals of draws made elsewhere (`percentile_interval`);
- `_ranks`: rank correlation vectorised over resamples (`row_ranks`, `row_pearson`, `row_spearman`,
  `spearman`);
- `_robust`: Siegel's repeated-medians lines, their leave-one-out residuals and the MAD scale.

Everything is a pure function of plain arrays with explicit randomness (`seed`), in the spirit of
scipy.stats.bootstrap. Names are imported on first use (`harness._lazy`): importing this package loads
nothing, and using it loads numpy, never scipy.
"""

from harness._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "._bootstrap": ("DEFAULT_METHOD", "MEASURED_COVERAGE", "METHODS", "MIN_GROUPS", "MIN_ROWS", "TIE_EPSILON",
                    "ConfidenceInterval", "PairedDelta", "Seed", "WinTieLoss", "bootstrap_intervals",
                    "bootstrap_mean", "design_effect", "factorize_groups", "holm_adjust", "measured_coverage",
                    "minimum_detectable_effect", "paired_bootstrap_delta", "paired_bootstrap_test",
                    "resample_means", "small_sample_warning", "standard_error_of_mean", "win_tie_loss"),
    "._percentile": ("percentile_interval",),
    "._ranks": ("row_pearson", "row_ranks", "row_spearman", "spearman"),
    "._robust": ("MAD_TO_SD", "loo_residuals", "repeated_median_lines", "robust_sd", "siegel_line"),
})
