"""Build candidates from `candidates.toml` entries and inline specs.

Candidates are data: an entry names its `kind` and that kind's parameters. Inline specs need no file
(`parse_spec`, the one reader of them): `mean:ANY TEXT` is a constant candidate, `template:TEXT {original_text}`
a row template, `file:PATH.csv` a Kaggle-format predictions file (`id,rewrite_prompt`). Each kind's module has a `from_config(name, entry, context)` factory, registered
in `CANDIDATE_KINDS` by import path so that heavy kinds (transformers, openai) are imported only when
an entry of that kind is built.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.candidates.base import Candidate, CandidateContext
from harness.candidates.constant import ConstantCandidate
from harness.candidates.predictions_file import PredictionsFileCandidate
from harness.errors import ConfigError
from harness.tomlfile import describe_value, expect_type, read_toml

CandidateFactory = Callable[[str, Mapping[str, Any], CandidateContext], Candidate]


def _constant(name: str, entry: Mapping[str, Any], context: CandidateContext) -> Candidate:
    from harness.candidates.schema import ConstantEntry, validate_entry, where

    return ConstantCandidate(name, validate_entry(ConstantEntry, entry, where(context.source, name)).prompt)


def _predictions_file(name: str, entry: Mapping[str, Any], context: CandidateContext) -> Candidate:
    from harness.candidates.schema import PredictionsFileEntry, validate_entry, where

    settings = validate_entry(PredictionsFileEntry, entry, where(context.source, name))
    path = Path(settings.path)
    return PredictionsFileCandidate(path if path.is_absolute() else context.base_dir / path, name=name,
                                    id_column=settings.id_column, prediction_column=settings.prediction_column)


#: keys every kind may carry that no kind's factory reads (see check_common_keys)
COMMON_ONLY_KEYS = ("scorer_specific",)

CANDIDATE_KINDS: dict[str, CandidateFactory | str] = {
    "constant": _constant,
    "predictions-file": _predictions_file,
    "chat": "harness.candidates.chat:from_config",
    "hf": "harness.candidates.hf:from_config",
    "retrieval": "harness.candidates.retrieval:from_config",
    "ensemble": "harness.candidates.ensemble:from_config",
}


def _factory(kind: str) -> CandidateFactory | None:
    factory = CANDIDATE_KINDS.get(kind)
    if isinstance(factory, str):
        module, attribute = factory.split(":")
        factory = getattr(importlib.import_module(module), attribute)
    return factory


@dataclass(frozen=True)
class CandidateRegistry:
    """The named candidates of a candidates file (entries are built lazily: building may load models)."""

    entries: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    base_dir: Path = Path(".")
    source: str = "(none)"

    def names(self) -> list[str]:
        return list(self.entries)

    def build(self, name: str, context: CandidateContext | None = None, *, _building: tuple[str, ...] = ()) -> Candidate:
        """Build the named candidate. `context` carries the store and suites; members of ensembles are
        built through it too (a cycle of ensembles is an error, not a hang)."""
        if name in _building:
            raise ConfigError(f"candidates {' -> '.join((*_building, name))} refer to each other in a cycle")
        if name not in self.entries:
            known = ", ".join(self.entries) or "(none)"
            raise ConfigError(f"unknown candidate {name!r} in {self.source}; known: {known}; "
                              f"or use an inline spec: {INLINE_FORMS}")
        entry = self.entries[name]
        check_common_keys(self.source, name, entry)  # done at load too; entries may also come from code
        kind = entry["kind"]
        factory = _factory(kind)
        if factory is None:
            raise ConfigError(f"candidate '{name}' in {self.source}: unknown kind {kind!r}; "
                              f"known kinds: {', '.join(CANDIDATE_KINDS)}")
        context = replace(context or CandidateContext(), base_dir=self.base_dir, source=self.source)
        context.resolve = lambda member: resolve_candidate(member, self, context, _building=(*_building, name))
        # `scorer_specific` is read by the leaderboard package, not by the kinds (some refuse unknown keys).
        return factory(name, {k: v for k, v in entry.items() if k not in COMMON_ONLY_KEYS}, context)


def load_candidate_registry(path: str | Path | None) -> CandidateRegistry:
    """Read a candidates file; a missing default file just means "inline specs only". Every entry is
    checked for the keys all kinds share (a `kind`, an optional `description`, an optional `scorer_specific`
    list of strings this candidate's answers rely on that only Kaggle's scorer reads); a kind's own keys are
    checked when the entry is built."""
    if path is None:
        return CandidateRegistry()
    path = Path(path)
    config = read_toml(path, "candidates file")
    entries = config.get("candidates", {})
    if not isinstance(entries, dict):
        raise ConfigError(f"{path}: expected a [candidates.NAME] table per candidate")
    for name, entry in entries.items():
        check_common_keys(path, name, entry)
    return CandidateRegistry(entries, path.parent, str(path))


def check_common_keys(path: str | Path, name: str, entry: object) -> None:
    """Raise ConfigError naming the file and the candidate unless `entry` is a table with a string `kind`
    and, if present, a string `description`."""
    where = f"{path}: candidate '{name}'"
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must be a table ([candidates.{name}] with a 'kind'), found {describe_value(entry)}")
    if "kind" not in entry:
        raise ConfigError(f"{where} has no 'kind'; say which kind of candidate it is, one of "
                          f"{', '.join(CANDIDATE_KINDS)}")
    expect_type(entry["kind"], str, where, "kind", f"a string, one of {', '.join(CANDIDATE_KINDS)}")
    if "description" in entry:
        expect_type(entry["description"], str, where, "description", "a string")
    if "scorer_specific" in entry:  # strings only Kaggle's scorer reads as it does (harness.leaderboard.usable_probes)
        declared = expect_type(entry["scorer_specific"], list, where, "scorer_specific", "a list of strings")
        if not all(isinstance(s, str) and s for s in declared):
            raise ConfigError(f"{where}: 'scorer_specific' must be a list of non-empty strings")


#: inline spec prefix → the kind it builds
INLINE_KINDS = {"mean:": "constant", "template:": "template", "file:": "predictions-file"}
INLINE_FORMS = "'mean:TEXT', 'template:TEXT {original_text}' or 'file:PATH.csv'"


def parse_spec(spec: str) -> tuple[str, str]:
    """(kind, text) of a candidate spec: ("constant", prompt) for `mean:`, ("template", template) for
    `template:`, ("predictions-file", path) for `file:`, ("name", name) for anything else. An empty text is
    a ConfigError; a template is checked (known placeholders, at least one)."""
    spec = spec.strip()
    for prefix, kind in INLINE_KINDS.items():
        if spec.startswith(prefix):
            text = spec[len(prefix):]
            if not text.strip():
                raise ConfigError(f"candidate spec {spec!r}: {prefix}… needs a non-empty text after '{prefix}' "
                                  "(a mean prompt must not be empty)")
            if kind == "template":
                from harness.candidates.chat import check_template

                check_template(text, f"candidate spec {spec!r}", require_placeholder=True)
            return kind, text
    if not spec:
        raise ConfigError(f"empty candidate spec: give a candidates-file name, {INLINE_FORMS}")
    return "name", spec


def resolve_candidate(spec: str, registry: CandidateRegistry | None = None, context: CandidateContext | None = None,
                      *, _building: tuple[str, ...] = ()) -> Candidate:
    """A candidate from a spec (see `parse_spec`): inline, or a name from the registry."""
    kind, text = parse_spec(spec)
    spec = spec.strip()
    if kind == "constant":
        short = text if len(text) <= 40 else text[:39] + "…"
        return ConstantCandidate(f"mean:{short}", text, spec=spec)
    if kind == "template":
        from harness.candidates.template import TemplateCandidate

        short = text if len(text) <= 40 else text[:39] + "…"
        return TemplateCandidate(f"template:{short}", text, spec=spec)
    if kind == "predictions-file":
        return PredictionsFileCandidate(text, spec=spec)
    return (registry or CandidateRegistry()).build(text, context, _building=_building)
