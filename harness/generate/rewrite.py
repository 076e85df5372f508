"""The rewriter: existing (original_text, rewrite_prompt) rows, rewritten by another model.

The scored rows were written by Gemma-7b-it; a set rewritten by GPT-4 teaches its style instead. This
asks any model (Gemma behind llama.cpp or vLLM, or a local transformers model through
`harness.generate.local`) for the rewrite, then applies Gemma-like post-processing
(`harness.generate.gemma_style`) so the rows look like the ones being scored.

The default conversation is one user turn, "{rewrite_prompt}\n\n{original_text}", and no system message
(Gemma's chat template has no system role). An item's id is `{source id}~rw-{hash}`, the hash covering
the model, templates, temperature and the row's own texts, so one file can hold rewrites by several
models, a rerun skips what is done, and an edited source row is rewritten anew.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.data import Sample
from harness.errors import ConfigError
from harness.generate.cost_estimate import text_tokens
from harness.generate.gemma_style import MODES, gemma_postprocess
from harness.generate.runner import WorkItem
from harness.generate.validation import InvalidGeneration, check_pair, flags
from harness.hashing import json_fingerprint
from harness.templates import check_placeholders, substitute

DEFAULT_REWRITE_USER = "{rewrite_prompt}\n\n{original_text}"
PLACEHOLDERS = ("rewrite_prompt", "original_text")


def template_placeholders(template: str, what: str) -> set[str]:
    """The placeholders `template` uses; unknown ones are configuration errors."""
    return check_placeholders(template, PLACEHOLDERS, what)


def render(template: str, sample: Sample) -> str:
    values = {"rewrite_prompt": sample.rewrite_prompt, "original_text": sample.original_text}
    return substitute(template, values)


@dataclass(frozen=True)
class RewriteSettings:
    """The conversation and the post-processing mode (see the module docstring)."""

    user: str = DEFAULT_REWRITE_USER
    system: str = ""
    postprocess: str = "strip"

    def __post_init__(self) -> None:
        used = template_placeholders(self.user, "rewrite user template")
        if not used:
            raise ConfigError("rewrite user template: uses neither {rewrite_prompt} nor {original_text}, so every "
                              "row would get the same request")
        missing = [p for p in PLACEHOLDERS if p not in used | template_placeholders(self.system, "rewrite system template")]
        if missing:
            raise ConfigError(f"rewrite templates: neither the user nor the system template uses {{{missing[0]}}}, "
                              "so the model never sees it")
        if self.postprocess not in MODES:
            raise ConfigError(f"postprocess must be one of {', '.join(MODES)}, got {self.postprocess!r}")


def rewrite_items(samples: Sequence[Sample], *, model: str, temperature: float,
                  settings: RewriteSettings = RewriteSettings()) -> list[WorkItem]:
    """One work item per source row."""
    items = []
    for sample in samples:
        messages = [{"role": "user", "content": render(settings.user, sample)}]
        if settings.system:
            messages.insert(0, {"role": "system", "content": render(settings.system, sample)})
        template_hash = json_fingerprint([settings.user, settings.system])
        defining = [model, float(temperature), template_hash, sample.original_text, sample.rewrite_prompt]
        items.append(WorkItem(
            id=f"{sample.id}~rw-{json_fingerprint(defining, 8)}",
            messages=tuple(messages),
            fields={"original_text": sample.original_text, "rewrite_prompt": sample.rewrite_prompt,
                    "group": sample.group, "source_id": sample.id},
            provenance={"template_hash": template_hash, "postprocess": settings.postprocess},
            typical_completion_tokens=text_tokens(sample.original_text) + 40))
    return items


@dataclass(frozen=True)
class RewriteAcceptor:
    """Post-processes the answer; rejects an empty rewrite or one equal to the original."""

    postprocess: str = "strip"

    def accept(self, item: WorkItem, answer: str) -> dict[str, Any]:
        original = str(item.fields.get("original_text", ""))
        rewritten = gemma_postprocess(answer, self.postprocess)
        check_pair(original, rewritten, max_words=None, prompt=str(item.fields.get("rewrite_prompt", "")))
        generated: dict[str, Any] = {"rewritten_text": rewritten,
                                     "flags": flags(original, rewritten, str(item.fields.get("rewrite_prompt", "")))}
        if rewritten != answer.strip():
            generated["rewritten_text_raw"] = answer  # paid for: kept, so another mode needs no new request
        return generated

    def correction(self, item: WorkItem, invalid: InvalidGeneration) -> str | None:
        return None
