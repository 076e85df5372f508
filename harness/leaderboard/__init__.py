"""The leaderboard model: "should I spend one of today's submissions on this?"

Probes (submissions with known leaderboard scores, `book`) are scored on a suite (`scores`); the probes
the embedder cannot judge are set aside with their reasons (`usable_probes`); a map from local mean score to
leaderboard score is fitted on the rest with its leave-one-probe-out error (`model`) and stored beside the
suite's baseline (`model_file`); every result then carries its predicted leaderboard score (`predict`), and
answers the embedder cannot see are not judged (`usable_probes.not_judged`). `fit_suite` builds
probe-matched validation suites; `calibrate` and `calibration_report` are `prh calibrate`'s report;
`harness/commands/calibrate.py` registers the commands. The statistics (rank correlation, robust lines,
percentile intervals, the resampler) are `harness.stats`'; the metric's batched form is `harness.metric`'s.
docs/leaderboard.md explains the numbers. Importing this package imports nothing heavy.
"""
