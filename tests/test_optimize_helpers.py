"""The shared optimize test helpers (tests/optimize_helpers.py) do what the tests that use them assume."""

from __future__ import annotations

import numpy as np
from optimize_helpers import PROMPT_FAMILIES, BagOfWordsEmbedder, family_suite, word_tokenizer


def test_bag_of_words_embedder_is_deterministic_and_unit_norm():
    a, b = BagOfWordsEmbedder(), BagOfWordsEmbedder()
    va = a.embed(["Make the text formal.", "x"])
    assert np.allclose(va, b.embed(["Make the text formal.", "x"]))
    assert np.allclose(np.linalg.norm(va, axis=1), 1.0, atol=1e-6)
    assert a.embedded == ["Make the text formal.", "x"]


def test_family_suite_shape():
    suite = family_suite(repeats=2, groups=True)
    assert len(suite) == 2 * len(PROMPT_FAMILIES) and len(set(suite.ids)) == len(suite) and suite.has_groups


def test_word_tokenizer_round_trips_the_family_prompts():
    tokenizer = word_tokenizer()
    ids = tokenizer("Rewrite the text as a poem.", add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == "rewrite the text as a poem."
    assert tokenizer("x y")["input_ids"][0] == tokenizer.cls_token_id
