"""Find JSON objects inside model answers, which wrap them in prose, code fences or chatter."""

from __future__ import annotations

import json
from collections.abc import Iterator

#: A pathological answer full of "{" must not make the scan quadratic.
MAX_JSON_STARTS = 500


def iter_json_objects(text: str, *, max_starts: int = MAX_JSON_STARTS) -> Iterator[dict]:
    """Top-level JSON objects in `text`, in order. Objects nested in another are not yielded on their
    own (the outer object is the answer); after `max_starts` failed or successful starts, it stops."""
    decoder = json.JSONDecoder()
    position, tries = text.find("{"), 0
    while position != -1 and tries < max_starts:
        tries += 1
        try:
            value, end = decoder.raw_decode(text, position)
        except ValueError:
            position = text.find("{", position + 1)
            continue
        if isinstance(value, dict):
            yield value
        position = text.find("{", end)


def describe_json_error(error: json.JSONDecodeError) -> str:
    """`error` as "<problem> at column N". Some of json's messages already end in "at" ("Unterminated
    string starting at", "Invalid control character at"), so appending " at …" to `error.msg` read "at at"."""
    problem = error.msg.removesuffix(" at")
    return f"{problem} at column {error.colno}"
