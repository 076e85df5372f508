"""The leaderboard model: "should I spend one of today's submissions on this?"

Probes (submissions with known leaderboard scores, `book`) are scored on a suite (`scores`); the probes
the embedder cannot judge are set aside with their reasons (`usable_probes`); a map from local mean score to
leaderboard score is fitted on the rest with its leave-one-probe-out error (`model`) and stored beside the
suite's baseline (`model_file`); every result then carries its predicted leaderboard score (`prediction`), and
answers the embedder cannot see are not judged (`usable_probes.not_judged`). `fit_suite` builds
probe-matched validation suites; `calibrate` and `calibration_report` are `prh calibrate`'s report;
`scale` and `scale_file` are the map from an offline embedder's per-row scores to sentence-t5's scale
(`prh calibrate scale`, `st5_estimate`); `harness/commands/calibrate.py` registers the commands. The
statistics (rank correlation, robust lines, percentile intervals, the resampler) are `harness.stats`'; the
metric's batched form is `harness.metric`'s.
docs/leaderboard.md explains the numbers. Import the names below from `harness.leaderboard`; they are
imported on first use (`harness._lazy`), so importing this package imports nothing heavy.
"""

from harness._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    ".book": ("Probe", "ProbeBook", "load_book", "append_probe"),
    ".scores": ("ProbeScores", "score_probes"),
    ".usable_probes": ("SetAside", "answer_rules", "residual_rule", "not_judged", "declared_strings"),
    ".model": ("MIN_PROBES", "FitSettings", "ProbeFit", "LeaderboardFit", "ScoreMap", "Prediction",
               "fit_leaderboard", "fit_map", "predict"),
    ".model_file": ("LeaderboardModel", "ModelUpdate", "load_model", "read_model", "write_model", "model_from_fit",
                    "model_path"),
    ".prediction": ("predicted_lb", "model_note", "st5_estimate"),
    ".scale": ("ScaleMap", "ScoredRows", "fit_scale_map", "estimate_mean", "domain_problem"),
    ".scale_file": ("load_scale_map", "read_scale_map", "write_scale_map", "scale_path"),
    ".calibrate": ("CalibrationSettings", "CalibrationRow", "ProbeMean", "Correlation", "calibrate_suite",
                   "correlation_bootstrap"),
    ".fit_suite": ("SuiteMatch", "match_suite", "write_matched_suite"),
})
