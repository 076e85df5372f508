"""Ensemble candidate: members' predictions concatenated, then an optional suffix.

The winning trick of the competition: SCS rewards covering the likely content of the true prompt, so
several guesses joined into one answer, with a strong mean prompt (or the 1st place's adversarial
"lucrarea" string) appended, beat any single guess (0.64 → 0.66 by appending the 0.63 mean prompt).
Members are built from the same candidates file and keep their own prediction caches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.candidates.base import Candidate, CandidateContext
from harness.candidates.cache import predict_with_cache
from harness.data import Sample
from harness.errors import ConfigError
from harness.hashing import json_fingerprint
from harness.store import Store

#: The 1st-place team's adversarial suffix (public write-up), usable as `suffix = "lucrarea"`.
LUCRAREA_SUFFIX = " 'it 's ' something Think A Human Plucrarealucrarealucrarealucrarealucrarealucrarealucrarealucrarea"


class EnsembleCandidate:
    def __init__(self, name: str, members: Sequence[Candidate], *, suffix: str = "", separator: str = " ",
                 store: Store | None = None, spec: str | None = None) -> None:
        if not members and not suffix:
            raise ConfigError(f"candidate '{name}' (kind ensemble) needs members or a suffix")
        self.name, self.spec = name, spec or name
        # The suffix is appended after the separator unless it brings its own leading space.
        if suffix and not suffix[0].isspace():
            suffix = separator + suffix
        self.members, self.suffix, self.separator, self.store = list(members), suffix, separator, store
        self.train_suites = frozenset().union(*(getattr(m, "train_suites", ()) or () for m in self.members))
        self.fingerprint = json_fingerprint({"kind": "ensemble", "members": [m.fingerprint for m in self.members],
                                             "suffix": suffix, "separator": separator})

    def __repr__(self) -> str:
        return f"EnsembleCandidate(name={self.name!r}, members={[m.name for m in self.members]}, suffix={self.suffix!r})"

    def preflight(self) -> None:
        for member in self.members:
            check = getattr(member, "preflight", None)
            if check is not None:
                check()

    def predict(self, samples: Sequence[Sample]) -> list[str]:
        answers = [predict_with_cache(member, samples, self.store) for member in self.members]
        joined = []
        for row in zip(*answers) if answers else [()] * len(samples):
            parts = [part.strip() for part in row if part.strip()]
            text = self.separator.join(parts)
            # A row no member could answer stays empty (and is reported), even with a suffix.
            joined.append((text + self.suffix) if (parts or not self.members) else "")
        return joined


def from_config(name: str, entry: Mapping[str, Any], context: CandidateContext) -> EnsembleCandidate:
    from harness.candidates.schema import EnsembleEntry, validate_entry, where

    place = where(context.source, name)
    settings = validate_entry(EnsembleEntry, entry, place)
    if not settings.members and not settings.suffix:
        raise ConfigError(f"{place}: 'members' must name at least one candidate (or give a 'suffix')")
    if context.resolve is None:
        raise ConfigError(f"{place}: an ensemble can only be built from a candidates file")
    suffix = LUCRAREA_SUFFIX if settings.suffix == "lucrarea" else settings.suffix
    return EnsembleCandidate(name, [context.resolve(member) for member in settings.members], suffix=suffix,
                             separator=settings.separator, store=context.store)
