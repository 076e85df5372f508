"""Token search: which tokens are moves (special tokens out, round-trip survivors in), the train-only prior,
the length cap, seeded reproducibility, and the gradient guide on a real (tiny) sentence model."""

from __future__ import annotations

import numpy as np
import pytest
from optimize_helpers import PROMPT_FAMILIES, BagOfWordsEmbedder, family_suite, word_tokenizer

from harness.errors import ConfigError
from harness.optimize import MeanScsObjective, SearchSettings, search_mean_prompt
from harness.optimize.tokens import TokenSpace, build_token_space, usable_tokens

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def wordpiece_tokenizer():
    """A real BERT-style WordPiece tokenizer: lower-casing, `##` continuation pieces, an `[unused0]` slot."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = ["[unused0]", "rewrite", "the", "text", "as", "a", "poem", "make", "it", "formal", "writ", "##ing",
             "##s", ".", ",", "!", "w", "r", "i", "t", "e", "##w", "##r", "##i", "##t", "##e"]
    vocab = {token: index for index, token in enumerate(SPECIALS + words)}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                             special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def sentencepiece_tokenizer():
    """A real T5-style (SentencePiece unigram, "▁" word starts) tokenizer with `</s>` and a sentinel."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁the", -1.0), ("▁a", -1.5), ("▁text", -2.0),
              ("▁poem", -2.5), ("▁rewrite", -2.5), (".", -2.0), ("▁", -3.0), ("ing", -3.0), ("▁writ", -3.5)]
    pieces += [(c, -4.0) for c in "texharwingpom"] + [("<extra_id_0>", 0.0)]
    tokenizer = Tokenizer(models.Unigram(pieces, unk_id=2, byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>", additional_special_tokens=["<extra_id_0>"])


def assert_round_trips(tokenizer, usable):
    for token_id, text in zip(usable.ids, usable.texts):
        assert tokenizer.decode([token_id]) == text
        alone = tokenizer(text, add_special_tokens=False)["input_ids"]
        if alone != [token_id]:  # only punctuation may need a word before it
            assert not any(c.isalnum() for c in text), text


def test_wordpiece_specials_and_continuation_pieces_are_not_moves():
    tokenizer = wordpiece_tokenizer()
    usable = usable_tokens(tokenizer)
    tokens = set(tokenizer.convert_ids_to_tokens(list(usable.ids)))
    assert not tokens & set(SPECIALS) and "[unused0]" not in tokens
    assert not any(t.startswith("##") for t in tokens)
    assert {"rewrite", "the", "poem", "writ", ".", ",", "!"} <= tokens
    assert usable.excluded_special == 6  # the five specials and the unused slot
    assert len(usable.ids) + usable.excluded_special + usable.excluded_round_trip == len(tokenizer.get_vocab())
    assert_round_trips(tokenizer, usable)


def test_sentencepiece_drops_eos_sentinels_and_pieces_that_do_not_start_a_word():
    tokenizer = sentencepiece_tokenizer()
    usable = usable_tokens(tokenizer)
    tokens = tokenizer.convert_ids_to_tokens(list(usable.ids))
    for excluded in ("</s>", "<pad>", "<unk>", "<extra_id_0>", "ing", "▁", "x"):
        assert excluded not in tokens
    assert {"▁the", "▁rewrite", "▁writ"} <= set(tokens)
    assert "." in tokens  # "." alone encodes to "▁ ." but after a word it round-trips: kept
    assert_round_trips(tokenizer, usable)


@pytest.mark.slow
def test_minilm_vocabulary_filter():
    from transformers import AutoTokenizer

    from harness.embedders import minilm_model_dir

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_model_dir()), local_files_only=True)
    usable = usable_tokens(tokenizer)
    tokens = tokenizer.convert_ids_to_tokens(list(usable.ids))
    assert 20_000 < len(tokens) < 30_522
    assert not set(tokens) & {"[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"}
    assert not any(t.startswith(("##", "[unused")) for t in tokens)
    sample = np.random.default_rng(0).choice(len(usable.ids), size=300, replace=False)
    for i in sample:
        assert tokenizer(usable.texts[i], add_special_tokens=False)["input_ids"] == [usable.ids[i]]


def test_prior_comes_from_the_train_prompts_with_an_exploration_share():
    tokenizer = word_tokenizer()
    train = ["Rewrite the text as a poem.", "Rewrite the story as a haiku."]
    space = build_token_space(tokenizer, train, explore_share=0.2)
    weights = {tokenizer.decode(list(entry)): p for entry, p in zip(space.entries, space.probabilities)}
    in_train = {"rewrite", "the", "text", "as", "a", "poem", "story", "haiku", "."}
    assert sum(weights[w] for w in in_train) == pytest.approx(0.8)
    assert weights["rewrite"] / weights["poem"] == pytest.approx(np.sqrt(2))  # count ** 0.5
    others = [p for w, p in weights.items() if w not in in_train]
    assert others and np.allclose(others, 0.2 / len(others))
    only_train = build_token_space(tokenizer, train, explore_share=0.0)
    assert {tokenizer.decode(list(e)) for e in only_train.entries} == in_train
    assert space.n_from_train == only_train.n_from_train == len(in_train)
    with pytest.raises(ConfigError, match="explore_share"):
        build_token_space(tokenizer, train, explore_share=1.5)


def test_extra_tokens_move_as_one_entry_and_special_ones_are_refused():
    tokenizer = wordpiece_tokenizer()
    space = build_token_space(tokenizer, ["Rewrite the text."], ["writes"], explore_share=0.0)
    pieces = tuple(tokenizer("writes", add_special_tokens=False)["input_ids"])
    assert len(pieces) > 1 and pieces in space.entries
    with pytest.raises(ConfigError, match="special token"):
        build_token_space(tokenizer, ["Rewrite the text."], ["[SEP]"])


def test_token_moves_decode_and_respect_the_length_cap():
    tokenizer = word_tokenizer()
    space = build_token_space(tokenizer, PROMPT_FAMILIES, explore_share=0.0, max_tokens=7)
    units = space.units("Make the text more formal.")
    assert len(units) == 6 and space.special_count() == 2
    assert space.join(units[:5]) == "make the text more formal"
    assert space.join(units) is None  # 6 + [CLS] + [SEP] > 7
    assert space.join([]) is None


def token_search(seed=0, steps=10, beam=3, max_tokens=None, embedder=None, explore_share=0.1):
    suite = family_suite()
    objective = MeanScsObjective(suite.prompts, embedder or BagOfWordsEmbedder(), max_tokens=max_tokens)
    space = build_token_space(word_tokenizer(), suite.prompts, explore_share=explore_share, max_tokens=max_tokens)
    settings = SearchSettings(beam_width=beam, candidates_per_step=32, budget_seconds=None, max_steps=steps, seed=seed)
    return search_mean_prompt(objective, space, "Hello there.", settings), objective, space


def test_token_search_climbs_and_the_reported_string_scores_what_was_measured():
    result, objective, space = token_search()
    best = [s.best_train_score for s in result.steps]
    assert all(b >= a for a, b in zip(best, best[1:])) and result.train_score > result.start_train_score + 0.05
    fresh = MeanScsObjective(family_suite().prompts, BagOfWordsEmbedder())
    assert fresh.score([result.prompt])[0] == pytest.approx(result.train_score)
    # the prompt is a decoded token sequence: encoding and decoding it again gives it back
    assert space.tokenizer.decode(space.units(result.prompt)) == result.prompt
    assert set(space.default_moves) == {"append", "insert", "replace", "delete"}


def test_token_search_is_deterministic_with_a_seed():
    first, _, _ = token_search(seed=4)
    second, _, _ = token_search(seed=4)
    other, _, _ = token_search(seed=5)
    assert [s.best_prompt for s in first.steps] == [s.best_prompt for s in second.steps]
    assert [s.best_train_score for s in first.steps] == [s.best_train_score for s in second.steps]
    assert [s.best_prompt for s in other.steps] != [s.best_prompt for s in first.steps]


def test_token_search_scores_each_step_in_one_batch_and_keeps_under_the_cap():
    embedder = BagOfWordsEmbedder()
    result, objective, space = token_search(embedder=embedder, max_tokens=6, steps=6)
    assert len(embedder.calls) == 2 + 6  # truths, start, one encode call per step
    assert all(len(call) > 1 for call in embedder.calls[2:])
    tokenizer = space.tokenizer
    assert all(len(tokenizer(s.best_prompt)["input_ids"]) <= 6 for s in result.steps)
    assert all(len(tokenizer(text)["input_ids"]) <= 6 for call in embedder.calls[1:] for text in call)


def test_token_space_is_a_search_space_with_a_name():
    space = build_token_space(word_tokenizer(), PROMPT_FAMILIES)
    assert isinstance(space, TokenSpace) and space.name == "tokens" and len(space) == len(space.probabilities)
    assert np.isclose(space.probabilities.sum(), 1.0)
    info = space.describe()
    assert info["tokens_usable"] + info["tokens_excluded_special"] + info["tokens_excluded_round_trip"] == \
        len(space.tokenizer.get_vocab())


@pytest.mark.slow
def test_gradient_guide_on_a_real_sentence_model(tiny_sentence_model_dir):
    import torch

    from harness.embedders import SentenceTransformerEmbedder
    from harness.optimize.guide import GradientGuide

    embedder = SentenceTransformerEmbedder("tiny", tiny_sentence_model_dir, device="cpu")
    model = embedder.load()
    truths = ["rewrite the text as a poem", "make the email more formal", "convert the recipe into a haiku"] * 2
    objective = MeanScsObjective(truths, embedder)
    space = build_token_space(model.tokenizer, truths, explore_share=0.5)
    guide = GradientGuide(model, space, objective.torch_values, top_k=4)
    assert GradientGuide.available(model)
    units = space.units("improve the text to this")
    rng = np.random.default_rng(0)
    guide.prepare([units], rng)
    slots = guide.slots(units, rng)
    assert {("replace", p) for p in range(len(units))} | {("append", len(units))} <= set(slots)
    assert all(len(choices) == 4 for choices in slots.values())
    assert all(p.grad is None for p in model.parameters())  # input gradients only, nothing left behind
    # the ranking is the linearised gain: recompute one slot by hand
    embeddings = model[0].auto_model.get_input_embeddings().weight.detach()
    ids = model.tokenizer("improve the text to this")["input_ids"]
    inputs = embeddings[torch.tensor([ids])].clone().requires_grad_(True)
    out = model({"inputs_embeds": inputs, "attention_mask": torch.ones(1, len(ids), dtype=torch.long)})
    (gradient,) = torch.autograd.grad(objective.torch_values(out["sentence_embedding"]).sum(), [inputs])
    gains = gradient[0, 1] @ embeddings[guide.token_ids].T  # position 0 of the text, after [CLS]
    assert set(guide.entry_index[torch.topk(gains, 4).indices.numpy()]) == set(slots[("replace", 0)])
    # the search with the guide climbs and is reproducible
    settings = SearchSettings(beam_width=2, candidates_per_step=12, budget_seconds=None, max_steps=3, seed=1)
    runs = [search_mean_prompt(MeanScsObjective(truths, embedder), space, "improve the text to this", settings,
                               guide=GradientGuide(model, space, objective.torch_values, top_k=4))
            for _ in range(2)]
    assert runs[0].prompt == runs[1].prompt and runs[0].train_score > runs[0].start_train_score
