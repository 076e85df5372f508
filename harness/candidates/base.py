"""The Candidate protocol: a name, a fingerprint of everything that changes its answers, and predict.

Candidates that cost money or time per row (LLM endpoints, local models) also implement
`predict_stream`, yielding each answer as soon as it exists: the prediction cache
(`harness.candidates.cache`) stores every answer the moment it arrives, so a killed run loses nothing it
paid for. Two optional duck-typed hooks:
- `preflight()` checks what can be checked before any row is processed (endpoint reachable, model name
  known, key variable set, adapter matches its base) and raises a HarnessError naming the problem;
- `train_suites`: suites the candidate learned from (few-shot pools, retrieval indexes); scoring it on
  one of them is refused, because the score would be a memorisation score.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from harness.data import Sample

if TYPE_CHECKING:
    from harness.data import SuiteSpec
    from harness.embedders import Embedder
    from harness.store import Store


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


@runtime_checkable
class StreamingCandidate(Candidate, Protocol):
    """A candidate whose answers arrive one by one (and may fail one by one)."""

    def predict_stream(self, samples: Sequence[Sample]) -> Iterator[tuple[int, str]]:
        """Yield (index into `samples`, prediction) as each answer completes, in any order. A row that
        cannot be answered yields "" (reported as an empty prediction) rather than stopping the run."""
        ...


@dataclass
class CandidateContext:
    """What building a candidate may need beyond its own entry: where relative paths start, the store
    (embedding and prediction caches), the suites (train pools for few-shot and retrieval), and how to
    build another named candidate (ensemble members)."""

    base_dir: Path = Path(".")
    store: Store | None = None
    suites: Mapping[str, SuiteSpec] = field(default_factory=dict)
    resolve: Callable[[str], Candidate] | None = None
    #: the candidates file the entry comes from (named in errors)
    source: str = "(inline)"
    #: builds an embedder from a spec (auto, st5, minilm, path:DIR): the Workspace's, so an injected one
    #: is used everywhere; None means harness.embedders.choose_embedder
    embedder: Callable[[str], Embedder] | None = None

    def build_embedder(self, spec: str) -> Embedder:
        if self.embedder is not None:
            return self.embedder(spec)
        from harness.embedders import choose_embedder

        return choose_embedder(spec).embedder
