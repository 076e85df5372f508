"""Lay a model folder out as the Hugging Face hub cache does, for tests that find models there."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def put_in_hf_cache(hub: Path, repo_id: str, source: Path, revision: str) -> Path:
    """Lay `source` out as huggingface_hub does: content-addressed blobs, a snapshot of relative symlinks
    to them, and `refs/main` naming the revision. Returns the snapshot directory."""
    repo = hub / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / revision
    for file in sorted(p for p in source.rglob("*") if p.is_file()):
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / file.relative_to(source)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return snapshot
