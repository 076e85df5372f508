"""Embedders on real models: the packaged MiniLM and a tiny sentence model built in the test."""

from __future__ import annotations

import os
import shutil
import time
import warnings

import numpy as np
import pytest
from hf_cache_layout import put_in_hf_cache

from harness.embedders import (
    NOT_COMPARABLE_WARNING,
    ST5_ENV,
    ST5_REPO_ID,
    EmbedderChoice,
    SentenceTransformerEmbedder,
    choose_embedder,
    make_minilm,
)
from harness.embedding_cache import embed_texts
from harness.errors import ConfigError, ModelUnavailableError
from harness.hf_models import model_fingerprint
from harness.store import Store


@pytest.fixture
def no_st5(monkeypatch, tmp_path):
    """A machine with nothing cached: empty HF cache, no PRH_ST5_PATH."""
    monkeypatch.delenv(ST5_ENV, raising=False)
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "SENTENCE_TRANSFORMERS_HOME"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    return tmp_path


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
        choose_embedder("st5")
    assert time.perf_counter() - started < 2.0
    message = str(error.value)
    assert "sentence-transformers/sentence-t5-base" in message and ST5_ENV in message
    assert f"`hf download {ST5_REPO_ID}`" in message and "huggingface-cli" not in message


def test_auto_without_st5_returns_minilm_and_the_warning_as_data(no_st5):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # choosing must not emit a Python warning
        choice = choose_embedder("auto")
    assert isinstance(choice, EmbedderChoice)
    assert choice.embedder.name == "minilm" and not choice.embedder.comparable_with_kaggle
    assert choice.warnings == (NOT_COMPARABLE_WARNING,)
    with pytest.raises(AttributeError):
        choice.warnings = ()  # frozen: a choice is a value


def test_auto_says_why_a_configured_st5_path_was_not_used(no_st5, monkeypatch):
    (no_st5 / "not-st5").mkdir()
    monkeypatch.setenv(ST5_ENV, str(no_st5 / "not-st5"))
    choice = choose_embedder("auto")
    assert choice.embedder.name == "minilm" and choice.warnings[0] == NOT_COMPARABLE_WARNING
    assert len(choice.warnings) == 2 and "not-st5 has no modules.json" in choice.warnings[1]
    assert ST5_ENV in choice.warnings[1]


def test_explicit_choices_carry_no_warning(no_st5, tiny_sentence_model_dir):
    assert choose_embedder("minilm").warnings == ()
    choice = choose_embedder(f"path:{tiny_sentence_model_dir}")
    assert choice.warnings == () and choice.embedder.model_dir == tiny_sentence_model_dir


def test_st5_loads_from_a_local_directory_and_truncates_at_128_tokens(no_st5, monkeypatch, tiny_sentence_model_dir):
    monkeypatch.setenv(ST5_ENV, str(tiny_sentence_model_dir))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # auto must pick st5 silently when it is available
        choice = choose_embedder("auto")
    embedder = choice.embedder
    assert choice.warnings == () and embedder.name == "st5" and embedder.comparable_with_kaggle
    assert embedder.load().max_seq_length == 128
    head = " ".join(["rewrite the text as a poem"] * 30)  # 150 words: past 128 tokens
    vectors = embedder.embed([head, head + " make the email more formal", "improve the text to this"])
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)  # the tail beyond 128 tokens is cut
    assert not np.allclose(vectors[0], vectors[2])


def test_st5_found_in_the_hf_cache_layout(no_st5, monkeypatch, tiny_sentence_model_dir):
    hub = no_st5 / "hub"
    snapshot = put_in_hf_cache(hub, ST5_REPO_ID, tiny_sentence_model_dir, "abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    choice = choose_embedder("auto")
    assert choice.warnings == () and choice.embedder.name == "st5" and choice.embedder.model_dir == snapshot
    # The same model as a plain directory: the same fingerprint, so the same cached embeddings.
    monkeypatch.setenv(ST5_ENV, str(tiny_sentence_model_dir))
    assert choose_embedder("st5").embedder.fingerprint == choice.embedder.fingerprint


def test_loading_an_embedder_leaves_the_environment_alone(monkeypatch, tiny_sentence_model_dir):
    """Regression: loading used to set HF_HUB_OFFLINE=1 for the whole process, so a hub download
    elsewhere in the same process was refused. Local directories are loaded with local_files_only."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    before = dict(os.environ)
    embedder = SentenceTransformerEmbedder("tiny", tiny_sentence_model_dir, device="cpu")
    assert embedder.embed(["rewrite the text as a poem"]).shape[0] == 1
    assert dict(os.environ) == before


def test_fingerprint_tracks_model_files_and_settings(tmp_path, tiny_sentence_model_dir):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_sentence_model_dir, copy)
    a = SentenceTransformerEmbedder("x", tiny_sentence_model_dir)
    assert SentenceTransformerEmbedder("x", copy).fingerprint == a.fingerprint
    assert SentenceTransformerEmbedder("x", copy, max_seq_length=64).fingerprint != a.fingerprint
    (copy / "config.json").write_text((copy / "config.json").read_text().replace("32", "33", 1))
    assert SentenceTransformerEmbedder("x", copy).fingerprint != a.fingerprint
    assert a.fingerprint == model_fingerprint(tiny_sentence_model_dir, {"max_seq_length": None})


def test_the_packaged_minilm_keeps_the_fingerprint_its_baselines_were_scored_with():
    """baselines/minilm/*.json name this fingerprint: a change would mark every stored baseline stale."""
    import json
    from pathlib import Path

    stored = {json.loads(p.read_text())["embedder_fingerprint"]
              for p in (Path(__file__).resolve().parents[1] / "baselines" / "minilm").glob("*.json")}
    assert stored == {make_minilm().fingerprint}


def test_unknown_embedder_spec():
    with pytest.raises(ConfigError, match="unknown embedder"):
        choose_embedder("word2vec")


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
        first = embed_texts(texts, counting, store)
        assert sorted(counting.embedded) == sorted(set(texts))
        second = embed_texts(texts, counting, store)
        assert len(counting.embedded) == 3  # the rerun embedded nothing
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first[0], first[49])
    direct = counting.inner.embed(texts)
    np.testing.assert_allclose(first, direct, atol=1e-5)
