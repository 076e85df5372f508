"""The candidates.toml entry of a trained adapter, so `pytest suites/ --candidate=NAME` scores it at once.

The entry repeats what the adapter was trained and selected with: the prompt (`system`, `user`,
`max_text_chars`; an adapter asked in another format answers worse), `max_new_tokens` of the selection,
4-bit loading for a QLoRA adapter, and `train_suites`, which makes the harness refuse (skip) the suite
the adapter learned from. Strings are written as TOML basic strings (JSON's escapes are a subset of
TOML's), and every entry is parsed back and checked with the hf candidate's own reader before it is
returned, so a written entry is always one the harness accepts.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.candidates.base import CandidateContext
from harness.candidates.hf import from_config
from harness.errors import ConfigError
from harness.files import append_toml_table
from harness.train.config import TrainConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def entry_values(config: TrainConfig, *, model: str, adapter: str | None, train_suites: Sequence[str],
                 description: str) -> dict[str, Any]:
    """The keys of an hf candidate entry for this run (paths as given: make them relative first if wanted)."""
    values: dict[str, Any] = {"kind": "hf", "description": description, "model": model}
    if adapter is not None:
        values["adapter"] = adapter
    values.update(system=config.system, user=config.user_template, max_text_chars=config.max_text_chars,
                  max_new_tokens=config.eval_max_new_tokens)
    if config.load_in_4bit:
        values["load_in_4bit"] = True
    values["train_suites"] = list(train_suites)
    return values


def path_for(target: Path, relative_to: Path | None) -> str:
    """`target` relative to the folder `relative_to` when given (candidates files read relative paths
    from their own folder), else absolute."""
    target = target.resolve()
    if relative_to is None:
        return str(target)
    return os.path.relpath(target, relative_to.resolve())


def checked_entry_file(text: str, folder: Path) -> str:
    """Parse `text` (a candidates file) and build every entry with the hf candidate's `from_config`, as
    the harness will, relative paths read from `folder`; raises ConfigError if anything would be
    refused. Returns `text`."""
    try:
        entries = tomllib.loads(text).get("candidates", {})
    except tomllib.TOMLDecodeError as error:  # a bug here, not a user error: say what was produced
        raise ConfigError(f"the generated candidate entry is not valid TOML ({error}):\n{text}") from None
    for name, entry in entries.items():
        from_config(name, entry, CandidateContext(base_dir=folder))
    return text


def append_entry(candidates_file: Path, name: str, text: str) -> None:
    """Append an entry to an existing (or new) candidates file, refusing to shadow an entry of that name."""
    append_toml_table(candidates_file, "candidates", name, text, what="candidate")
