"""One declared schema per candidate kind, and one way to check an entry against it.

Each kind declares its `[candidates.NAME]` keys as a pydantic model (types, ranges, defaults, required
keys); `validate_entry` checks an entry and turns every problem into one ConfigError line naming the file,
the table and the key:

    candidates.toml: [candidates.knn]: 'k' must be an integer >= 1, found string 'three'
    candidates.toml: [candidates.c]: unknown key 'temprature'; known keys: kind, description, prompt

pydantic rather than more hand-written checks: the kinds had grown five different styles of `_option`
helpers, and three kinds checked nothing at all (`k = "three"` reached `int()` as a traceback). A model
is the declaration and the check at once, `extra="forbid"` rejects unknown keys, `strict=True` refuses
the coercions TOML users do not expect ("3" for 3, true for 1), and the error list carries the key.
pydantic is already installed with openai. This module is imported only when an entry is built, never
by `import harness` or the pytest plugin.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from harness.errors import ConfigError
from harness.tomlfile import describe_value

M = TypeVar("M", bound="EntrySchema")


class EntrySchema(BaseModel):
    """The keys every kind shares. Subclasses add their own; anything else is an unknown key."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    kind: str
    description: str | None = None


def where(source: str, name: str) -> str:
    """How an entry is named in errors: its file and its table."""
    return f"{source}: [candidates.{_toml_key(name)}]"


def _toml_key(name: str) -> str:
    return name if name.replace("-", "").replace("_", "").isalnum() else f'"{name}"'


def validate_entry(schema: type[M], entry: Mapping[str, Any], place: str) -> M:
    """The entry as `schema`'s model, or a ConfigError "`place`: <the first problem>" (see the module
    docstring); `place` comes from `where`."""
    try:
        return schema.model_validate(dict(entry))
    except ValidationError as error:
        raise ConfigError(f"{place}: {_describe(schema, error, entry)}") from None


_EXPECTED = {
    "string_type": "a string", "int_type": "an integer", "float_type": "a number", "bool_type": "true or false",
    "list_type": "an array", "dict_type": "a table", "literal_error": None,
}


def _describe(schema: type[EntrySchema], error: ValidationError, entry: Mapping[str, Any]) -> str:
    problems = error.errors(include_url=False)
    unknown = [str(p["loc"][0]) for p in problems if p["type"] == "extra_forbidden"]
    known = ", ".join(schema.model_fields)
    if unknown:
        return f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(repr(k) for k in unknown)}; known keys: {known}"
    first = problems[0]
    key = str(first["loc"][0]) if first["loc"] else "?"
    path = "".join(f"[{part}]" if isinstance(part, int) else "" for part in first["loc"][1:])
    if first["type"] == "missing":
        field = schema.model_fields.get(key)
        what = f" ({field.description})" if field is not None and field.description else ""
        return f"'{key}' is required{what}"
    if first["type"] == "value_error":  # a model validator's own sentence
        return str(first.get("ctx", {}).get("error", first["msg"]))
    expected = _expected(first)
    found = describe_value(first.get("input"))
    return f"'{key}{path}' must be {expected}, found {found}"


def _expected(problem: Mapping[str, Any]) -> str:
    kind, ctx = problem["type"], problem.get("ctx") or {}
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
        limit = next(iter(ctx.values()))
        return f"{bound} {limit}"
    if kind == "literal_error":
        return f"one of {ctx.get('expected', '')}"
    if kind == "string_too_short":
        return "a non-empty string"
    if kind == "too_short":
        return f"an array of at least {ctx.get('min_length', 1)} item(s)"
    return _EXPECTED.get(kind) or problem["msg"].lower()


# -- the kinds' entries ------------------------------------------------------------------------------------
NonEmpty = Annotated[str, StringConstraints(min_length=1)]


class ConstantEntry(EntrySchema):
    """`kind = "constant"`: one mean prompt for every row."""

    prompt: Annotated[str, StringConstraints(min_length=1, pattern=r"\S")] = Field(
        description="the prompt answered for every row, a non-empty string")


class PredictionsFileEntry(EntrySchema):
    """`kind = "predictions-file"`: a Kaggle-format file of answers."""

    path: NonEmpty = Field(description="the predictions file, relative to the candidates file")
    id_column: str = "id"
    prediction_column: NonEmpty = "rewrite_prompt"


class RetrievalEntry(EntrySchema):
    """`kind = "retrieval"`: the prompts of the k nearest rows of a train suite."""

    train_suite: NonEmpty = Field(description="the suite whose rows are retrieved")
    k: Annotated[int, Field(ge=1)] = 3
    query: Literal["rewritten", "pair", "delta"] = "rewritten"
    embedder: NonEmpty = "minilm"
    joiner: str = " "


class EnsembleEntry(EntrySchema):
    """`kind = "ensemble"`: members' answers joined, then an optional suffix."""

    members: list[NonEmpty] = []
    suffix: str = ""
    separator: str = " "


class FewShotKeys(EntrySchema):
    """Few-shot examples taken from a suite (chat and hf)."""

    few_shot_suite: NonEmpty | None = None
    few_shot_k: Annotated[int, Field(ge=0)] = 0


class ChatEntry(FewShotKeys):
    """`kind = "chat"`: an OpenAI-compatible endpoint (docs/chat.md). Never a key: `api_key_env` names the
    variable that holds it."""

    base_url: NonEmpty = Field(description="the endpoint, e.g. http://localhost:8000/v1")
    model: NonEmpty = Field(description="the model name the endpoint serves")
    api_key_env: NonEmpty | None = None
    system: str | None = None
    user: str | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 0.0
    n: Annotated[int, Field(ge=1)] = 1
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    seed: int | None = None
    max_concurrency: Annotated[int, Field(ge=1)] = 8
    timeout: Annotated[float, Field(gt=0.0)] = 60.0
    max_retries: Annotated[int, Field(ge=0)] = 5
    postprocess: Literal["auto", "json", "last_line", "raw"] = "auto"
    max_text_chars: Annotated[int, Field(ge=1)] | None = None
    train_suites: list[NonEmpty] = []


class HfEntry(FewShotKeys):
    """`kind = "hf"`: a local causal LM, optionally with a LoRA adapter (docs/hf.md)."""

    model: NonEmpty = Field(description="a local model directory, a hub id (org/name), gguf:PATH or gguf-package:NAME")
    adapter: NonEmpty | None = None
    adapter_command: NonEmpty | None = None
    dtype: Literal["auto", "float32", "fp32", "bfloat16", "bf16", "float16", "fp16"] = "auto"
    device: NonEmpty = "auto"
    batch_size: Annotated[int, Field(ge=1)] = 8
    max_new_tokens: Annotated[int, Field(ge=1)] = 48
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 0.0
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    seed: int = 0
    system: str | None = None
    user: str | None = None
    max_text_chars: Annotated[int, Field(ge=1)] | None = None
    stop: list[NonEmpty] = []
    load_in_4bit: bool = False
    postprocess: Literal["auto", "json", "last_line", "raw"] = "auto"
    train_suites: list[NonEmpty] = []
