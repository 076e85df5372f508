"""Kaggle-scorer parity of the st5 embedder, on a tiny sentence-t5-shaped model built here (tests/tiny_st5.py).

Kaggle's TF-Hub sentence-t5 read ``</s>``, ``<pad>``, ``<unk>`` and ``<extra_id_N>`` in a prediction as
ordinary characters; the Hugging Face port turns them into special tokens. The st5 embedder must read them
as text, embed every other text exactly as the plain model does, still cut at 128 tokens, and every Result
must list the rows the scorer would read differently.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiny_st5 import EXTRA_IDS, build_tiny_st5

from harness.candidates import ConstantCandidate, PredictionsFileCandidate
from harness.data import Sample, Suite
from harness.embedders import (
    LITERAL_SPECIAL_TOKENS,
    SPECIAL_TOKEN_STRINGS,
    ST5_ENV,
    ST5_MAX_TOKENS,
    SentenceTransformerEmbedder,
    choose_embedder,
    make_minilm,
    scorer_parity_of,
)
from harness.evaluation import BootstrapSettings, evaluate
from harness.run import json_safe, run_json
from harness.verdict import ScorerParity
from harness.workspace import Workspace

pytestmark = pytest.mark.slow

FAST = BootstrapSettings(n_resamples=500)
SPECIAL_STRINGS = ["</s>", "<pad>", "<unk>", *(f"<extra_id_{i}>" for i in range(EXTRA_IDS))]
PLAIN_TEXTS = ["Improve the text.", "Rewrite the story as a poem.", "zz€ ü unknown chars", "Make the email formal."]


@pytest.fixture(scope="session")
def tiny_st5_dir(tmp_path_factory):
    return build_tiny_st5(tmp_path_factory.mktemp("tiny-st5"))


@pytest.fixture
def st5(monkeypatch, tiny_st5_dir):
    """The st5 embedder as the harness builds it: `choose_embedder("st5")` from PRH_ST5_PATH."""
    monkeypatch.setenv(ST5_ENV, str(tiny_st5_dir))
    return choose_embedder("st5").embedder


@pytest.fixture(scope="session")
def plain(tiny_st5_dir):
    """The same directory read by sentence-transformers as it is (the Hugging Face tokenization)."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_st5_dir), device="cpu", local_files_only=True)
    model.max_seq_length = ST5_MAX_TOKENS
    return model


@pytest.fixture(scope="session")
def vocab(tiny_st5_dir):
    """The saved Unigram vocabulary: (piece, score) by id, read from the file, not from any tokenizer."""
    data = json.loads((tiny_st5_dir / "tokenizer.json").read_text())
    return [(piece, score) for piece, score in data["model"]["vocab"]]


def plain_encode(model, texts):
    return model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)


def ids_of(tokenizer, text):
    return tokenizer(text)["input_ids"]


# -- (a) special-token strings are read as text ---------------------------------------------------------------------
def test_eos_string_is_read_as_its_literal_pieces(st5, plain, vocab):
    text = "Improve the text.</s>"
    literal = ids_of(st5.tokenizer(), text)
    default = ids_of(plain.tokenizer, text)
    eos = plain.tokenizer.eos_token_id
    # The HF default turns the string into a second end-of-sequence token; st5 reads it as characters.
    assert default == ids_of(plain.tokenizer, "Improve the text.")[:-1] + [eos, eos]
    assert literal.count(eos) == 1 and literal[-1] == eos  # only the appended EOS, unchanged
    head = ids_of(st5.tokenizer(), "Improve the text.")[:-1]
    assert literal[:len(head)] == head
    tail = [vocab[i][0] for i in literal[len(head):-1]]
    assert "".join(tail) == "</s>" and len(tail) > 1
    special_ids = {i for i, (piece, _) in enumerate(vocab) if piece in SPECIAL_STRINGS}
    assert not special_ids & set(literal[:-1])
    vectors = st5.embed([text, "Improve the text."])
    assert not np.allclose(vectors[0], plain_encode(plain, [text])[0], atol=1e-4)
    assert not np.allclose(vectors[0], vectors[1], atol=1e-4)  # the string counts as text, not as a no-op


def test_every_special_string_is_read_as_text_through_the_loaded_model(st5, vocab):
    model = st5.load()  # the tokenizer the embeddings are computed with, not only the counting one
    special_ids = {i for i, (piece, _) in enumerate(vocab) if piece in SPECIAL_STRINGS}
    for special in SPECIAL_STRINGS:
        ids = model.preprocess([f"a {special} b{special}"])["input_ids"][0].tolist()
        assert not special_ids & set(ids[:-1]), special
        assert ids[-1] == model.tokenizer.eos_token_id


def _best_score(word: str, pieces: dict[str, float]) -> float:
    """The best total score of any segmentation of `word` into `pieces` (SentencePiece's Viterbi)."""
    best = [0.0] + [-math.inf] * len(word)
    for end in range(1, len(word) + 1):
        for start in range(end):
            score = pieces.get(word[start:end])
            if score is not None and best[start] > -math.inf:
                best[end] = max(best[end], best[start] + score)
    return best[-1]


def _chunks(vocab):
    letters = sorted({p for p, _ in vocab if len(p) == 1 and p != "▁" and p not in SPECIAL_STRINGS})
    return st.lists(st.sampled_from(SPECIAL_STRINGS) | st.sampled_from(letters) | st.sampled_from(
        ["the", "text", "story", "pad", "extra", "id", " ", "<", "/", ">", "s"]), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_literal_tokens_are_sentencepiece_best_segmentation_over_normal_pieces(st5, vocab, data):
    """What a plain SentencePiece does with control symbols in text: the best-scoring segmentation that
    uses ordinary pieces only. Checked against a Viterbi written here, word by word."""
    text = "".join(data.draw(_chunks(vocab)))
    tokenizer = st5.tokenizer()
    backend = tokenizer.backend_tokenizer
    normal = {p: s for p, s in vocab if p not in SPECIAL_STRINGS}
    words = [w for w, _ in backend.pre_tokenizer.pre_tokenize_str(text)]
    expected_ids = []
    for word in words:
        ids = [token.id for token in backend.model.tokenize(word)]
        pieces = [vocab[i][0] for i in ids]
        assert "".join(pieces) == word and all(p in normal for p in pieces)
        assert sum(vocab[i][1] for i in ids) == pytest.approx(_best_score(word, normal), abs=1e-9)
        expected_ids += ids
    # The whole pipeline adds nothing of its own but the end-of-sequence token.
    assert ids_of(tokenizer, text) == expected_ids + [tokenizer.eos_token_id]


# -- (b) text without special strings: exactly as before ------------------------------------------------------------
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet="abcdeiklmnoprstuvwxy .,!?'-€üß<>/\n\t", max_size=80))
def test_text_without_special_strings_tokenizes_exactly_as_the_plain_model(st5, plain, text):
    if SPECIAL_TOKEN_STRINGS.search(text):
        return
    assert ids_of(st5.tokenizer(), text) == ids_of(plain.tokenizer, text)


def test_text_without_special_strings_embeds_bit_identically(st5, plain):
    texts = [*PLAIN_TEXTS, "a <b>bold</b> a/b s>t </p> <extra> <pa d>"]
    np.testing.assert_array_equal(st5.embed(texts), plain_encode(plain, texts))


def test_fingerprint_names_the_tokenization_and_minilm_keeps_its_own(st5, tiny_st5_dir):
    as_is = SentenceTransformerEmbedder("st5", tiny_st5_dir, max_seq_length=ST5_MAX_TOKENS)
    assert st5.tokenization == LITERAL_SPECIAL_TOKENS and st5.fingerprint != as_is.fingerprint
    assert make_minilm().fingerprint == "8bc8eaf327f6715c"  # the shipped MiniLM baselines name it


# -- (c) 128 tokens ----------------------------------------------------------------------------------------------------
def test_truncation_at_128_tokens_still_applies(st5):
    unit = "Rewrite the story as a poem. "
    head = unit * 12
    assert st5.count_tokens([head])[0] > ST5_MAX_TOKENS + 20
    model = st5.load()
    ids = model.preprocess([head + "</s> <pad>"])["input_ids"][0].tolist()
    assert len(ids) == ST5_MAX_TOKENS and ids[-1] == model.tokenizer.eos_token_id
    vectors = st5.embed([head, head + "</s> <extra_id_0> more text"])
    np.testing.assert_array_equal(vectors[0], vectors[1])  # what lies past 128 tokens is never read


def test_over_limit_means_exactly_what_the_embedder_cuts(st5):
    """Over the limit = more than 128 tokens counted with the end-of-sequence token: the first such text
    embeds as the same text without its last word, because the cut removes exactly that piece."""
    count = st5.count_tokens
    words = ["a"] * 200
    n = next(k for k in range(1, 200) if count([" ".join(words[:k])])[0] > ST5_MAX_TOKENS)
    at_limit, over = " ".join(words[:n - 1]), " ".join(words[:n])
    assert count([at_limit, over]) == [ST5_MAX_TOKENS, ST5_MAX_TOKENS + 1]
    parity = st5.scorer_parity(["at", "over"], [at_limit, over])
    assert parity.over_limit_rows == ("over",) and parity.max_tokens == ST5_MAX_TOKENS
    first, second = st5.embed([at_limit]), st5.embed([over])
    np.testing.assert_array_equal(first, second)


# -- (d) scorer parity in every Result -------------------------------------------------------------------------------
ROWS = {
    "plain": "Improve the text.",
    "eos": "Improve the text.</s>",
    "long": "Rewrite the story as a poem. " * 12,
    "sentinel": "<extra_id_1> story",
    "long-pad": "Make the email formal. <pad> " * 12,
    "near-miss": "a </ s> <padding> <extra_id_> < unk>",
}


def _suite_file(tmp_path):
    path = tmp_path / "rows.csv"
    lines = ["id,rewrite_prompt,prediction"] + [f'{i},Make it a poem.,"{p}"' for i, p in ROWS.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_scorer_parity_lists_the_rows_end_to_end_through_the_workspace(st5, tmp_path, monkeypatch):
    monkeypatch.setenv("PRH_STORE", str(tmp_path / "store.sqlite"))
    path = _suite_file(tmp_path)
    with Workspace.from_dir(tmp_path) as workspace:
        suite = workspace.suite(str(path))
        candidate = PredictionsFileCandidate(path, id_column="id", prediction_column="prediction")
        scored = workspace.score(candidate, suite, embedder="st5", bootstrap=FAST)
    parity = scored.result.scorer_parity
    assert set(parity.special_token_rows) == {"eos", "sentinel", "long-pad"}
    assert set(parity.over_limit_rows) == {"long", "long-pad"}
    assert parity.max_tokens == ST5_MAX_TOKENS and "st5" in parity.tokenizer
    assert scored.record.scorer_parity == parity  # the history record carries it
    assert run_json(scored.record, scored.result)["scorer_parity"] == json_safe(parity.to_dict())


def test_evaluate_attaches_scorer_parity_and_a_clean_result_says_clean(st5):
    suite = Suite("toy", tuple(Sample(f"r{i}", "o", "r", p) for i, p in enumerate(["Make it a poem.", "Formal."])))
    clean = evaluate(ConstantCandidate("c", "Improve the text."), suite, st5, bootstrap=FAST)
    assert clean.scorer_parity == ScorerParity((), (), ST5_MAX_TOKENS, clean.scorer_parity.tokenizer)
    assert clean.scorer_parity.clean
    dirty = evaluate(ConstantCandidate("d", "Improve the text.</s>"), suite, st5, bootstrap=FAST)
    assert dirty.scorer_parity.special_token_rows == ("r0", "r1") and not dirty.scorer_parity.clean


def test_other_embedders_find_special_strings_and_count_only_with_a_t5_tokenizer(monkeypatch, tmp_path,
                                                                                  tiny_st5_dir):
    ids, predictions = list(ROWS), list(ROWS.values())
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "SENTENCE_TRANSFORMERS_HOME", ST5_ENV):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    without = make_minilm().scorer_parity(ids, predictions)
    assert set(without.special_token_rows) == {"eos", "sentinel", "long-pad"}
    assert without.over_limit_rows == () and without.max_tokens is None
    assert without.tokenizer.startswith("none:")
    monkeypatch.setenv(ST5_ENV, str(tiny_st5_dir))
    with_t5 = make_minilm().scorer_parity(ids, predictions)
    assert set(with_t5.over_limit_rows) == {"long", "long-pad"} and with_t5.max_tokens == ST5_MAX_TOKENS
    assert str(tiny_st5_dir) in with_t5.tokenizer


def test_an_embedder_without_the_method_still_reports_special_strings():
    class Bare:
        name, fingerprint, comparable_with_kaggle = "bare", "b", False

    parity = scorer_parity_of(Bare(), ["x", "y"], ["ok", "<unk> here"])
    assert parity.special_token_rows == ("y",) and parity.over_limit_rows == () and parity.max_tokens is None
    assert "bare" in parity.tokenizer


# -- (e) the command line --------------------------------------------------------------------------------------------
def test_prh_score_json_prints_scorer_parity(st5, tmp_path, monkeypatch, capsys):
    from harness.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PRH_STORE", str(tmp_path / "store.sqlite"))
    path = _suite_file(tmp_path)
    code = main(["score", "--embedder", "st5", "--resamples", "500", "--json", "--suite", str(path),
                 "--predictions", str(path), "--prediction-column", "prediction"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert set(data["scorer_parity"]["special_token_rows"]) == {"eos", "sentinel", "long-pad"}
    assert set(data["scorer_parity"]["over_limit_rows"]) == {"long", "long-pad"}
    assert data["scorer_parity"]["max_tokens"] == ST5_MAX_TOKENS
