"""Gemma-like post-processing of a rewrite: what the competition host did to Gemma's raw answers.

Gemma-7b-it wraps its rewrites: "Sure, here is the rewritten text:\n\n…", a closing "I hope this…", the
whole text in quotes. Public data kept these artefacts; the leaked host sample did not. To make generated
rows look like the rows being scored, choose a mode:

- "none": the answer as it came (stripped of surrounding whitespace), like the public data;
- "strip": without a chatty first line ending in ":" ("Sure, here's the text rewritten as a poem:"),
  without closing chatter paragraphs ("I hope this helps", "Let me know…", "Note: …") and without quotes
  wrapping the whole text: like the host's sample;
- "plain": "strip", then markdown emphasis and heading marks removed as well.

Only whole lines at the edges are removed; the body is never edited except by "plain". When removing
would leave nothing, the answer is kept as it was (a row is better flagged than silently emptied).
"""

from __future__ import annotations

import re

MODES = ("none", "strip", "plain")
_OPENER = re.compile(
    r"\A\s*(?:\**)\s*(?:(?:sure|certainly|of course|okay|ok|absolutely|alright)\b[^\n]*?[!.,]?\s*)?"
    r"(?:here(?:'s|’s| is| are)\b[^\n]{0,160}?:|(?:sure|certainly|of course|okay|absolutely)\b[^\n]{0,160}?:)"
    r"\s*\**[ \t]*\n", re.IGNORECASE)
_BARE_INTERJECTION = re.compile(r"\A\s*(?:sure|certainly|of course|okay|absolutely)[!.]?[ \t]*\n", re.IGNORECASE)
_CLOSER = re.compile(r"^\s*(?:i hope|hope this|let me know|feel free|please let|is there anything|"
                     r"(?:note|notes|explanation|changes made)\s*:|this (?:rewrite|version|revised))", re.IGNORECASE)
_WRAPPERS = (('"', '"'), ("“", "”"), ("'", "'"))


def gemma_postprocess(text: str, mode: str = "strip") -> str:
    """`text` post-processed in `mode` (see the module docstring)."""
    if mode not in MODES:
        raise ValueError(f"unknown post-processing mode {mode!r}; known: {', '.join(MODES)}")
    original = text.strip()
    if mode == "none":
        return original
    body = original
    for pattern in (_OPENER, _BARE_INTERJECTION):
        body = pattern.sub("", body, count=1).lstrip()
    paragraphs = re.split(r"\n\s*\n", body)
    while len(paragraphs) > 1 and _CLOSER.match(paragraphs[-1]):
        paragraphs.pop()
    body = "\n\n".join(paragraphs).strip()
    for opening, closing in _WRAPPERS:
        inner = body[len(opening):-len(closing)] if len(body) >= 2 else ""
        if body.startswith(opening) and body.endswith(closing) and opening not in inner and closing not in inner:
            body = inner.strip()
            break
    if mode == "plain":
        body = re.sub(r"\*\*(.+?)\*\*|__(.+?)__", lambda m: m.group(1) or m.group(2), body)
        body = re.sub(r"^#{1,6}[ \t]+", "", body, flags=re.MULTILINE)
    return body if body.strip() else original
