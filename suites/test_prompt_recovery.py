"""The checks every suite runs for the candidate given with --candidate.

One test item per (suite, check); the suites come from suites.toml (or --suites-file). Add your own
checks here: the `prh_outcome` fixture holds the scored result (`.result`) and the baseline comparison
(`.comparison`) of one suite.
"""

from harness.pytest_plugin import check_gate, check_predictions_complete


def test_predictions_complete(prh_outcome):
    check_predictions_complete(prh_outcome)


def test_not_worse_than_baseline(prh_outcome):
    check_gate(prh_outcome)
