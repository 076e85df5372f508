"""Turn a model's raw answer into a prompt: pure functions, no model, no I/O.

Chat models wrap their answer: "Sure, here is the prompt: **\\"Rewrite it as a poem.\\"**", a JSON object
in a ```json fence, or a chain of thought that ends in the answer. `postprocess(answer, mode)`:

- "raw": the answer with surrounding whitespace removed;
- "json": the value of the last top-level `{"prompt": ...}` (or `"rewrite_prompt"`) object, also inside
  a ```json fence; "" when there is none (the row is then reported empty, as it should: the model did
  not follow the format);
- "last_line": the last line that has a letter or digit (closing chatter skipped), cleaned (below): for
  chain-of-thought answers;
- "auto" (default): a JSON prompt object if there is one, else the cleaned answer.

Cleaning removes, repeatedly until nothing changes: `<think>` blocks, a code fence around the whole
answer, markdown bold, chatty openers ("Sure!", "Here is the prompt:") and labels ("Prompt:", "The
rewrite prompt was:"; the text after the *last* labelled line is kept), closing chatter ("Let me know…",
"Note: …"), list and quote markers, and quotes, backticks or emphasis around the whole answer.

Properties (tested with hypothesis): the result never has surrounding whitespace; it never contains text
that was not in the answer (outside JSON it is a subsequence of the answer, and never longer); "raw",
"last_line" and "auto" are idempotent; `postprocess(json.dumps({"prompt": p}), "json") == p.strip()` and
`postprocess(json.dumps({"prompt": p})) == postprocess(p)`. The result is "" when nothing usable
(no letter or digit) remains.
"""

from __future__ import annotations

import re

from harness.jsontext import iter_json_objects

MODES = ("auto", "json", "last_line", "raw")
#: Bump when the rules below change: chat candidates put it in their fingerprint, so predictions cached
#: under the old rules are not served as if the new ones had made them.
POSTPROCESS_VERSION = 1

_PROMPT_KEYS = ("prompt", "rewrite_prompt")
_MAX_JSON_STARTS = 500  # a pathological answer full of "{" must not make extraction quadratic

_THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.IGNORECASE | re.DOTALL)
_FENCE = re.compile(r"\A```(?:[\w+.-]*[ \t]*\n)?(.*?)```\Z", re.DOTALL)
_INTERJECTION = r"(?:sure|certainly|of course|okay|ok|absolutely|alright|great|got it)"
_MARKERS = r"[ \t]*(?:(?:[-*>#]+|\d+[.)])[ \t]+)*"  # "- ", "> ", "## ", "1. " before a label
_LABEL = re.compile(
    rf"^{_MARKERS}(?:"
    # "Sure, here is the prompt:" / "Here's my best guess at the original instruction:"
    rf"(?:{_INTERJECTION}[ \t]*[!.,]*[ \t]*)?here(?:'s|’s|[ \t]+is|[ \t]+are)\b[^\n:]{{0,100}}:"
    # "Prompt:" / "The rewrite prompt was:" / "Final answer:" / "Most likely instruction used:"
    r"|(?:(?:the|a|my|your|one)[ \t]+)?"
    r"(?:(?:final|best|most|likely|possible|probable|recovered|original|rewrite|rewriting|inferred|guessed"
    r"|predicted|reconstructed)[ \t]+)*(?:prompt|instruction|answer|guess)s?"
    r"(?:[ \t]+(?:is|was|would[ \t]+be|could[ \t]+be|might[ \t]+be|may[ \t]+be|used|that[ \t]+was[ \t]+used"
    r"|used[ \t]+was))?[ \t]*:"
    r")",
    re.IGNORECASE | re.MULTILINE,
)
_LEADING_INTERJECTION = re.compile(rf"\A{_INTERJECTION}[ \t]*[!.,:]+[ \t]*", re.IGNORECASE)
_CLOSER = re.compile(
    r"^[ \t]*(?:i[ \t]+hope|hope[ \t]+this|let[ \t]+me[ \t]+know|feel[ \t]+free|please[ \t]+let"
    r"|(?:note|explanation|reasoning|rationale)[ \t]*:)",
    re.IGNORECASE | re.MULTILINE,
)
_LINE_MARKERS = re.compile(r"\A(?:(?:[-*>#]+|\d+[.)])[ \t]+)+")
_WRAPPERS = (('"', '"'), ("'", "'"), ("“", "”"), ("‘", "’"), ("„", "“"), ("«", "»"), ("`", "`"), ("*", "*"),
             ("_", "_"))


def postprocess(answer: str, mode: str = "auto") -> str:
    """The prompt in `answer` according to `mode` (see the module docstring); "" when none is usable."""
    if mode not in MODES:
        raise ValueError(f"unknown postprocess mode {mode!r}; known: {', '.join(MODES)}")
    if mode == "raw":
        return answer.strip()
    if mode == "json":
        value = extract_json_prompt(_THINK.sub("", answer))
        return value.strip() if value is not None else ""
    if mode == "last_line":
        return clean_prompt(last_nonempty_line(_THINK.sub("", answer)))
    return _auto(answer)


def _auto(answer: str) -> str:
    """A JSON prompt if present, else the cleaned text, repeated until stable (so it is idempotent even
    for answers whose JSON value is itself a wrapped or JSON answer). Each change shortens the text, so
    this ends."""
    text = answer
    while True:
        value = extract_json_prompt(text)
        step = value if value is not None else clean_prompt(text)
        if step == text:
            return text
        text = step


def extract_json_prompt(text: str) -> str | None:
    """The string value of "prompt" (or "rewrite_prompt", any letter case) in the last top-level JSON
    object of `text` that has one; None when there is none. Objects nested in another are not
    considered (the outer object's answer is the answer)."""
    found: str | None = None
    for value in iter_json_objects(text, max_starts=_MAX_JSON_STARTS):
        keys = {str(k).lower(): v for k, v in value.items()}
        for key in _PROMPT_KEYS:
            if isinstance(keys.get(key), str):
                found = keys[key]
                break
    return found


def last_nonempty_line(text: str) -> str:
    """The last line with a letter or digit (fence and separator lines are skipped) that is not closing
    chatter ("Let me know…", "Note: …") unless there is nothing else; "" if none."""
    lines = [line.strip() for line in text.splitlines() if _has_word_character(line)]
    for line in reversed(lines):
        if not _CLOSER.match(line):
            return line
    return lines[-1] if lines else ""


def clean_prompt(text: str) -> str:
    """`text` without wrappers and chatter (see the module docstring), or "" when no letter or digit
    remains. Idempotent: cleaning is repeated until nothing changes, and every step only deletes."""
    while True:
        cleaned = _clean_once(text)
        if cleaned == text:
            break
        text = cleaned
    return text if _has_word_character(text) else ""


def _clean_once(text: str) -> str:
    text = _THINK.sub("", text).strip()
    fence = _FENCE.match(text)
    if fence:
        text = fence.group(1).strip()
    text = text.replace("**", "")
    text = _after_last_label(text).strip()
    text = _LEADING_INTERJECTION.sub("", text)
    text = _before_closers(text).strip()
    text = _LINE_MARKERS.sub("", text)
    return _unwrap(text.strip())


def _after_last_label(text: str) -> str:
    """The text after the last labelled line that is followed by something usable; the text itself when
    no line starts with a label, "" when labels are all that is there."""
    matches = list(_LABEL.finditer(text))
    for match in reversed(matches):
        rest = text[match.end():]
        if _has_word_character(rest):
            return rest
    return "" if matches else text


def _before_closers(text: str) -> str:
    """Cut closing chatter ("Let me know…", "Note: …") and all after it, unless nothing would remain."""
    for match in _CLOSER.finditer(text):
        head = text[:match.start()]
        if _has_word_character(head):
            return head
    return text


def _unwrap(text: str) -> str:
    """Remove quotes, backticks or emphasis that enclose the whole text, layer by layer."""
    changed = True
    while changed and len(text) >= 2:
        changed = False
        for opening, closing in _WRAPPERS:
            if text.startswith(opening) and text.endswith(closing) and len(text) >= len(opening) + len(closing):
                text = text[len(opening):len(text) - len(closing)].strip()
                changed = True
                break
    return text


def _has_word_character(text: str) -> bool:
    return any(ch.isalnum() for ch in text)
