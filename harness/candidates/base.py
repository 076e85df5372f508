"""The Candidate protocol: a name, a fingerprint of everything that changes its answers, and predict."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from harness.data import Sample


@runtime_checkable
class Candidate(Protocol):
    """Recovers prompts. `fingerprint` changes whenever the candidate could answer differently
    (model, adapter, templates, generation parameters, file contents), so cached predictions and
    recorded scores are never attributed to the wrong thing."""

    name: str
    fingerprint: str
    #: how the user asked for it (a registry name, `mean:…`, `file:…`), for reports
    spec: str

    def predict(self, samples: Sequence[Sample]) -> list[str]:
        """One prediction per sample, in order. An empty string means "no answer" and is reported."""
        ...
