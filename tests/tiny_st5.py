"""A tiny sentence-t5-shaped model, built from a config in a few seconds: no download, no mock.

It has the parts of sentence-transformers/sentence-t5-base that decide how text is read and embedded:
- a SentencePiece-style Unigram tokenizer trained here with the `tokenizers` library, laid out as T5's
  (``<pad>`` = 0, ``</s>`` = 1, ``<unk>`` = 2, the trained pieces, then ``<extra_id_N>`` sentinels in
  reverse, all special pieces with score 0.0 as in the converted T5 vocabulary), wrapped as transformers'
  T5 tokenizer, which appends ``</s>`` to every text;
- a 2-layer `T5EncoderModel`;
- the real sentence-transformers modules Transformer → Pooling(mean) → Dense (no bias, identity) →
  Normalize, saved as a sentence-transformers directory with the Transformer at its root, like the hub's.

The corpus holds every character of the special-token strings (``<``, ``/``, ``>``, ``_``, digits) and words
like ``pad`` and ``extra``, so read literally they become ordinary pieces, never ``<unk>``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

#: What the tokenizer is trained on (repeated so the Unigram trainer keeps whole-word pieces).
ST5_CORPUS = [
    "Improve the text to make it more formal.", "Rewrite the story as a poem.",
    "Make the email sound like a pirate wrote it.", "Convert the recipe into a haiku.",
    "Rewrite the <b>story</b> as a song with a/b rhyme.", "Remove the </p> tags and <br> marks from the text.",
    "Shorten the memo and add a twist at the end.", "Write it as if the author is exhausted.",
    "Turn this into a news article for an extra edition.", "Pad the speech with unknown idioms.",
    "Use simpler words so a child understands the letter.", "Translate the tone into something cheerful.",
    "Name the fields like snake_case ids: user_id_0, item_id_1, order_id_23.",
] * 8
#: How many ``<extra_id_N>`` sentinels the tokenizer has (sentence-t5-base: 100).
EXTRA_IDS = 4
#: Pieces the Unigram trainer puts first, in T5's order (T5's tokenizer hard-codes ``<unk>`` as id 2).
T5_SPECIALS = ["<pad>", "</s>", "<unk>"]


def _st_modules():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer
    return Transformer, Pooling, Dense, Normalize


def train_t5_vocab(vocab_size: int = 160) -> list[tuple[str, float]]:
    """A Unigram vocabulary (piece, log-probability) in T5's layout, trained on `ST5_CORPUS`."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.Unigram())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)])
    tokenizer.train_from_iterator(ST5_CORPUS, trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=T5_SPECIALS, unk_token="<unk>", show_progress=False))
    vocab = [(piece, float(score)) for piece, score in json.loads(tokenizer.to_str())["model"]["vocab"]]
    if [piece for piece, _ in vocab[:3]] != T5_SPECIALS:
        raise AssertionError(f"the trainer did not put {T5_SPECIALS} first: {vocab[:3]}")
    return vocab + [(f"<extra_id_{i}>", 0.0) for i in range(EXTRA_IDS - 1, -1, -1)]


def build_tiny_st5(directory: Path, *, seed: int = 0) -> Path:
    """Build and save a tiny sentence-t5-shaped sentence-transformers model; returns its directory."""
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    tokenizer = T5Tokenizer(vocab=train_t5_vocab(), extra_ids=EXTRA_IDS)
    torch.manual_seed(seed)
    config = T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                      relative_attention_num_buckets=8, relative_attention_max_distance=32,
                      feed_forward_proj="relu", is_encoder_decoder=False, use_cache=False)
    hf_dir = directory / "hf"
    T5EncoderModel(config).save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    Transformer, Pooling, Dense, Normalize = _st_modules()
    transformer = Transformer(str(hf_dir), max_seq_length=256)
    pooling = Pooling(config.d_model, "mean")
    dense = Dense(config.d_model, 16, bias=False, activation_function=torch.nn.Identity())
    model = SentenceTransformer(modules=[transformer, pooling, dense, Normalize()], device="cpu")
    out = directory / "sentence-t5-tiny"
    model.save(str(out))
    return out
