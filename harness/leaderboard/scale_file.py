"""St5 scale map files: `baselines/<embedder>/st5_scale.json`, one per embedder.

A reviewable JSON file beside the embedder's baselines: the map's coefficients, the fitted files (name,
hash, rows, the domain's reference points) and the cross-file validation table, so a reviewer sees in a
diff what changed. Written atomically, and always saying what it replaced (old → new).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.baselines import _safe_name
from harness.errors import DataError
from harness.files import write_json_atomic
from harness.leaderboard.model_file import read_fitted_file
from harness.leaderboard.scale import ScaleMap

FILE_NAME = "st5_scale.json"


def scale_path(directory: str | Path, embedder: str) -> Path:
    return Path(directory) / _safe_name(embedder) / FILE_NAME


def read_scale_map(path: str | Path) -> ScaleMap:
    return read_fitted_file(path, ScaleMap.from_dict, what="st5 scale map", refit="prh calibrate scale --write")


def load_scale_map(directory: str | Path, embedder: str) -> ScaleMap | None:
    """The embedder's stored map, or None when there is none; a malformed file is a DataError naming it."""
    path = scale_path(directory, embedder)
    return read_scale_map(path) if path.is_file() else None


@dataclass(frozen=True)
class ScaleUpdate:
    """What writing (or not writing) a map did: the path, the new map and the old one it replaced."""

    path: Path
    new: ScaleMap
    old: ScaleMap | None
    written: bool
    #: the file in place could not be read (an older format, or damaged): it is replaced all the same
    replaced_unreadable: bool = False

    def describe(self) -> str:
        old = "none" if self.old is None else self.old.describe()
        if self.replaced_unreadable:
            old = "an unreadable file"
        verb = "" if self.written else "not written (use --write): "
        return f"{verb}st5 scale map ({self.new.embedder}): {old} → {self.new.describe()} → {self.path}"


def write_scale_map(directory: str | Path, scale: ScaleMap, *, write: bool = True) -> ScaleUpdate:
    """Write `scale` to its place atomically (with `write`), saying what it replaced."""
    path = scale_path(directory, scale.embedder)
    old, unreadable = None, False
    if path.is_file():
        try:
            old = read_scale_map(path)
        except DataError:
            unreadable = True
    if write:
        write_json_atomic(path, scale.to_dict())
    return ScaleUpdate(path, scale, old, write, unreadable)
