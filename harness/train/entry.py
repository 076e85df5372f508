"""The candidates.toml entry of a trained adapter, so `pytest suites/ --candidate=NAME` scores it at once.

The entry repeats what the adapter was trained and selected with: the prompt (`system`, `user`,
`max_text_chars`; an adapter asked in another format answers worse), `max_new_tokens` of the selection,
4-bit loading for a QLoRA adapter, and `train_suites`, which makes the harness refuse (skip) the suite
the adapter learned from. Strings are written as TOML basic strings (JSON's escapes are a subset of
TOML's), and every entry is parsed back and checked with the hf candidate's own reader before it is
returned, so a written entry is always one the harness accepts.

Beside the hf entry goes a `chat` entry for the same adapter served by vLLM
(`vllm serve BASE --enable-lora --lora-modules NAME=ADAPTER`, candidate `model = NAME`): the user picks
the engine. Its messages are the hf candidate's (`harness.prompting.recovery_messages`, same system, user
template and text cut), so a server that renders them with the base's chat template sends the model the
text the hf candidate tokenizes. Two cases need more than the messages: a chat template that refuses a
system message (the hf candidate then puts the system text in front of the user message, so the chat
entry's user template starts with it), and a tokenizer without a chat template (the server gets the
plain format as a template file, `PLAIN_CHAT_TEMPLATE`, with `--chat-template`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.candidates.base import CandidateContext
from harness.candidates.chat import from_config as chat_from_config
from harness.candidates.hf import from_config as hf_from_config
from harness.errors import ConfigError
from harness.files import append_toml_table, toml_string
from harness.train.config import VLLM_BASE_URL, TrainConfig

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


#: The chat template file written into the run folder for a base without one (see the module docstring).
CHAT_TEMPLATE_FILE = "chat_template.jinja"


def escape_braces(text: str) -> str:
    """`text` as a chat-candidate template that renders to `text` itself ({ and } doubled)."""
    return text.replace("{", "{{").replace("}", "}}")


def vllm_entry_values(config: TrainConfig, *, lora_name: str, system_accepted: bool, train_suites: Sequence[str],
                      description: str, base_url: str = VLLM_BASE_URL) -> dict[str, Any]:
    """The keys of a chat entry that asks the adapter served by vLLM under `lora_name` what the hf entry
    asks it (greedy, the same answer length). `system_accepted`: whether the base's chat template takes a
    system message (`harness.prompting.accepts_system_message`)."""
    system, user = escape_braces(config.system), config.user_template
    if config.system and not system_accepted:  # as format_prompt does: system text, blank line, user message
        system, user = "", f"{system}\n\n{user}"
    return {"kind": "chat", "description": description, "base_url": base_url, "model": lora_name,
            "system": system, "user": user, "max_text_chars": config.max_text_chars,
            "max_tokens": config.eval_max_new_tokens, "temperature": 0.0, "train_suites": list(train_suites)}


def vllm_command(model: str, lora_name: str, adapter: str, *, lora_r: int, chat_template: str | None) -> str:
    """The `vllm serve` command line that serves `adapter` as `lora_name` on top of `model`."""
    import shlex

    words = ["vllm", "serve", model, "--enable-lora", "--lora-modules", f"{lora_name}={adapter}"]
    if lora_r > 16:  # vLLM's default --max-lora-rank
        words += ["--max-lora-rank", str(next(r for r in (32, 64, 128, 256, 512) if r >= lora_r))]
    if chat_template is not None:
        words += ["--chat-template", chat_template]
    return " ".join(shlex.quote(word) for word in words)


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
        build = chat_from_config if entry.get("kind") == "chat" else hf_from_config
        build(name, entry, CandidateContext(base_dir=folder))
    return text


def append_entry(candidates_file: Path, name: str, text: str) -> None:
    """Append the entries of `text` (the first one named `name`) to an existing (or new) candidates file,
    refusing to shadow any entry already there."""
    existing = {}
    if candidates_file.is_file():
        try:
            existing = tomllib.loads(candidates_file.read_text(encoding="utf-8")).get("candidates", {})
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{candidates_file}: invalid TOML ({error}); not changed") from None
    taken = [other for other in tomllib.loads(text).get("candidates", {}) if other in existing]
    if taken:
        raise ConfigError(f"{candidates_file} already has a candidate named {toml_string(taken[0])}; choose another "
                          "name (--name)")
    append_toml_table(candidates_file, "candidates", name, text, what="candidate")
