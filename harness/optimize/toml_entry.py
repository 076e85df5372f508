"""A `candidates.toml` entry for a found prompt, as text a user pastes (or appends) into the file."""

from __future__ import annotations

import json
import re

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_string(text: str) -> str:
    """A TOML basic string: JSON's escapes (\\" \\\\ \\n \\t \\uXXXX) are all valid TOML escapes."""
    return json.dumps(text, ensure_ascii=False)


def constant_candidate_entry(name: str, prompt: str, description: str = "") -> str:
    """`[candidates.NAME]` with kind "constant", the prompt and a description (which should say which
    split the quoted numbers come from)."""
    key = name if _BARE_KEY.match(name) else toml_string(name)
    lines = [f"[candidates.{key}]", 'kind = "constant"', f"prompt = {toml_string(prompt)}"]
    if description:
        lines.append(f"description = {toml_string(description)}")
    return "\n".join(lines) + "\n"
