"""Mean-prompt search: the objective is the metric, the search climbs monotonically, is seeded, batches,
respects the length cap, and never sees the held-out split."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from optimize_helpers import BagOfWordsEmbedder, RecordingSamples, family_suite, word_tokenizer

from harness.candidates.constant import ConstantCandidate
from harness.data import Suite
from harness.errors import ConfigError, DataError
from harness.evaluation import BootstrapSettings, evaluate
from harness.optimize import (
    MeanScsObjective,
    SearchSettings,
    build_vocabulary,
    optimize_mean_prompt,
    read_token_list,
    search_mean_prompt,
)
from harness.optimize.objective import REJECTED, DirectionObjective
from harness.optimize.oracle import oracle_bound
from harness.splits import SuiteSplit, split_suite
from harness.store import Store
from harness.tomlfile import tomllib

FAST_CI = BootstrapSettings(n_resamples=500, method="percentile")


def small_search(seed: int = 0, steps: int = 12, beam: int = 3, embedder=None, start: str = "Hello there."):
    suite = family_suite()
    objective = MeanScsObjective(suite.prompts, embedder or BagOfWordsEmbedder())
    vocabulary = build_vocabulary(suite.prompts)
    settings = SearchSettings(beam_width=beam, candidates_per_step=32, budget_seconds=None, max_steps=steps, seed=seed)
    return search_mean_prompt(objective, vocabulary, start, settings), objective


def test_objective_equals_the_metric_through_evaluate(tmp_path):
    suite = family_suite()
    embedder = BagOfWordsEmbedder()
    with Store(tmp_path / "store.sqlite") as store:
        objective = MeanScsObjective(suite.prompts, embedder, store)
        prompts = ["Rewrite the text as a poem.", "Make it formal please.", "Hello."]
        scores = objective.score(prompts)
        for prompt, score in zip(prompts, scores):
            result = evaluate(ConstantCandidate("c", prompt), suite, embedder, store=store, bootstrap=FAST_CI)
            assert score == pytest.approx(result.mean, abs=1e-6)


@pytest.mark.slow
def test_objective_equals_the_metric_with_minilm(minilm, tmp_path):
    suite = family_suite(repeats=1)
    with Store(tmp_path / "store.sqlite") as store:
        objective = MeanScsObjective(suite.prompts, minilm, store, max_tokens=128)
        score = objective.score(["Improve the text to this."])[0]
        result = evaluate(ConstantCandidate("c", "Improve the text to this."), suite, minilm, store=store,
                          bootstrap=FAST_CI)
        assert score == pytest.approx(result.mean, abs=1e-5)
        # the cap counts the embedder's own tokens: a 200-word prompt is rejected, never scored
        assert objective.score(["word " * 200])[0] == REJECTED and objective.rejected == 1


def test_search_improves_the_train_objective_monotonically():
    result, objective = small_search()
    best = [step.best_train_score for step in result.steps]
    assert all(b >= a for a, b in zip(best, best[1:]))
    assert result.train_score > result.start_train_score + 0.05
    assert result.train_score == pytest.approx(objective.score([result.prompt])[0])
    assert result.stop_reason == "max_steps" and len(result.steps) == 13
    assert [step.improved for step in result.steps[1:]] == [b > a for a, b in zip(best, best[1:])]


def test_greedy_is_beam_width_one_and_also_monotone():
    result, _ = small_search(beam=1)
    best = [step.best_train_score for step in result.steps]
    assert all(b >= a for a, b in zip(best, best[1:])) and result.train_score > result.start_train_score
    assert len(result.beam) == 1


def test_search_is_deterministic_with_a_seed():
    first, _ = small_search(seed=7)
    second, _ = small_search(seed=7)
    assert [s.best_prompt for s in first.steps] == [s.best_prompt for s in second.steps]
    assert [s.best_train_score for s in first.steps] == [s.best_train_score for s in second.steps]
    other, _ = small_search(seed=8)
    assert [s.best_prompt for s in other.steps] != [s.best_prompt for s in first.steps]


def test_candidates_are_embedded_in_batches_once_each(tmp_path):
    suite = family_suite()
    embedder = BagOfWordsEmbedder()
    with Store(tmp_path / "store.sqlite") as store:
        objective = MeanScsObjective(suite.prompts, embedder, store)
        settings = SearchSettings(beam_width=2, candidates_per_step=40, budget_seconds=None, max_steps=5)
        result = search_mean_prompt(objective, build_vocabulary(suite.prompts), "Hello there.", settings)
        # one embed call for the truths, one for the start, one per step: batches, not one call per string
        assert len(embedder.calls) == 2 + 5
        assert all(len(call) > 1 for call in embedder.calls[2:])
        assert len(embedder.embedded) == len(set(embedder.embedded))  # no string embedded twice
        assert result.evaluations == sum(len(c) for c in embedder.calls[1:])
        # a second search on the same store reads every vector back: nothing is embedded again
        again = BagOfWordsEmbedder()
        objective2 = MeanScsObjective(suite.prompts, again, store)
        repeat = search_mean_prompt(objective2, build_vocabulary(suite.prompts), "Hello there.", settings)
        assert repeat.prompt == result.prompt and again.calls == []


def test_evaluation_budget_is_exact_and_length_cap_rejects():
    suite = family_suite()
    objective = MeanScsObjective(suite.prompts, BagOfWordsEmbedder(), max_tokens=6)
    settings = SearchSettings(candidates_per_step=50, budget_seconds=None, max_evaluations=137, moves=("insert",))
    result = search_mean_prompt(objective, build_vocabulary(suite.prompts), "Make it", settings)
    assert result.evaluations <= 137 and result.stop_reason in ("max_evaluations", "exhausted")
    assert all(len(step.best_prompt.split()) + 2 <= 6 for step in result.steps)
    assert objective.rejected > 0
    uncapped = MeanScsObjective(suite.prompts, BagOfWordsEmbedder(), max_tokens=None)
    exact = search_mean_prompt(uncapped, build_vocabulary(suite.prompts), "Make it", settings)
    assert exact.evaluations == 137 and exact.stop_reason == "max_evaluations"
    with pytest.raises(ConfigError, match="length cap"):
        search_mean_prompt(objective, build_vocabulary(suite.prompts), "one two three four five", settings)
    with pytest.raises(ConfigError, match="empty"):
        search_mean_prompt(objective, build_vocabulary(suite.prompts), "   ", settings)


def test_time_budget_stops_between_steps():
    suite = family_suite()
    ticks = iter(range(1000))
    objective = MeanScsObjective(suite.prompts, BagOfWordsEmbedder())
    settings = SearchSettings(candidates_per_step=8, budget_seconds=5)
    result = search_mean_prompt(objective, build_vocabulary(suite.prompts), "Hello.", settings,
                                clock=lambda: float(next(ticks)))
    assert result.stop_reason == "budget_seconds" and 1 <= result.steps[-1].step <= 5


def bare_words(text: str) -> set[str]:
    return {w.strip(".,!?").lower() for w in text.split()} - {""}


@pytest.mark.parametrize("space", ["words", "tokens"])
def test_the_search_never_sees_the_heldout_split(tmp_path, space):
    suite = family_suite(repeats=2)
    base = split_suite(suite, (0.6, 0.0, 0.4), seed=3)
    log: list[str] = []
    heldout = Suite(base.heldout.name, RecordingSamples(base.heldout.samples, log))
    split = SuiteSplit(base.train, base.dev, heldout, base.by, base.seed, base.fractions, base.source)
    embedder = BagOfWordsEmbedder()
    marks: list[int] = []  # how many texts had been embedded when a search took each step

    def on_step(step, kind="step"):
        log.append(f"{kind} {step.step}")
        marks.append(len(embedder.embedded))

    settings = SearchSettings(beam_width=2, candidates_per_step=30, budget_seconds=None, max_steps=6, seed=1)
    # the tokenizer's vocabulary (like a real embedder's) holds every split's words; the token prior gets
    # its weights from the train prompts only, and with explore_share=0 proposes nothing else
    report = optimize_mean_prompt(split, embedder, start="Hello there.", settings=settings, on_step=on_step,
                                  bootstrap=FAST_CI, store=Store(tmp_path / "s.sqlite"), space=space,
                                  tokenizer=word_tokenizer() if space == "tokens" else None, explore_share=0.0,
                                  nearest=replace(settings, max_steps=3),
                                  on_nearest_step=lambda step: on_step(step, "nearest"))
    first_access = log.index("heldout")
    assert first_access > max(i for i, event in enumerate(log) if event.startswith(("step ", "nearest ")))
    assert any(event.startswith("nearest ") for event in log)
    heldout_prompts = {s.rewrite_prompt for s in base.heldout.samples}
    train_words = {w for p in base.train.prompts for w in bare_words(p)} | bare_words("Hello there.")
    heldout_only = {w for p in heldout_prompts for w in bare_words(p)} - train_words
    assert heldout_only, "the constructed split must have words only the held-out prompts use"
    searched = embedder.embedded[:marks[-1]]
    assert not heldout_prompts & set(searched)
    assert not any(bare_words(text) & heldout_only for text in searched)
    data = report.to_dict()
    assert report.heldout.found.n == len(base.heldout) and data["heldout_suite"].endswith(":heldout")
    assert data["space"] == space
    # the train oracle is the train rows' own: recomputed from them alone, it is the same number
    train_only = MeanScsObjective(base.train.prompts, BagOfWordsEmbedder())
    assert data["oracle_train"] == pytest.approx(oracle_bound(train_only.truth_vectors, train_only.weights,
                                                              extra_starts=[BagOfWordsEmbedder().embed(
                                                                  ["Hello there."])[0]], seed=1).value)
    assert data["oracle_heldout"] >= max(data["heldout_score"], data["nearest_heldout_score"],
                                         data["start_heldout_score"]) - 1e-9


def test_report_json_contract_and_candidates_entry(tmp_path):
    split = split_suite(family_suite(), (0.6, 0, 0.4), seed=0)
    settings = SearchSettings(candidates_per_step=32, budget_seconds=None, max_steps=8)
    report = optimize_mean_prompt(split, BagOfWordsEmbedder(), start="Hello there.", settings=settings,
                                  bootstrap=FAST_CI, name="my prompt", nearest=replace(settings, max_steps=2))
    data = report.to_dict()
    for key in ("prompt", "train_score", "heldout_score", "start_heldout_score", "heldout_ci_low", "heldout_ci_high",
                "delta", "delta_ci_low", "delta_ci_high", "oracle_train", "oracle_heldout", "strings_per_second",
                "oracle_train_direction_heldout", "headroom_share", "nearest_prompt", "nearest_heldout_score",
                "nearest_cosine_train_oracle", "nearest_train_score"):
        assert isinstance(data[key], (str, float)), key
    assert data["space"] == "words" and data["guide"] == "none" and data["device"] == "cpu"  # the default
    assert data["strings_evaluated"] == data["evaluations"] == report.search.evaluations
    assert data["headroom_share"] == pytest.approx((data["heldout_score"] - data["start_heldout_score"])
                                                   / (data["oracle_heldout"] - data["start_heldout_score"]))
    assert data["oracle_heldout"] >= data["oracle_train_direction_heldout"] - 1e-9
    assert data["oracle_heldout"] >= data["mean_direction_heldout"] - 1e-9
    assert "best possible constant" in report.summary() and "% of the headroom" in report.summary()
    assert data["heldout_ci_low"] <= data["heldout_score"] <= data["heldout_ci_high"]
    assert data["delta"] == pytest.approx(data["heldout_score"] - data["start_heldout_score"])
    json.dumps(data, allow_nan=False)
    entry = tomllib.loads(data["candidates_toml"])["candidates"]["my prompt"]
    assert entry["kind"] == "constant" and entry["prompt"] == data["prompt"] and "held-out" in entry["description"]


def test_toml_entry_escapes_quotes_and_newlines():
    from harness.files import toml_table

    entry = toml_table("candidates", "x", {"kind": "constant", "prompt": 'say "hi"\\ \n\tnow'})
    assert tomllib.loads(entry)["candidates"]["x"]["prompt"] == 'say "hi"\\ \n\tnow'


def test_vocabulary_from_prompts_and_token_list(tmp_path):
    vocabulary = build_vocabulary(["Make it formal.", "Make it sad."], ["lucrarea"], max_words=10)
    assert vocabulary.words[:2] == ("Make", "it") and "formal" in vocabulary.words and "lucrarea" in vocabulary.words
    assert np.isclose(vocabulary.probabilities.sum(), 1.0)
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("# adversarial\nlucrarea\n\n  Think  \n")
    assert read_token_list(tokens) == ["lucrarea", "Think"]
    tokens.write_text("ok\ntwo words\n")
    with pytest.raises(DataError, match="line 2"):
        read_token_list(tokens)


def test_direction_objective_is_the_cosine_and_devices_agree():
    embedder = BagOfWordsEmbedder()
    direction = embedder.embed(["Rewrite the text as a poem."])[0]
    aim = DirectionObjective(direction, embedder, max_tokens=None)
    texts = ["Rewrite the text as a poem.", "Make it formal.", "poem text"]
    expected = embedder.embed(texts) @ direction
    assert np.allclose(aim.score(texts), expected, atol=1e-6)
    # the torch path (what a GPU embedder gets; exercised here on the CPU) gives the numpy numbers
    pytest.importorskip("torch")
    suite = family_suite()
    on_numpy = MeanScsObjective(suite.prompts, embedder, max_tokens=None)
    on_torch = MeanScsObjective(suite.prompts, embedder, max_tokens=None, device="cpu")
    assert np.allclose(on_numpy.score(texts), on_torch.score(texts), atol=1e-6)
    assert np.allclose(DirectionObjective(direction, embedder, max_tokens=None, device="cpu").score(texts), expected,
                       atol=1e-6)
