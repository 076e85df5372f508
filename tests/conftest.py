"""Shared test fixtures: real (tiny) models built locally, never mocks.

`tiny_sentence_model_dir` builds a genuine sentence-transformers model directory from a config: a
2-layer BERT with a word-level tokenizer trained here, mean pooling and normalisation. It exercises the
same loading code as sentence-t5-base without downloading anything.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]

CORPUS = [
    "rewrite the text as a poem", "make the email more formal", "turn this memo into a pirate shanty",
    "improve the text to this", "please improve this text using the writing style",
    "convert the recipe into a haiku", "the quick brown fox jumps over the lazy dog",
    "shorten the story and add a twist", "write it as if the author is exhausted",
] * 3


def _st_modules():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
        except ImportError:  # sentence-transformers < 6
            from sentence_transformers.models import Normalize, Pooling, Transformer
    return Transformer, Pooling, Normalize


def build_tiny_sentence_model(directory: Path, *, max_position_embeddings: int = 512) -> Path:
    """Build and save a tiny sentence-transformers model; returns its directory."""
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(CORPUS, trainers.WordLevelTrainer(special_tokens=specials))
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", tokenizer.token_to_id("[CLS]")),
                                                 ("[SEP]", tokenizer.token_to_id("[SEP]"))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    import torch

    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=max_position_embeddings)
    hf_dir = directory / "hf"
    BertModel(config).save_pretrained(hf_dir)
    fast.save_pretrained(hf_dir)
    Transformer, Pooling, Normalize = _st_modules()
    transformer = Transformer(str(hf_dir), max_seq_length=256)
    pooling = Pooling(transformer.get_embedding_dimension() if hasattr(transformer, "get_embedding_dimension")
                      else transformer.get_word_embedding_dimension(), "mean")
    model = SentenceTransformer(modules=[transformer, pooling, Normalize()], device="cpu")
    out = directory / "sentence-model"
    model.save(str(out))
    return out


@pytest.fixture(scope="session")
def tiny_sentence_model_dir(tmp_path_factory) -> Path:
    return build_tiny_sentence_model(tmp_path_factory.mktemp("tiny-st"))


@pytest.fixture(scope="session")
def minilm():
    """The packaged offline embedder, loaded once per test session (about 4 s)."""
    from harness.embedders import make_minilm

    embedder = make_minilm()
    embedder.load()
    return embedder


def import_heavy_modules_outside_pytester() -> None:
    """pytester's in-process runs drop modules first imported inside them from sys.modules; torch
    cannot be imported twice in one process (it crashes), and matplotlib classes re-imported that way
    stop matching their old instances, so tests using pytester import the heavy stack out here first."""
    import matplotlib.backends.backend_agg  # noqa: F401
    import matplotlib.figure  # noqa: F401
    import matplotlib.gridspec  # noqa: F401
    import sentence_transformers  # noqa: F401
    import torch  # noqa: F401
