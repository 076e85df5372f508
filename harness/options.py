"""Command-line options shared by `prh` and the pytest plugin, declared once and checked where parsed.

- `add_workspace_paths(add)` declares the Workspace's path options (--suites-file, --candidates-file,
  --baselines-dir, --report-dir, --store) for any `add_argument`-like callable: argparse's and pytest's
  `group.addoption` take the same arguments, so every command and the plugin share one declaration.
- The `type=` converters (`resamples`, `non_negative_float`, …) reject a bad number while the command line
  is parsed, so `--resamples 0` is one line naming the option, never a traceback from the bootstrap, and
  `--budget-seconds -5` is refused rather than quietly read as 0.

Nothing heavy is imported here: the pytest plugin imports this module in every pytest run.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from pathlib import Path

STORE_ENV = "PRH_STORE"
STORE_PATH = Path(".prh") / "store.sqlite"
SUITES_FILE = "suites.toml"
CANDIDATES_FILE = "candidates.toml"
BASELINES_DIR = "baselines"
REPORT_DIR = "reports"
#: the probe book shipped with the project: published leaderboard facts, each with its source
DEFAULT_BOOK = Path("fixtures") / "probe_book.csv"
#: the fewest bootstrap resamples a 95% interval is computed from. With fewer, each 2.5% tail holds a
#: handful of resamples and the interval's ends move with the seed (at 1, an interval excludes its own
#: mean); 200 is the usual floor for percentile intervals (Efron & Tibshirani, ch. 13). The default is 10,000.
MIN_RESAMPLES = 200

#: (option, argparse dest, what it is, default shown in --help): every path option of the Workspace
WORKSPACE_PATHS: tuple[tuple[str, str, str, str], ...] = (
    ("--suites-file", "suites_file", "suites file", SUITES_FILE),
    ("--candidates-file", "candidates_file", "candidates file", CANDIDATES_FILE),
    ("--baselines-dir", "baselines_dir", "baselines and leaderboard models folder", BASELINES_DIR),
    ("--report-dir", "report_dir", "reports folder", REPORT_DIR),
    ("--store", "store", "SQLite store of caches and history",
     f"${STORE_ENV} or {STORE_PATH.as_posix()}; ':memory:' caches nothing on disk"),
)


def add_workspace_paths(add: Callable[..., object], *, only: Sequence[str] | None = None, dest_prefix: str = "",
                        root: str = "") -> None:
    """Declare the Workspace's path options through `add` (argparse `add_argument` or pytest `addoption`).

    `only` picks some of them (e.g. ("--store",)); `dest_prefix` keeps pytest's namespace free of clashes
    (the plugin reads `prh_store`); `root` is shown before relative defaults (pytest: "<rootdir>/")."""
    for option, dest, what, default in WORKSPACE_PATHS:
        if only is not None and option not in only:
            continue
        shown = default if option == "--store" else f"{root}{default}"
        add(option, default=None, dest=f"{dest_prefix}{dest}", help=f"{what} (default: {shown})")


def workspace_paths(args: object, dest_prefix: str = "") -> dict[str, object]:
    """The path options of a parsed namespace as Workspace.from_dir's keyword arguments."""
    return {dest: getattr(args, f"{dest_prefix}{dest}", None) for _, dest, _, _ in WORKSPACE_PATHS}


# -- numbers checked while parsing ---------------------------------------------------------------------------
def _number(text: str, kind: type, what: str) -> float | int:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def resamples(text: str) -> int:
    """A bootstrap resample count: an integer of at least MIN_RESAMPLES."""
    value = _number(text, int, f"an integer >= {MIN_RESAMPLES}")
    if value < MIN_RESAMPLES:
        raise argparse.ArgumentTypeError(f"at least {MIN_RESAMPLES} resamples are needed for a 95% interval, "
                                         f"got {value} (default 10000)")
    return value


def _at_least(kind: type, minimum: int, what: str) -> Callable[[str], float | int]:
    """A parser of `kind` values >= `minimum` (argparse `type=`)."""
    def parse(text: str) -> float | int:
        value = _number(text, kind, f"{what} >= {minimum}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what} >= {minimum}, got {text}")
        return value
    parse.__name__ = f"{what.split()[-1]} >= {minimum}"  # argparse names the type in some messages
    return parse


non_negative_float = _at_least(float, 0, "a number")
positive_int = _at_least(int, 1, "an integer")


def score_0_to_1(text: str) -> float:
    """A leaderboard score: a finite number in [0, 1] ('nan' is no score)."""
    value = _number(text, float, "a leaderboard score between 0 and 1")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a leaderboard score between 0 and 1, got {text}")
    return value


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (`error: prh score: argument --resamples: …`) and exit 2,
    not the whole usage block above it: the line is what the user has to read."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")
