"""Reading a generator model's answer and judging the row it makes: pure functions, no I/O.

Two tiers, because a human reads the rows before they join a suite:
- *problems* reject an answer (it is retried, then recorded as a failure): no JSON object with both
  texts, an empty text (or one without a single letter or digit, such as the "..." a weak model copies
  from the requested format), an original over the word limit, a "rewrite" identical to the original,
  a "rewrite" that is only the instruction said back (weak models echo their prompt);
- *flags* keep the row but mark it for the reviewer (`prh generate review`): a near copy, a chatty
  opener ("Sure, here is…"), a template placeholder left in ("[Your Name]"), the instruction echoed
  into the rewrite, a very short original, a rewrite far longer than the original.

`parse_pair` accepts what models really send: bare JSON, JSON in a ```json fence, JSON after a line of
chatter, keys in any letter case; it takes the last top-level object that has both texts. It never
raises anything but `InvalidGeneration`.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence

from harness.jsontext import iter_json_objects

ORIGINAL, REWRITTEN = "original_text", "rewritten_text"
_ALIASES = {ORIGINAL: (ORIGINAL, "original"), REWRITTEN: (REWRITTEN, "rewritten", "rewrite")}
_THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.IGNORECASE | re.DOTALL)
_MAX_JSON_STARTS = 200
DEFAULT_MAX_WORDS = 200
#: similarity ratio (difflib) at or above which a rewrite counts as a near copy
NEAR_COPY_RATIO = 0.9
_OPENER = re.compile(r"^\s*(?:\**\s*)(?:sure|certainly|of course|okay|absolutely|here(?:'s|’s| is| are)\b)",
                     re.IGNORECASE)
_BRACKET_PLACEHOLDER = re.compile(r"\[(?:your|insert|name|recipient|company|date|x{2,})[^\]\n]{0,40}\]", re.IGNORECASE)
_TEMPLATE_PLACEHOLDER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")

FLAG_DESCRIPTIONS = {
    "near_copy": f"the rewrite is at least {NEAR_COPY_RATIO:.0%} similar to the original (the change may be invisible)",
    "chatty_opener": "the rewrite starts with chatter such as 'Sure, here is…'",
    "placeholder_left": "a placeholder such as [Your Name] or {tone} is left in a text",
    "prompt_echo": "the rewrite contains the instruction itself",
    "short_original": "the original has fewer than 12 words",
    "long_rewrite": "the rewrite is more than three times as long as the original (plus 60 words)",
}


class InvalidGeneration(Exception):
    """An answer that cannot become a row. `reason` is a short code (for counting), `detail` says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def word_count(text: str) -> int:
    return len(text.split())


def _normalised(text: str) -> str:
    return " ".join(text.casefold().split())


def parse_pair(answer: str) -> tuple[str, str]:
    """(original_text, rewritten_text) from a model's answer; InvalidGeneration("not_json", …) when no
    JSON object in it has both as strings."""
    if not isinstance(answer, str):
        raise InvalidGeneration("not_json", f"expected text, got {type(answer).__name__}")
    text = _THINK.sub("", answer)
    found = None
    for value in _json_objects(text):
        pair = _pair_from(value)
        if pair is not None:
            found = pair
    if found is None:
        shown = answer.strip()
        shown = shown if len(shown) <= 120 else shown[:119] + "…"
        raise InvalidGeneration("not_json", f"no JSON object with string fields {ORIGINAL!r} and {REWRITTEN!r} "
                                            f"in the answer: {shown!r}")
    return found


def _json_objects(text: str):
    """Top-level JSON objects in `text`, in order (a whole-text object first if the text is one)."""
    stripped = text.strip()
    try:
        whole = json.loads(stripped)
    except ValueError:
        whole = None
    if isinstance(whole, dict):
        yield whole
        return
    yield from iter_json_objects(text, max_starts=_MAX_JSON_STARTS)


def _pair_from(value: Mapping) -> tuple[str, str] | None:
    keys = {str(k).casefold(): v for k, v in value.items()}
    texts = []
    for field in (ORIGINAL, REWRITTEN):
        text = next((keys[a] for a in _ALIASES[field] if isinstance(keys.get(a), str)), None)
        if text is None:
            return None
        texts.append(text)
    return texts[0], texts[1]


def has_words(text: str) -> bool:
    """Whether `text` holds at least one letter or digit: "...", "—" or "" hold no text at all."""
    return any(character.isalnum() for character in text)


def _empty(field: str, text: str) -> InvalidGeneration:
    shown = text.strip()
    detail = f"{field} is empty" if not shown else f"{field} has no words, only {_trim(shown, 20)!r}"
    return InvalidGeneration("empty_original" if field == ORIGINAL else "empty_rewritten", detail)


def _trim(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def problems(original: str, rewritten: str, *, max_words: int | None = DEFAULT_MAX_WORDS,
             prompt: str = "") -> list[InvalidGeneration]:
    """Why (original, rewritten) cannot be a row; [] when it can. `prompt`, the instruction, is checked
    against the rewrite: a rewrite that only says the instruction back is no rewrite."""
    found = []
    if not has_words(original):
        found.append(_empty(ORIGINAL, original))
    if not has_words(rewritten):
        found.append(_empty(REWRITTEN, rewritten))
    if max_words is not None and word_count(original) > max_words:
        found.append(InvalidGeneration("original_too_long",
                                       f"original_text has {word_count(original)} words, the limit is {max_words}"))
    if original.strip() and _normalised(original) == _normalised(rewritten):
        found.append(InvalidGeneration("unchanged", "rewritten_text is the original text unchanged"))
    elif has_words(rewritten) and has_words(prompt) and _similar(prompt, rewritten):
        found.append(InvalidGeneration("echoed_prompt", "rewritten_text is the instruction said back, not a "
                                                        "rewrite of the original text"))
    return found


def _similar(a: str, b: str) -> bool:
    a, b = _normalised(a).rstrip(".!"), _normalised(b).rstrip(".!")
    return a == b or difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() >= NEAR_COPY_RATIO


def check_pair(original: str, rewritten: str, *, max_words: int | None = DEFAULT_MAX_WORDS, prompt: str = "") -> None:
    """Raise the first of `problems` (all reasons joined in its detail)."""
    found = problems(original, rewritten, max_words=max_words, prompt=prompt)
    if found:
        raise InvalidGeneration(found[0].reason, "; ".join(p.detail for p in found))


def flags(original: str, rewritten: str, prompt: str = "") -> list[str]:
    """Review flags of a valid row (see FLAG_DESCRIPTIONS), in a fixed order."""
    marked = []
    a, b = _normalised(original), _normalised(rewritten)
    if a and b and difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() >= NEAR_COPY_RATIO:
        marked.append("near_copy")
    if _OPENER.match(rewritten):
        marked.append("chatty_opener")
    if any(_BRACKET_PLACEHOLDER.search(t) or _TEMPLATE_PLACEHOLDER.search(t) for t in (original, rewritten)):
        marked.append("placeholder_left")
    if prompt.strip() and len(prompt.strip()) >= 12 and _normalised(prompt).rstrip(".") in b:
        marked.append("prompt_echo")
    if original.strip() and word_count(original) < 12:
        marked.append("short_original")
    if word_count(rewritten) > 3 * word_count(original) + 60:
        marked.append("long_rewrite")
    return marked


def merge_flags(*groups: Sequence[str]) -> list[str]:
    """The union of flag lists, in the order of FLAG_DESCRIPTIONS, unknown flags last."""
    union = {f for group in groups for f in group}
    known = [f for f in FLAG_DESCRIPTIONS if f in union]
    return known + sorted(union - set(known))
