"""Helpers shared by the optimize and leaderboard tests (a helper module, not a test module: its own
tests are in test_optimize_helpers.py).

`BagOfWordsEmbedder` is a real `Embedder` (name, fingerprint, unit vectors), deterministic and instant:
a text's vector is the normalised sum of fixed random vectors of its lower-cased words, so texts sharing
words are similar. It records every text it embeds, which is how the held-out isolation tests see what
a search looked at. `word_tokenizer` builds a real (tiny) transformers tokenizer for the token search to
pair with it: word-level, lower-casing, BERT-style special tokens.
"""

from __future__ import annotations

import hashlib

import numpy as np

from harness.data import Sample, Suite

PROMPT_FAMILIES = [
    "Rewrite the text as a poem.", "Make the text more formal.", "Turn this email into a pirate shanty.",
    "Rewrite the story as a haiku.", "Make the memo sound more cheerful.", "Convert the recipe into a limerick.",
    "Rewrite this as a news report.", "Make the letter shorter and polite.", "Rewrite the text in a sad tone.",
    "Turn the notes into a formal email.", "Rewrite the essay as a rap song.", "Make the story scarier.",
]


class BagOfWordsEmbedder:
    """Deterministic word-vector embedder (see the module docstring)."""

    comparable_with_kaggle = False

    def __init__(self, dim: int = 48, name: str = "bow") -> None:
        self.dim = dim
        self.name = name
        self.fingerprint = f"{name}-{dim}"
        self.calls: list[list[str]] = []
        self._cache: dict[str, np.ndarray] = {}

    @property
    def embedded(self) -> list[str]:
        return [text for call in self.calls for text in call]

    def _word(self, word: str) -> np.ndarray:
        if word not in self._cache:
            seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
            self._cache[word] = np.random.default_rng(seed).standard_normal(self.dim)
        return self._cache[word]

    def embed(self, texts) -> np.ndarray:
        texts = list(texts)
        self.calls.append(texts)
        out = np.zeros((len(texts), self.dim))
        for i, text in enumerate(texts):
            for word in text.lower().replace(".", " ").replace(",", " ").split():
                out[i] += self._word(word)
            norm = np.linalg.norm(out[i])
            if norm > 0:
                out[i] /= norm
        return out.astype(np.float32)

    def count_tokens(self, texts) -> list[int]:
        return [len(text.split()) + 2 for text in texts]


def word_tokenizer(corpus=(*PROMPT_FAMILIES, "Hello there.")):
    """A real word-level fast tokenizer (lower-case words and punctuation, [CLS] … [SEP]) trained on
    `corpus`: the vocabulary of an embedder, which covers every split's words, as a real one would."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.decoder = decoders.WordPiece()  # joins words with spaces, tidies " ." into "."
    tokenizer.train_from_iterator(list(corpus), trainers.WordLevelTrainer(special_tokens=specials))
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", tokenizer.token_to_id("[CLS]")),
                                                 ("[SEP]", tokenizer.token_to_id("[SEP]"))])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def family_suite(name: str = "families", repeats: int = 3, families=PROMPT_FAMILIES, groups: bool = False) -> Suite:
    """`repeats` rows per prompt family, with distinct texts; group = the family's index when asked."""
    samples = []
    for f, prompt in enumerate(families):
        for r in range(repeats):
            i = f * repeats + r
            samples.append(Sample(f"row-{i:03d}", f"Original text number {i} about subject {f}.",
                                  f"Rewritten text number {i}, following family {f}.", prompt,
                                  f"family-{f}" if groups else None))
    return Suite(name, tuple(samples))


class RecordingSamples(tuple):
    """A suite's rows that log every access into `log`: iteration and indexing (their contents), and, with
    `log_length`, their count. The honesty tests put them in place of the held-out rows."""

    def __new__(cls, items, log, *, log_length: bool = True):
        obj = super().__new__(cls, items)
        obj.log = log
        obj.log_length = log_length
        return obj

    def __iter__(self):
        self.log.append("heldout")
        return super().__iter__()

    def __getitem__(self, index):
        self.log.append("heldout")
        return super().__getitem__(index)

    def __len__(self):
        if self.log_length:
            self.log.append("heldout")
        return super().__len__()
