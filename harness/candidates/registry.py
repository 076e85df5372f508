"""Build candidates from `candidates.toml` entries and inline specs.

Candidates are data: an entry names its `kind` and that kind's parameters. Inline specs need no file:
`mean:ANY TEXT` is a constant candidate, `file:PATH.csv` a Kaggle-format predictions file
(`id,rewrite_prompt`). New kinds register a factory in `CANDIDATE_KINDS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.candidates.base import Candidate
from harness.candidates.constant import ConstantCandidate
from harness.candidates.predictions_file import PredictionsFileCandidate
from harness.errors import ConfigError
from harness.tomlfile import read_toml

CandidateFactory = Callable[[str, Mapping[str, Any], Path], Candidate]


def _constant(name: str, entry: Mapping[str, Any], base_dir: Path) -> Candidate:
    prompt = entry.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ConfigError(f"candidate '{name}' (kind constant) needs a non-empty 'prompt'")
    return ConstantCandidate(name, prompt)


def _predictions_file(name: str, entry: Mapping[str, Any], base_dir: Path) -> Candidate:
    if "path" not in entry:
        raise ConfigError(f"candidate '{name}' (kind predictions-file) needs a 'path'")
    path = Path(entry["path"])
    return PredictionsFileCandidate(path if path.is_absolute() else base_dir / path, name=name,
                                    id_column=entry.get("id_column", "id"),
                                    prediction_column=entry.get("prediction_column", "rewrite_prompt"))


CANDIDATE_KINDS: dict[str, CandidateFactory] = {
    "constant": _constant,
    "predictions-file": _predictions_file,
}


@dataclass(frozen=True)
class CandidateRegistry:
    """The named candidates of a candidates file (entries are built lazily: building may load models)."""

    entries: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    base_dir: Path = Path(".")
    source: str = "(none)"

    def names(self) -> list[str]:
        return list(self.entries)

    def build(self, name: str) -> Candidate:
        if name not in self.entries:
            known = ", ".join(self.entries) or "(none)"
            raise ConfigError(f"unknown candidate {name!r} in {self.source}; known: {known}; "
                              "or use an inline spec: 'mean:TEXT' or 'file:PATH.csv'")
        entry = self.entries[name]
        kind = entry.get("kind", "constant")
        factory = CANDIDATE_KINDS.get(kind)
        if factory is None:
            raise ConfigError(f"candidate '{name}' in {self.source}: unknown kind {kind!r}; "
                              f"known kinds: {', '.join(CANDIDATE_KINDS)}")
        return factory(name, entry, self.base_dir)


def load_candidate_registry(path: str | Path | None) -> CandidateRegistry:
    """Read a candidates file; a missing default file just means "inline specs only"."""
    if path is None:
        return CandidateRegistry()
    path = Path(path)
    config = read_toml(path, "candidates file")
    entries = config.get("candidates", {})
    if not isinstance(entries, dict) or not all(isinstance(e, dict) for e in entries.values()):
        raise ConfigError(f"{path}: expected a [candidates.NAME] table per candidate")
    return CandidateRegistry(entries, path.parent, str(path))


def resolve_candidate(spec: str, registry: CandidateRegistry | None = None) -> Candidate:
    """A candidate from a spec: `mean:TEXT`, `file:PATH`, or a name from the registry."""
    spec = spec.strip()
    if spec.startswith("mean:"):
        prompt = spec[len("mean:"):]
        short = prompt if len(prompt) <= 40 else prompt[:39] + "…"
        return ConstantCandidate(f"mean:{short}", prompt, spec=spec)
    if spec.startswith("file:"):
        return PredictionsFileCandidate(spec[len("file:"):], spec=spec)
    return (registry or CandidateRegistry()).build(spec)
