"""The synthesizer: for each instruction expanded from the catalog, a strong LLM writes a short original
text that makes sense for it and the rewrite a careful model would produce, as one JSON object.

Why an LLM writes the *original* too: leaderboard originals were chosen to suit their prompts (a recipe
for "turn this recipe into a sea shanty"); rewriting random public texts gives mismatched, easy pairs.
Each request carries a suggested kind of text and a topic drawn with the item, so two items with the
same instruction still ask for different texts (and the set does not collapse onto the model's
favourite subject).

An item's id is `syn-s{seed}-{index}-{hash}`, the hash covering everything that defines the item
(instruction, kind, topic, template hash, model, temperature, word limit, the prompts sent): a rerun of
the same command skips what it already wrote, while another seed, temperature or model is a new item,
which is how the set grows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.generate.catalog import ExpandedPrompt
from harness.generate.runner import WorkItem
from harness.generate.validation import (
    DEFAULT_MAX_WORDS,
    InvalidGeneration,
    check_pair,
    flags,
    parse_pair,
)
from harness.hashing import json_fingerprint

SYNTH_SYSTEM = (
    "You create evaluation data for a prompt-recovery task. A language model was given an instruction and "
    "an original text, and rewrote the text following the instruction; players must guess the instruction "
    "from the two texts. You write both texts. Answer with one JSON object and nothing else."
)
SYNTH_USER = (
    "Instruction given to the rewriting model:\n<<<\n{instruction}\n>>>\n\n"
    "1. Write an original text of fewer than {max_words} words{kind_hint}{topic_hint}. It must read like a "
    "real text written by a person, make sense on its own, and suit the instruction: every change the "
    "instruction asks for must be possible and visible when applied to it. Do not mention the instruction "
    "or any rewriting in it.\n"
    "2. Write the rewritten text: what a capable assistant returns when given the instruction and the "
    "original text, applying every part of the instruction. Only the rewritten text itself: no preamble "
    "such as \"Sure, here is\", no notes, no quotes around it.\n\n"
    'Answer with JSON only: one object with two string fields, "original_text" (step 1) and "rewritten_text" '
    "(step 2)."
)
# No skeleton such as {"original_text": "..."} in the request, and no description of a field that reads
# like a text: weak models copy them verbatim (Gemma-3-270m answered '{"original_text": "...",
# "rewritten_text": "..."}' to 6 of 6 requests that showed one, and "Your text of step 1" to one that said
# "(your text of step 1)").
CORRECTION = (
    "That answer cannot be used: {detail}. Answer again with only the JSON object with the fields "
    '"original_text" and "rewritten_text", following every rule above '
    "(the original under {max_words} words, the rewrite different from it)."
)
#: The JSON schema of an answer, sent with `--json-mode schema` to servers that constrain decoding to it.
PAIR_SCHEMA = {"type": "object", "properties": {"original_text": {"type": "string", "minLength": 1},
                                                "rewritten_text": {"type": "string", "minLength": 1}},
               "required": ["original_text", "rewritten_text"]}
#: completion tokens of a typical answer: an original of ~120 words and a rewrite of ~150, plus JSON
TYPICAL_COMPLETION_TOKENS = 400


@dataclass(frozen=True)
class SynthPrompts:
    """The conversation templates; their hash is part of every item id and provenance."""

    system: str = SYNTH_SYSTEM
    user: str = SYNTH_USER
    correction: str = CORRECTION

    @property
    def fingerprint(self) -> str:
        return json_fingerprint([self.system, self.user, self.correction])


def synth_messages(prompt: ExpandedPrompt, *, max_words: int, prompts: SynthPrompts = SynthPrompts()
                   ) -> list[dict[str, str]]:
    """The conversation asking for one (original, rewritten) pair."""
    user = prompts.user.format(
        instruction=prompt.instruction, max_words=max_words,
        kind_hint=f", preferably {prompt.text_kind} (choose another kind if that does not suit the instruction)"
        if prompt.text_kind else "",
        topic_hint=f", about {prompt.topic} if that fits" if prompt.topic else "")
    messages = [{"role": "user", "content": user}]
    if prompts.system:
        messages.insert(0, {"role": "system", "content": prompts.system})
    return messages


def synth_items(expanded: Sequence[ExpandedPrompt], *, model: str, temperature: float,
                max_words: int = DEFAULT_MAX_WORDS, prompts: SynthPrompts = SynthPrompts()) -> list[WorkItem]:
    """One work item per expanded prompt (see the module docstring for ids)."""
    items = []
    for prompt in expanded:
        defining = [prompt.instruction, prompt.text_kind, prompt.topic, prompt.template_hash, model,
                    float(temperature), max_words, prompts.fingerprint]
        item_id = f"syn-s{prompt.seed}-{prompt.index:05d}-{json_fingerprint(defining, 8)}"
        items.append(WorkItem(
            id=item_id,
            messages=tuple(synth_messages(prompt, max_words=max_words, prompts=prompts)),
            fields={"rewrite_prompt": prompt.instruction, "group": prompt.group},
            provenance={"template_ids": list(prompt.template_ids), "template_hash": prompt.template_hash,
                        "choices": [dict(c) for c in prompt.choices], "seed": prompt.seed, "index": prompt.index,
                        "text_kind": prompt.text_kind, "topic": prompt.topic, "max_words": max_words,
                        "prompts_hash": prompts.fingerprint},
            typical_completion_tokens=TYPICAL_COMPLETION_TOKENS))
    return items


@dataclass(frozen=True)
class SynthAcceptor:
    """Accepts answers holding a valid (original, rewritten) pair; see `harness.generate.validation`."""

    max_words: int = DEFAULT_MAX_WORDS
    prompts: SynthPrompts = SynthPrompts()

    def accept(self, item: WorkItem, answer: str) -> dict[str, Any]:
        original, rewritten = parse_pair(answer)
        original, rewritten = original.strip(), rewritten.strip()
        prompt = str(item.fields.get("rewrite_prompt", ""))
        check_pair(original, rewritten, max_words=self.max_words, prompt=prompt)
        return {"original_text": original, "rewritten_text": rewritten,
                "flags": flags(original, rewritten, prompt)}

    def correction(self, item: WorkItem, invalid: InvalidGeneration) -> str | None:
        return self.prompts.correction.format(detail=invalid.detail, max_words=self.max_words)


def example_answer(original: str, rewritten: str) -> str:
    """A well-formed answer (for tests, stubs and documentation)."""
    return json.dumps({"original_text": original, "rewritten_text": rewritten}, ensure_ascii=False)
