"""The embedder's own tokenizer vocabulary as the moves of a mean-prompt search (`--space tokens`).

The competition's best mean prompts (0.69-0.70 on the leaderboard) were searched over sentence-t5's
tokens, not over words of known prompts. Here a prompt is held as the token ids its text encodes to;
a move appends, inserts, replaces or deletes one vocabulary entry (one token, or the pieces of one extra
token from `--tokens`), and the edited ids are *decoded back to text*. The text is what gets embedded
and scored, so the string reported really scores what was measured, whatever the tokenizer makes of it
on the way back (the next step re-encodes it).

Which tokens may be used (`usable_tokens`):
- no special token (`</s>`, `<pad>`, `<unk>`, the `<extra_id_N>` sentinels; `[CLS]`, `[SEP]`, `[PAD]`,
  `[UNK]`, `[MASK]` for WordPiece) and no token whose text contains one: Kaggle's scorer reads such
  strings literally, so a searched `</s>` would score differently there;
- only pieces that survive a decode/encode round trip: decoded alone and encoded again they give the same
  single id (a continuation piece such as `##ing`, an `[unusedN]` slot or a byte-fallback piece does not;
  the few WordPiece continuations that do, such as `##°`, are dropped too: they glue onto the word before).
  Punctuation that a SentencePiece tokenizer only reproduces after a word (`.` after `▁the`) is kept too.

Sampling weights (the prior) come from the TRAIN prompts only: tokens they contain are weighted by
count ** power like the word vocabulary, and `explore_share` of the probability mass is spread evenly over
every other usable token of the tokenizer, which is the embedder's, not the data's.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.errors import ConfigError

#: Token texts that are special even when a tokenizer does not flag them (T5 sentinels, BERT's unused slots).
_SPECIAL_LOOKING = re.compile(r"<extra_id_\d+>|\[unused\d+\]|</s>|<pad>|<unk>|<s>|\[(?:CLS|SEP|PAD|UNK|MASK)\]")
#: Words that a tokenizer usually holds as one token, to test punctuation after a word.
_ANCHOR_WORDS = ("the", "a", "and")


@dataclass(frozen=True)
class UsableTokens:
    """The tokenizer's tokens a search may use, and how many were excluded and why."""

    ids: tuple[int, ...]
    texts: tuple[str, ...]
    excluded_special: int
    excluded_round_trip: int


def embedder_tokenizer(embedder: Any) -> Any | None:
    """The embedder's tokenizer (a transformers tokenizer), loading the model if needed; None when the
    embedder has none (test stubs, remote embedders)."""
    load = getattr(embedder, "load", None)
    if not callable(load):
        return None
    return getattr(load(), "tokenizer", None)


def _encode(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    if not texts:
        return []
    return [list(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def special_token_ids(tokenizer: Any) -> set[int]:
    """Ids of every token the tokenizer treats as special (named ones, added special tokens, sentinels)."""
    ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    for token_id, added in (getattr(tokenizer, "added_tokens_decoder", {}) or {}).items():
        if getattr(added, "special", False):
            ids.add(int(token_id))
    return ids


def usable_tokens(tokenizer: Any) -> UsableTokens:
    """The tokens a search may insert (see the module docstring): not special, and surviving a round trip."""
    vocabulary = sorted(set(tokenizer.get_vocab().values()))
    special = special_token_ids(tokenizer)
    candidates = [i for i in vocabulary if i not in special]
    texts = tokenizer.batch_decode([[i] for i in candidates])
    plain = [(i, t) for i, t in zip(candidates, texts) if not _SPECIAL_LOOKING.search(t)]
    excluded_special = len(vocabulary) - len(plain)
    # A bare "▁" decodes to nothing; a WordPiece continuation ("##°") that round-trips alone still glues
    # onto the word before it in a prompt: neither is a move.
    plain = [(i, t) for i, t in plain if t.strip() and not t.startswith("##")]
    alone = _encode(tokenizer, [t for _, t in plain])
    kept: dict[int, str] = {i: t for (i, t), ids in zip(plain, alone) if ids == [i]}
    anchor = _anchor(tokenizer)
    if anchor is not None:
        # Punctuation a SentencePiece tokenizer only reproduces after a word ("the." -> ▁the .).
        retry = [(i, t) for (i, t), ids in zip(plain, alone) if ids != [i] and not any(c.isalnum() for c in t)]
        joined = tokenizer.batch_decode([[anchor, i] for i, _ in retry])
        for (i, t), ids in zip(retry, _encode(tokenizer, joined)):
            if ids == [anchor, i]:
                kept[i] = t
    ids = tuple(sorted(kept))
    return UsableTokens(ids=ids, texts=tuple(kept[i] for i in ids), excluded_special=excluded_special,
                        excluded_round_trip=len(vocabulary) - excluded_special - len(ids))


def _anchor(tokenizer: Any) -> int | None:
    for word in _ANCHOR_WORDS:
        ids = _encode(tokenizer, [word])[0]
        if len(ids) == 1:
            return ids[0]
    return None


@dataclass
class TokenSpace:
    """Token-level search space: the entries a move may insert, their sampling probabilities, and the
    tokenizer that turns a prompt into ids and ids back into the text that is scored.

    Build it with `build_token_space`. `max_tokens` (special tokens included, as the embedder counts)
    keeps append/insert from proposing strings over the scorer's cap.
    """

    tokenizer: Any
    entries: tuple[tuple[int, ...], ...]
    probabilities: np.ndarray
    usable: UsableTokens
    n_from_train: int
    max_tokens: int | None = None
    name: str = "tokens"
    default_moves: tuple[str, ...] = ("append", "insert", "replace", "delete")
    _ids: dict[str, list[int]] = field(default_factory=dict, repr=False)
    _n_special: int = field(default=-1, repr=False)

    def __len__(self) -> int:
        return len(self.entries)

    def normalise(self, text: str) -> str:
        return " ".join(text.split())

    def units(self, text: str) -> list[int]:
        """The ids `text` encodes to (no special tokens), memoised: beam members are asked every step."""
        ids = self._ids.get(text)
        if ids is None:
            ids = self._ids[text] = _encode(self.tokenizer, [text])[0]
        return list(ids)

    def item(self, index: int) -> list[int]:
        return list(self.entries[index])

    def join(self, units: list[int]) -> str | None:
        """The text of `units` (None when it would be over the length cap or is empty)."""
        if not units:
            return None
        if self.max_tokens is not None and len(units) + self.special_count() > self.max_tokens:
            return None
        # special ids (an [UNK] the start prompt encoded to) vanish rather than become literal "[UNK]" text
        text = self.tokenizer.decode(units, skip_special_tokens=True).strip()
        return text or None

    def anchor_id(self) -> int:
        """A common whole-word token (for placeholders): "the", "a" or "and", else the likeliest entry."""
        anchor = _anchor(self.tokenizer)
        if anchor is None:
            anchor = next(e[0] for e in (self.entries[i] for i in np.argsort(-self.probabilities)) if len(e) == 1)
        return anchor

    def special_count(self) -> int:
        """How many special tokens the tokenizer adds around a text ([CLS] … [SEP]: 2; … </s>: 1)."""
        if self._n_special < 0:
            self._n_special = len(self.tokenizer("", add_special_tokens=True)["input_ids"])
        return self._n_special

    def describe(self) -> dict:
        return {"vocabulary_size": len(self.entries), "tokens_usable": len(self.usable.ids),
                "tokens_from_train": self.n_from_train, "tokens_excluded_special": self.usable.excluded_special,
                "tokens_excluded_round_trip": self.usable.excluded_round_trip}


def build_token_space(tokenizer: Any, train_prompts: Iterable[str], extra_tokens: Sequence[str] = (), *,
                      explore_share: float = 0.1, power: float = 0.5, max_train_tokens: int | None = None,
                      max_tokens: int | None = None, usable: UsableTokens | None = None) -> TokenSpace:
    """A `TokenSpace` whose prior comes from `train_prompts` (the TRAIN split only; see the module docstring).

    Args:
        tokenizer: the embedder's tokenizer (`embedder_tokenizer(embedder)`).
        train_prompts: the train split's prompts; their usable tokens are weighted count ** power.
        extra_tokens: strings added as one entry each (their pieces move together), weighted like the
            median train token; special-looking ones are refused.
        explore_share: probability mass spread evenly over the usable tokens the train prompts lack
            (0: search the train prompts' tokens only; 1: uniform over the whole vocabulary).
        max_train_tokens: keep only this many most frequent train tokens (None: all).
        max_tokens: the scorer's length cap, special tokens included.
        usable: a precomputed `usable_tokens(tokenizer)` (it takes a few seconds on a 32k vocabulary).
    """
    if not 0.0 <= explore_share <= 1.0:
        raise ConfigError(f"explore_share must be in [0, 1], got {explore_share}")
    usable = usable or usable_tokens(tokenizer)
    if not usable.ids:
        raise ConfigError("the tokenizer has no usable token (all are special or fail a decode/encode round trip)")
    allowed = set(usable.ids)
    counts: Counter[int] = Counter()
    for ids in _encode(tokenizer, list(train_prompts)):
        counts.update(i for i in ids if i in allowed)
    ranked = sorted(counts, key=lambda i: (-counts[i], i))[:max_train_tokens]
    entries: list[tuple[int, ...]] = [(i,) for i in ranked]
    weights = [float(counts[i]) ** power for i in ranked]
    total = sum(weights)
    weights = [w / total * (1.0 - explore_share) for w in weights] if total > 0 else []
    median = float(np.median(weights)) if weights else 1.0 / len(usable.ids)
    special = special_token_ids(tokenizer)
    for token in extra_tokens:
        token = token.strip()
        pieces = tuple(_encode(tokenizer, [token])[0]) if token else ()
        if not pieces:
            continue
        if _SPECIAL_LOOKING.search(token) or special & set(pieces):
            raise ConfigError(f"extra token {token!r} is or contains a special token, which the scorer reads "
                              "literally; it cannot be a search move")
        if pieces not in entries:
            entries.append(pieces)
            weights.append(median)
    kept_train = set(ranked)
    explore = [i for i in usable.ids if i not in kept_train]
    if explore and (explore_share > 0 or not weights):
        share = explore_share if weights else 1.0
        entries.extend((i,) for i in explore)
        weights.extend([share / len(explore)] * len(explore))
    probabilities = np.asarray(weights, dtype=np.float64)
    keep = probabilities > 0
    entries = [e for e, k in zip(entries, keep) if k]
    probabilities = probabilities[keep]
    return TokenSpace(tokenizer=tokenizer, entries=tuple(entries), probabilities=probabilities / probabilities.sum(),
                      usable=usable, n_from_train=len(ranked), max_tokens=max_tokens)
