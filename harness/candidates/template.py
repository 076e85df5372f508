"""The template candidate: each row answered with a template filled with that row's texts.

`template:Rewrite this: {original_text}` on the command line (or a `template` probe of the probe book):
`{original_text}` and `{rewritten_text}` are replaced by the row's texts, `{{`/`}}` are literal braces.
A probe that copies the original text into its answer measures how much of the score the text alone gives.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.candidates.chat import check_template, render_template
from harness.data import Sample
from harness.hashing import json_fingerprint


class TemplateCandidate:
    """Answers `template` with each row's texts filled in."""

    def __init__(self, name: str, template: str, *, spec: str | None = None) -> None:
        check_template(template, f"candidate '{name}'", require_placeholder=True)
        self.name = name
        self.spec = spec or name
        self.template = template
        self.fingerprint = json_fingerprint({"kind": "template", "template": template})

    def __repr__(self) -> str:
        return f"TemplateCandidate(name={self.name!r}, template={self.template!r})"

    def predict(self, samples: Sequence[Sample]) -> list[str]:
        return [render_template(self.template, sample) for sample in samples]
