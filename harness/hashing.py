"""Content hashes used as cache keys and fingerprints.

Everything cached (embeddings, predictions) and every score is keyed by content, not by names, so a
renamed file or an edited suite can never be served a stale result.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def text_hash(text: str) -> str:
    """A stable key for one text (sha256 of its UTF-8 bytes, hex)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def json_fingerprint(value: Any, length: int = 16) -> str:
    """A short stable fingerprint of a JSON-serialisable value (key order does not matter)."""
    blob = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()[:length]


def file_fingerprint(path: str | Path, length: int = 16) -> str:
    """Fingerprint of a file's bytes (streamed, so large files do not need to fit in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]


def update_with_file(digest, path: str | Path, size: int, *, full_limit: int = 4 << 20, edge: int = 1 << 20) -> None:
    """Feed a model file into `digest`: in full when small (configs, tokenizers), otherwise its first
    and last `edge` bytes. Hashing gigabytes of weights on every run would cost seconds; a different
    checkpoint differs in those bytes (and the caller hashes the size too)."""
    with open(path, "rb") as handle:
        if size <= full_limit:
            digest.update(handle.read())
        else:
            digest.update(handle.read(edge))
            handle.seek(size - edge)
            digest.update(handle.read())
