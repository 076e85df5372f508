"""The template syntax of every prompt the harness sends: `{name}` placeholders, `{{`/`}}` for literal
braces (as in str.format), substituted in one pass so that braces or placeholders inside the inserted
texts are never re-read. Candidates (chat, hf), training and the rewriter all fill templates this way."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from harness.errors import ConfigError

#: `{{`, `}}`, or a `{name}` placeholder (group 1).
TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def placeholders_in(template: str, pattern: re.Pattern = TOKEN) -> set[str]:
    """The placeholder names `template` uses."""
    return {m.group(1) for m in pattern.finditer(template) if m.group(1)}


def check_placeholders(template: str, known: Sequence[str], what: str) -> set[str]:
    """The placeholders `template` uses; any not in `known` is a ConfigError naming `what`."""
    used = placeholders_in(template)
    unknown = sorted(used - set(known))
    if unknown:
        raise ConfigError(f"{what}: unknown placeholder(s) {', '.join('{' + u + '}' for u in unknown)}; "
                          f"known: {', '.join('{' + k + '}' for k in known)} (write {{{{ and }}}} for literal braces)")
    return used


def substitute(template: str, values: Mapping[str, str] | Callable[[str], str], *, pattern: re.Pattern = TOKEN) -> str:
    """`template` with each placeholder replaced by its value (a mapping, or a function of the
    placeholder's body) and `{{`/`}}` turned into single braces, in one pass."""
    lookup = values.__getitem__ if isinstance(values, Mapping) else values

    def replace(match: re.Match) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        return lookup(match.group(1))

    return pattern.sub(replace, template)
