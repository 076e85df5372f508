"""Embedders on real models: the packaged MiniLM and a tiny sentence model built in the test."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest

from harness.embedders import ST5_ENV, SentenceTransformerEmbedder, find_cached_model, make_embedder
from harness.embedding_cache import embed_texts
from harness.errors import ConfigError, ModelUnavailableError
from harness.store import Store


@pytest.fixture
def no_st5(monkeypatch, tmp_path):
    """A machine with nothing cached: empty HF cache, no PRH_ST5_PATH."""
    monkeypatch.delenv(ST5_ENV, raising=False)
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "SENTENCE_TRANSFORMERS_HOME"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))


def test_minilm_gives_unit_float32_vectors(minilm):
    vectors = minilm.embed(["Rewrite this as a poem.", "Make the email formal.", "Rewrite this as a poem."])
    assert vectors.dtype == np.float32 and vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-6)
    assert float(vectors[0] @ vectors[1]) < 0.99
    assert minilm.name == "minilm" and not minilm.comparable_with_kaggle and len(minilm.fingerprint) == 16


def test_missing_st5_fails_fast_naming_model_and_remedy(no_st5):
    started = time.perf_counter()
    with pytest.raises(ModelUnavailableError) as error:
        make_embedder("st5")
    assert time.perf_counter() - started < 2.0
    message = str(error.value)
    assert "sentence-transformers/sentence-t5-base" in message and ST5_ENV in message


def test_auto_falls_back_to_minilm_loudly(no_st5):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        embedder = make_embedder("auto")
    assert embedder.name == "minilm"
    assert any("NOT comparable with the Kaggle leaderboard" in str(w.message) for w in caught)


def test_st5_loads_from_a_local_directory_and_truncates_at_128_tokens(no_st5, monkeypatch, tiny_sentence_model_dir):
    monkeypatch.setenv(ST5_ENV, str(tiny_sentence_model_dir))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # auto must pick st5 silently when it is available
        embedder = make_embedder("auto")
    assert embedder.name == "st5" and embedder.comparable_with_kaggle
    assert embedder.load().max_seq_length == 128
    head = " ".join(["rewrite the text as a poem"] * 30)  # 150 words: past 128 tokens
    vectors = embedder.embed([head, head + " make the email more formal", "improve the text to this"])
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)  # the tail beyond 128 tokens is cut
    assert not np.allclose(vectors[0], vectors[2])


def test_st5_found_in_the_hf_cache_layout(no_st5, tmp_path, tiny_sentence_model_dir):
    import shutil

    repo = tmp_path / "hub" / "models--sentence-transformers--sentence-t5-base"
    shutil.copytree(tiny_sentence_model_dir, repo / "snapshots" / "abc123")
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    assert find_cached_model("sentence-transformers/sentence-t5-base", [tmp_path / "hub"]) == repo / "snapshots" / "abc123"


def test_fingerprint_tracks_model_files_and_settings(tmp_path, tiny_sentence_model_dir):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_sentence_model_dir, copy)
    a = SentenceTransformerEmbedder("x", tiny_sentence_model_dir)
    assert SentenceTransformerEmbedder("x", copy).fingerprint == a.fingerprint
    assert SentenceTransformerEmbedder("x", copy, max_seq_length=64).fingerprint != a.fingerprint
    (copy / "config.json").write_text((copy / "config.json").read_text().replace("32", "33", 1))
    assert SentenceTransformerEmbedder("x", copy).fingerprint != a.fingerprint


def test_unknown_embedder_spec():
    with pytest.raises(ConfigError, match="unknown embedder"):
        make_embedder("word2vec")


class CountingEmbedder:
    """A real embedder wrapped to count what reaches the model."""

    def __init__(self, inner):
        self.inner, self.name, self.fingerprint = inner, inner.name, inner.fingerprint
        self.comparable_with_kaggle = inner.comparable_with_kaggle
        self.embedded: list[str] = []

    def embed(self, texts):
        self.embedded.extend(texts)
        return self.inner.embed(texts)


def test_each_unique_text_is_embedded_once_ever(tmp_path, tiny_sentence_model_dir):
    counting = CountingEmbedder(SentenceTransformerEmbedder("tiny", tiny_sentence_model_dir))
    texts = ["improve the text to this"] * 50 + ["make the email more formal", "rewrite the text as a poem"]
    with Store(tmp_path / "s.sqlite") as store:
        first = embed_texts(texts, counting, store, chunk_size=1)
        assert sorted(counting.embedded) == sorted(set(texts))
        second = embed_texts(texts, counting, store)
        assert len(counting.embedded) == 3  # the rerun embedded nothing
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first[0], first[49])
    direct = counting.inner.embed(texts)
    np.testing.assert_allclose(first, direct, atol=1e-5)
