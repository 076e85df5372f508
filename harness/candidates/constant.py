"""The constant candidate: one "mean prompt" answered for every row.

Famously strong in this competition: SCS rewards being close on average, and a well-chosen generic
instruction is close to most real prompts.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.data import Sample
from harness.errors import ConfigError
from harness.hashing import json_fingerprint


class ConstantCandidate:
    def __init__(self, name: str, prompt: str, *, spec: str | None = None) -> None:
        if not prompt.strip():
            raise ConfigError(f"candidate '{name}': a mean prompt must not be empty")
        self.name = name
        self.prompt = prompt
        self.spec = spec or name
        self.fingerprint = json_fingerprint({"kind": "constant", "prompt": prompt})

    def __repr__(self) -> str:
        return f"ConstantCandidate(name={self.name!r}, prompt={self.prompt!r})"

    def predict(self, samples: Sequence[Sample]) -> list[str]:
        return [self.prompt] * len(samples)
