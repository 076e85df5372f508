"""The words a mean-prompt search may insert or substitute.

Built from the *train* split's prompts only (a held-out word in the vocabulary would leak the held-out
prompts into the search), plus an optional user token list (adversarial tokens such as "lucrarea" that
no prompt contains). Words are whitespace tokens as written ("text." and "text" are different words:
the embedder sees punctuation) plus their bare lower-case form. Sampling weights are count ** power
(power 0.5 by default): frequent words are proposed more often without drowning out the rare ones.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import ConfigError, DataError

_EDGE_PUNCTUATION = re.compile(r"^[^\w]+|[^\w]+$")


@dataclass(frozen=True)
class Vocabulary:
    """Words and their sampling probabilities (same order; probabilities sum to 1): the word-level search
    space (`--space words`). A prompt's units are its words; a move inserts or replaces one word."""

    words: tuple[str, ...]
    probabilities: np.ndarray
    name = "words"
    default_moves = ("insert", "replace", "delete")

    def __len__(self) -> int:
        return len(self.words)

    def normalise(self, text: str) -> str:
        return " ".join(prompt_words(text))

    def units(self, text: str) -> list[str]:
        return text.split(" ")

    def item(self, index: int) -> list[str]:
        return [self.words[index]]

    def join(self, units: list[str]) -> str | None:
        return " ".join(units)

    def describe(self) -> dict:
        return {"vocabulary_size": len(self.words)}


def prompt_words(prompt: str) -> list[str]:
    """How the search sees a prompt: its whitespace-separated words (joined back with single spaces)."""
    return prompt.split()


def build_vocabulary(prompts: Iterable[str], extra_tokens: Sequence[str] = (), *, max_words: int = 3000,
                     min_count: int = 1, power: float = 0.5) -> Vocabulary:
    """The `max_words` most frequent words of `prompts` (ties broken alphabetically, so the vocabulary is
    deterministic) seen at least `min_count` times, plus every extra token (weighted like the median word)."""
    if max_words < 1:
        raise ConfigError(f"max_words must be >= 1, got {max_words}")
    counts: Counter[str] = Counter()
    for prompt in prompts:
        for word in prompt_words(prompt):
            counts[word] += 1
            bare = _EDGE_PUNCTUATION.sub("", word).lower()
            if bare and bare != word:
                counts[bare] += 1
    ranked = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))[:max_words]
    weights = [counts[w] ** power for w in ranked]
    median = float(np.median(weights)) if weights else 1.0
    for token in extra_tokens:
        token = token.strip()
        if token and token not in counts and token not in ranked:
            ranked.append(token)
            weights.append(median)
    if not ranked:
        raise ConfigError("the vocabulary is empty: the train prompts have no words and no token list was given")
    probabilities = np.asarray(weights, dtype=np.float64)
    return Vocabulary(tuple(ranked), probabilities / probabilities.sum())


def read_token_list(path: str | Path) -> list[str]:
    """Tokens from a text file: one per line (surrounding spaces ignored); blank lines and lines
    starting with '#' are skipped. A token may not contain spaces: it is one word of the prompt."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "token list not found")
    tokens = []
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        token = line.strip()
        if not token or token.startswith("#"):
            continue
        if len(token.split()) != 1:
            raise DataError(path, f"a token must be one word without spaces, got {token!r}", line=line_number)
        tokens.append(token)
    return tokens
