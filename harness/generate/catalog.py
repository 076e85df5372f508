"""The prompt catalog: rewrite-prompt templates with placeholders, and their seeded expansion.

Leaderboard prompts were more varied and harder than the public data: many applications, and prompts
asking for two or three changes at once. A catalog is data (TOML, YAML or CSV) listing prompt templates
by family; `expand_catalog` turns it into as many concrete instructions as wanted, reproducibly.

Template syntax, in `text` (the prompt on its own) and `clause` (the same change as a fragment that can
be joined with others: "with a more {tone} tone"):
- `{name}`: one of the options listed under `[options]` (or the prompt's own `options` table);
- `{a|b|c}`: an inline choice (the only kind a CSV catalog has);
- `{{` and `}}`: literal braces.
The same `{name}` twice in one template gets the same value.

TOML/YAML layout:

    [options]          tone = ["formal", "playful"]
    [combine]          leads = ["Rewrite the text"]; fraction = 0.3; max_prompts = 3
    [synth]            text_kinds = ["a work email", …]; topics = ["a bakery", …]
    [[prompts]]        id = "tone-shift"; family = "tone"; text = "…"; clause = "…"; form = false; text_kinds = […]

`form = true` marks a prompt that says what the result *is* (a poem, an email, a speech): a combination
takes at most one of those (a text cannot be a haiku and a press release at once), and its clause comes
first: "Rewrite the text as a limerick, adding dragons and in a more formal tone."


CSV: columns `family`, `text` and optionally `id`, `clause`, `form` (true/false), `text_kinds` (`|`-separated).

Expansion is a pure function of (catalog, seed, index): item i is drawn from its own random stream, so
`expand_catalog(c, 200, s)[:100] == expand_catalog(c, 100, s)`, and growing N never changes the items a
rerun has already paid for. A combined item joins 2-3 prompts of *different* families (two tone changes
would contradict each other) under one lead: "Rewrite the text adding dragons and in a more humorous tone."
"""

from __future__ import annotations

import csv
import io
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, DataError
from harness.hashing import json_fingerprint
from harness.templates import substitute
from harness.tomlfile import read_toml

#: `{{`, `}}`, `{name}` or `{a|b}`; anything else with a brace is an error.
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PROMPT_KEYS = ("id", "family", "text", "clause", "form", "text_kinds", "options")
DEFAULT_LEADS = ("Rewrite the text",)
DEFAULT_COMBINE_FRACTION = 0.3


@dataclass(frozen=True)
class PromptTemplate:
    """One catalog entry. `clause` is None for prompts that cannot be combined with others."""

    id: str
    family: str
    text: str
    clause: str | None = None
    #: says what the result is (a poem, an email): at most one per combination, and first
    form: bool = False
    text_kinds: tuple[str, ...] = ()
    options: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Catalog:
    """A validated catalog: templates, named options, and the knobs of combination and synthesis."""

    prompts: tuple[PromptTemplate, ...]
    options: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    leads: tuple[str, ...] = DEFAULT_LEADS
    combine_fraction: float = DEFAULT_COMBINE_FRACTION
    max_combined: int = 3
    text_kinds: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    source: str = ""

    @property
    def families(self) -> list[str]:
        return sorted({p.family for p in self.prompts})

    @property
    def fingerprint(self) -> str:
        return json_fingerprint([[p.id, p.family, p.text, p.clause, p.form, p.text_kinds, dict(p.options)]
                                 for p in self.prompts] + [dict(self.options), self.leads, self.text_kinds, self.topics])


@dataclass(frozen=True)
class ExpandedPrompt:
    """One concrete instruction drawn from the catalog, with what it was made of."""

    index: int
    seed: int
    instruction: str
    template_ids: tuple[str, ...]
    families: tuple[str, ...]
    #: per component template: placeholder → chosen value (inline choices are keyed "{a|b}")
    choices: tuple[Mapping[str, str], ...]
    template_hash: str
    text_kind: str | None = None
    topic: str | None = None

    @property
    def combined(self) -> bool:
        return len(self.template_ids) > 1

    @property
    def group(self) -> str:
        """The prompt family, the clustering unit of the statistics ("a+b" for a combination)."""
        return "+".join(sorted(self.families))


# -- placeholders ---------------------------------------------------------------------------------
def placeholders(template: str) -> list[str]:
    """The placeholder bodies of `template` in order: names and inline `a|b` choices."""
    return [m.group(1) for m in _TOKEN.finditer(template) if m.group(1) is not None]


def check_template(template: str, options: Mapping[str, Sequence[str]], where: str) -> None:
    """Raise ConfigError for stray braces, empty inline choices or names without options."""
    stripped = _TOKEN.sub("", template)
    if "{" in stripped or "}" in stripped:
        raise ConfigError(f"{where}: unbalanced brace in {template!r}; write {{{{ or }}}} for a literal brace")
    for body in placeholders(template):
        if "|" in body:
            if any(not part.strip() for part in body.split("|")):
                raise ConfigError(f"{where}: inline choice {{{body}}} has an empty alternative")
        elif not _NAME.match(body):
            raise ConfigError(f"{where}: {{{body}}} is neither a placeholder name nor an inline choice {{a|b}}")
        elif body not in options:
            known = ", ".join(sorted(options)) or "(none)"
            raise ConfigError(f"{where}: unknown placeholder {{{body}}}; options defined: {known}")


def fill(template: str, options: Mapping[str, Sequence[str]], rng: random.Random,
         chosen: dict[str, str] | None = None) -> tuple[str, dict[str, str]]:
    """`template` with every placeholder replaced by a choice drawn from `rng`, in one pass (a chosen
    value is never re-read as a template). `chosen` pre-sets values (so a name repeated across the text
    and the clause of one prompt agrees). Returns the text and the choices made."""
    chosen = dict(chosen or {})

    def choose(body: str) -> str:
        key = body if "|" not in body else "{" + body + "}"
        if key not in chosen:
            values = [part.strip() for part in body.split("|")] if "|" in body else list(options[body])
            chosen[key] = rng.choice(values)
        return chosen[key]

    return substitute(template, choose, pattern=_TOKEN), chosen


# -- loading ---------------------------------------------------------------------------------------
def load_catalog(path: str | Path) -> Catalog:
    """Read and validate a catalog (.toml, .yaml/.yml or .csv). Errors name the file, the prompt (row)
    and the field (column) at fault."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _catalog_from_csv(path)
    if suffix == ".toml":
        data = read_toml(path, "prompt catalog")
    elif suffix in (".yaml", ".yml"):
        data = _read_yaml(path)
    else:
        raise ConfigError(f"{path}: unknown catalog format {suffix!r}; expected .toml, .yaml, .yml or .csv")
    return catalog_from_mapping(data, source=str(path))


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"prompt catalog not found: {path}")
    try:
        import yaml
    except ImportError:
        raise ConfigError(f"{path}: reading YAML catalogs needs PyYAML (pip install pyyaml), or use TOML") from None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'prompts' list at the top level")
    return data


def _string_list(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{where}: expected a non-empty list of non-empty strings")
    return tuple(v.strip() for v in value)


def _options_table(value: Any, where: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a table of name = [values]")
    options = {}
    for name, values in value.items():
        if not _NAME.match(str(name)):
            raise ConfigError(f"{where}: option name {name!r} must be letters, digits and _")
        options[str(name)] = _string_list(values, f"{where}.{name}")
    return options


def catalog_from_mapping(data: Mapping[str, Any], *, source: str = "(catalog)") -> Catalog:
    """A Catalog from parsed TOML/YAML (see the module docstring for the layout)."""
    unknown = sorted(set(data) - {"catalog", "options", "combine", "synth", "prompts"})
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key(s) {', '.join(unknown)}; "
                          "expected catalog, options, combine, synth, prompts")
    options = _options_table(data.get("options", {}), f"{source}: [options]")
    combine = data.get("combine", {})
    if not isinstance(combine, Mapping):
        raise ConfigError(f"{source}: [combine] must be a table")
    leads = _string_list(combine.get("leads", list(DEFAULT_LEADS)), f"{source}: combine.leads")
    fraction = combine.get("fraction", DEFAULT_COMBINE_FRACTION)
    check_fraction(fraction, f"{source}: combine.fraction")
    max_combined = combine.get("max_prompts", 3)
    if isinstance(max_combined, bool) or not isinstance(max_combined, int) or not 2 <= max_combined <= 3:
        raise ConfigError(f"{source}: combine.max_prompts must be 2 or 3, got {max_combined!r}")
    synth = data.get("synth", {})
    if not isinstance(synth, Mapping):
        raise ConfigError(f"{source}: [synth] must be a table")
    text_kinds = _string_list(synth["text_kinds"], f"{source}: synth.text_kinds") if "text_kinds" in synth else ()
    topics = _string_list(synth["topics"], f"{source}: synth.topics") if "topics" in synth else ()
    entries = data.get("prompts")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{source}: expected a non-empty list of prompts ([[prompts]] tables)")
    prompts = [_prompt(entry, row, options, source) for row, entry in enumerate(entries, start=1)]
    return _finish(prompts, options, leads, float(fraction), max_combined, text_kinds, topics, source)


def _prompt(entry: Any, row: int, options: Mapping[str, tuple[str, ...]], source: str) -> PromptTemplate:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{source}: prompt {row}: expected a table with family and text")
    where = f"{source}: prompt {row}" + (f" (id {entry['id']!r})" if isinstance(entry.get("id"), str) else "")
    unknown = sorted(set(entry) - set(PROMPT_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(PROMPT_KEYS)}")
    for key in ("family", "text"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise ConfigError(f"{where}, field '{key}': required, a non-empty string")
    clause = entry.get("clause")
    if clause is not None and (not isinstance(clause, str) or not clause.strip()):
        raise ConfigError(f"{where}, field 'clause': must be a non-empty string when given")
    own = _options_table(entry.get("options", {}), f"{where}, field 'options'")
    merged = {**options, **own}
    check_template(entry["text"], merged, f"{where}, field 'text'")
    if clause is not None:
        check_template(clause, merged, f"{where}, field 'clause'")
    kinds = _string_list(entry["text_kinds"], f"{where}, field 'text_kinds'") if "text_kinds" in entry else ()
    form = entry.get("form", False)
    if not isinstance(form, bool):
        raise ConfigError(f"{where}, field 'form': must be true or false, got {form!r}")
    prompt_id = entry.get("id", f"{entry['family'].strip()}-{row}")
    if not isinstance(prompt_id, str) or not prompt_id.strip():
        raise ConfigError(f"{where}, field 'id': must be a non-empty string")
    return PromptTemplate(prompt_id.strip(), entry["family"].strip(), entry["text"].strip(),
                          clause.strip() if clause else None, form, kinds, own)


def _finish(prompts: list[PromptTemplate], options, leads, fraction, max_combined, text_kinds, topics,
            source: str) -> Catalog:
    seen: dict[str, int] = {}
    for row, prompt in enumerate(prompts, start=1):
        if prompt.id in seen:
            raise ConfigError(f"{source}: prompt {row}: duplicate id {prompt.id!r} (first used by prompt {seen[prompt.id]})")
        seen[prompt.id] = row
    return Catalog(tuple(prompts), options, leads, fraction, max_combined, text_kinds, topics, source)


def check_fraction(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{where}: must be a number between 0 and 1, got {value!r}")


def _catalog_from_csv(path: Path) -> Catalog:
    if not path.is_file():
        raise ConfigError(f"prompt catalog not found: {path}")
    text = path.read_bytes().decode("utf-8-sig", "replace")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = [c.strip() for c in reader.fieldnames or []]
    missing = [c for c in ("family", "text") if c not in columns]
    if missing:
        raise DataError(path, f"missing column(s) {', '.join(missing)}; columns found: {', '.join(columns) or '(none)'}")
    prompts = []
    for row, record in enumerate(reader, start=1):
        record = {(k or "").strip(): (v or "").strip() for k, v in record.items()}
        for column in ("family", "text"):
            if not record.get(column):
                raise DataError(path, "required, non-empty", row=row, line=reader.line_num, column=column)
        entry: dict[str, Any] = {"family": record["family"], "text": record["text"]}
        if record.get("id"):
            entry["id"] = record["id"]
        if record.get("clause"):
            entry["clause"] = record["clause"]
        if record.get("form"):
            if record["form"].lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise DataError(path, f"expected true or false, got {record['form']!r}", row=row,
                                line=reader.line_num, column="form")
            entry["form"] = record["form"].lower() in ("true", "1", "yes")
        if record.get("text_kinds"):
            entry["text_kinds"] = [k for k in record["text_kinds"].split("|") if k.strip()]
        prompts.append(_prompt(entry, row, {}, f"{path} (CSV, line {reader.line_num})"))
    if not prompts:
        raise DataError(path, "the catalog has no prompts")
    return _finish(prompts, {}, DEFAULT_LEADS, DEFAULT_COMBINE_FRACTION, 3, (), (), str(path))


# -- expansion -------------------------------------------------------------------------------------
def expand_catalog(catalog: Catalog, n: int, seed: int = 0, *, combine_fraction: float | None = None,
                   max_combined: int | None = None, start: int = 0) -> list[ExpandedPrompt]:
    """Items `start` … `start + n - 1` of the catalog's expansion under `seed` (see the module docstring).

    combine_fraction: share of items joining 2-3 prompts (default: the catalog's `combine.fraction`).
    max_combined: 2 or 3 (default: the catalog's `combine.max_prompts`).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(f"n must be a non-negative integer, got {n!r}")
    fraction = catalog.combine_fraction if combine_fraction is None else combine_fraction
    check_fraction(fraction, "combine fraction")
    most = catalog.max_combined if max_combined is None else max_combined
    if most not in (2, 3):
        raise ConfigError(f"max_combined must be 2 or 3, got {most!r}")
    by_family: dict[str, list[PromptTemplate]] = {}
    combinable: dict[str, list[PromptTemplate]] = {}
    for prompt in catalog.prompts:
        by_family.setdefault(prompt.family, []).append(prompt)
        if prompt.clause is not None:
            combinable.setdefault(prompt.family, []).append(prompt)
    families = sorted(by_family)
    combinable_families = sorted(combinable)
    return [_expand_one(catalog, index, seed, fraction, most, by_family, families, combinable, combinable_families)
            for index in range(start, start + n)]


def _expand_one(catalog: Catalog, index: int, seed: int, fraction: float, most: int,
                by_family: Mapping[str, list[PromptTemplate]], families: list[str],
                combinable: Mapping[str, list[PromptTemplate]], combinable_families: list[str]) -> ExpandedPrompt:
    # a str seed goes through sha512 in random.seed: the same stream on every platform and Python run
    rng = random.Random(f"prh-catalog:{seed}:{index}")
    wants_combination = rng.random() < fraction and len(combinable_families) >= 2
    if wants_combination:
        k = rng.randint(2, min(most, len(combinable_families)))
        picked = _pick_combination(rng, combinable, combinable_families, k)
        lead = rng.choice(catalog.leads)
        parts, choices = [], []
        for prompt in picked:
            text, chosen = fill(prompt.clause or "", {**catalog.options, **prompt.options}, rng)
            parts.append(text)
            choices.append(chosen)
        instruction = join_clauses(lead, parts)
        hashed: list[Any] = [lead]
    else:
        prompt = rng.choice(by_family[rng.choice(families)])
        picked = [prompt]
        instruction, chosen = fill(prompt.text, {**catalog.options, **prompt.options}, rng)
        choices = [chosen]
        hashed = []
    hashed += [[p.id, p.text, p.clause, p.form, {**{k: catalog.options[k] for k in _names(p) if k in catalog.options},
                                         **p.options}] for p in picked]
    kinds = next((p.text_kinds for p in picked if p.text_kinds), catalog.text_kinds)
    text_kind = rng.choice(kinds) if kinds else None
    topic = rng.choice(catalog.topics) if catalog.topics else None
    return ExpandedPrompt(index=index, seed=seed, instruction=instruction, template_ids=tuple(p.id for p in picked),
                          families=tuple(p.family for p in picked), choices=tuple(choices),
                          template_hash=json_fingerprint(hashed), text_kind=text_kind, topic=topic)


def _pick_combination(rng: random.Random, combinable: Mapping[str, list[PromptTemplate]], families: list[str],
                      k: int) -> list[PromptTemplate]:
    """Up to `k` combinable prompts of distinct families, at most one of them a `form` prompt, which then
    comes first. Families are visited in random order; a family left with only form prompts after one was
    taken is skipped, so fewer than `k` (never fewer than one) may come back."""
    picked: list[PromptTemplate] = []
    for family in rng.sample(families, len(families)):
        if len(picked) == k:
            break
        allowed = [p for p in combinable[family] if not (p.form and any(q.form for q in picked))]
        if allowed:
            picked.append(rng.choice(allowed))
    return sorted(picked, key=lambda p: not p.form)  # stable: the form clause leads


def _names(prompt: PromptTemplate) -> set[str]:
    return {b for b in placeholders(prompt.text) + placeholders(prompt.clause or "") if "|" not in b}


def join_clauses(lead: str, clauses: Sequence[str]) -> str:
    """"Lead a, b and c." (a final period unless the last clause ends a sentence already)."""
    clauses = [c.strip() for c in clauses if c.strip()]
    if not clauses:
        return lead
    body = clauses[0] if len(clauses) == 1 else ", ".join(clauses[:-1]) + " and " + clauses[-1]
    sentence = f"{lead.strip()} {body}"
    sentence = sentence[0].upper() + sentence[1:]
    return sentence if sentence[-1] in ".!?" else sentence + "."
