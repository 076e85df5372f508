"""Deterministic, seeded splits of a suite into train / dev / held-out, by prompt or by group.

Why by prompt: the Kaggle test set's prompts were unseen, and a mean prompt or an instruction tuned on
rows whose prompts also appear in the evaluation rows measures memorisation. So the unit of a split is
never a row but a *unit of rows*:

- ``by="prompt"``: all rows whose prompt is the same (after collapsing whitespace and case) form a unit;
- ``by="group"``: rows sharing a group label *or* a prompt form a unit (the connected components of
  both relations), so neither a group nor a prompt ever crosses splits.

Units are ordered by a hash of (seed, the unit's smallest key) and dealt out to the splits by their row
counts, so the result depends only on the rows' contents and the seed: not on row order, not on
Python's hash randomisation, and a row added later moves no other unit. Fractions may sum to less than
1; the remainder of the rows is left out (useful to cap what an expensive dev split costs).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from harness.data import Sample, Suite
from harness.errors import ConfigError

SPLIT_NAMES = ("train", "dev", "heldout")
SPLIT_BY = ("prompt", "group")


@dataclass(frozen=True)
class SuiteSplit:
    """A suite dealt into three disjoint suites (any may be empty when its fraction is 0).

    `train` is what optimisers may look at, `dev` what they select on, `heldout` what results are
    reported on; nothing of one unit (prompt or group) is in two of them."""

    train: Suite
    dev: Suite
    heldout: Suite
    by: str
    seed: int
    fractions: tuple[float, float, float]
    source: str

    def part(self, name: str) -> Suite:
        if name not in SPLIT_NAMES:
            raise ConfigError(f"unknown split {name!r}; known: {', '.join(SPLIT_NAMES)}")
        return getattr(self, name)

    def describe(self) -> dict:
        """Sizes and settings, for JSON output and logs."""
        return {"suite": self.source, "by": self.by, "seed": self.seed, "fractions": list(self.fractions),
                **{f"n_{name}": len(self.part(name)) for name in SPLIT_NAMES}}


def normalise_prompt(prompt: str) -> str:
    """The identity of a prompt for splitting: whitespace collapsed, case folded ("Make it formal. " and
    "make it formal." are one prompt)."""
    return " ".join(prompt.split()).casefold()


def parse_fractions(text: str) -> tuple[float, float, float]:
    """'0.7,0,0.3' → (0.7, 0.0, 0.3): train, dev, held-out; each >= 0, summing to at most 1."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 3:
        raise ConfigError(f"split fractions must be three numbers 'TRAIN,DEV,HELDOUT', got {text!r}")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise ConfigError(f"split fractions must be numbers 'TRAIN,DEV,HELDOUT', got {text!r}") from None
    return _check_fractions(values)  # type: ignore[arg-type]


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(f) for f in fractions)
    if len(values) != 3 or any(not (0.0 <= f <= 1.0) for f in values):
        raise ConfigError(f"split fractions must be three numbers in [0, 1] (train, dev, held-out), got {values}")
    if sum(values) > 1.0 + 1e-9:
        raise ConfigError(f"split fractions sum to {sum(values):g} > 1: {values}")
    if sum(values) <= 0.0:
        raise ConfigError("split fractions are all 0: nothing to split into")
    return values  # type: ignore[return-value]


def split_suite(suite: Suite, fractions: Sequence[float] = (0.7, 0.0, 0.3), *, by: str = "prompt",
                seed: int = 0) -> SuiteSplit:
    """Deal `suite` into train / dev / held-out suites named 'NAME:train' etc. (see the module docstring).

    Each split with a fraction > 0 gets at least one unit; a suite with fewer units than that is an error
    (it cannot be split honestly). With ``by="group"`` on a suite without groups, rows are split by prompt.
    """
    values = _check_fractions(fractions)
    if by not in SPLIT_BY:
        raise ConfigError(f"split by must be one of {', '.join(SPLIT_BY)}, got {by!r}")
    units = _units(suite.samples, by)
    wanted = [i for i, f in enumerate(values) if f > 0]
    if len(units) < len(wanted):
        raise ConfigError(f"suite '{suite.name}' has {len(units)} distinct {by} unit(s); cannot give each of the "
                          f"{len(wanted)} non-empty splits {', '.join(SPLIT_NAMES[i] for i in wanted)} one")
    order = sorted(units, key=lambda key: (_unit_hash(seed, key), key))
    assignment = _deal(order, {key: len(rows) for key, rows in units.items()}, values, len(suite))
    parts: list[list[Sample]] = [[], [], []]
    for key, split in assignment.items():
        if split < 3:
            parts[split].extend(suite.samples[i] for i in units[key])
    suites = []
    for index, name in enumerate(SPLIT_NAMES):
        rows = sorted(parts[index], key=_position(suite))  # keep the suite's row order inside a split
        suites.append(Suite(f"{suite.name}:{name}", tuple(rows), source=suite.source,
                            description=f"{name} split of '{suite.name}' by {by}, seed {seed}"))
    return SuiteSplit(*suites, by=by, seed=seed, fractions=values, source=suite.name)


def _position(suite: Suite):
    index = {id(sample): i for i, sample in enumerate(suite.samples)}
    return lambda sample: index[id(sample)]


def _units(samples: Sequence[Sample], by: str) -> dict[str, list[int]]:
    """Unit key (its smallest member key) → row indices, with union-find over the keys of each row."""
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        root = key
        while parent[root] != root:
            root = parent[root]
        while parent[key] != root:  # path compression
            parent[key], key = root, parent[key]
        return root

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            low, high = sorted((ra, rb))
            parent[high] = low  # the smaller key is the root, so a unit's key is its smallest member

    row_keys = []
    for sample in samples:
        keys = ["p:" + normalise_prompt(sample.rewrite_prompt)]
        if by == "group" and sample.group is not None:
            keys.append("g:" + sample.group)
        for key in keys:
            parent.setdefault(key, key)
        for key in keys[1:]:
            union(keys[0], key)
        row_keys.append(keys[0])
    units: dict[str, list[int]] = {}
    for row, key in enumerate(row_keys):
        units.setdefault(find(key), []).append(row)
    return units


def _unit_hash(seed: int, key: str) -> str:
    return hashlib.sha256(f"{int(seed)}\x00{key}".encode("utf-8", "surrogatepass")).hexdigest()


def _deal(order: Sequence[str], sizes: dict[str, int], fractions: Sequence[float], n_rows: int) -> dict[str, int]:
    """Assign units in `order` to split 0, 1, 2 (or 3 = left out) where the midpoint of the unit's rows
    falls on the cumulative fraction scale; then make sure every split with a fraction > 0 is non-empty."""
    bounds = [sum(fractions[:k + 1]) for k in range(3)]
    assignment: dict[str, int] = {}
    seen = 0
    for key in order:
        middle = (seen + sizes[key] / 2) / n_rows
        assignment[key] = next((k for k, bound in enumerate(bounds) if middle < bound), 3)
        seen += sizes[key]
    for split, fraction in enumerate(fractions):
        members = [key for key in order if assignment[key] == split]
        if fraction <= 0 or members:
            continue
        # Move the smallest unit (the last in order on a tie) of a donor split here.
        # Left-out rows give first; a split gives only when it keeps at least one unit (there is always a
        # donor: there are at least as many units as non-empty splits).
        counts = [sum(1 for k in order if assignment[k] == s) for s in range(4)]
        donors = [s for s in range(4) if s != split and counts[s] > (0 if s == 3 else 1)]
        donor = max(donors, key=lambda s: (s == 3, counts[s]))
        key = min((k for k in reversed(order) if assignment[k] == donor), key=lambda k: sizes[k])
        assignment[key] = split
    return assignment
