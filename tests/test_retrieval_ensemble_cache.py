"""The prediction cache, the retrieval candidate and ensembles, with real models and a real store."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REPO_ROOT, copy_store

from harness.candidates import CandidateContext, ConstantCandidate, load_candidate_registry, resolve_candidate
from harness.candidates.cache import predict_with_cache
from harness.candidates.ensemble import LUCRAREA_SUFFIX, EnsembleCandidate
from harness.candidates.retrieval import RetrievalCandidate
from harness.data import Sample, Suite, load_suite_specs
from harness.errors import ConfigError, LearnedFromSuiteError
from harness.evaluation import BootstrapSettings, evaluate
from harness.store import Store

FAST = BootstrapSettings(n_resamples=1000)


class FirstWordsCandidate:
    """A small real streaming candidate: answers with the first words of the rewrite (or fails on
    rewrites containing 'FAIL'), and records every row it was asked."""

    name = spec = "first-words"
    fingerprint = "first-words-v1"

    def __init__(self):
        self.asked: list[str] = []

    def predict(self, samples):
        return [p for _, p in sorted(self.predict_stream(samples))]

    def predict_stream(self, samples):
        for index in reversed(range(len(samples))):  # out of order on purpose
            self.asked.append(samples[index].id)
            text = samples[index].rewritten_text
            yield index, "" if "FAIL" in text else " ".join(text.split()[:3])


def rows(*rewrites):
    return [Sample(f"r{i}", f"original {i}", text, "p") for i, text in enumerate(rewrites)]


def test_cache_answers_each_row_once_and_retries_failures(tmp_path):
    samples = rows("one two three four", "five six seven", "FAIL here")
    candidate = FirstWordsCandidate()
    with Store(tmp_path / "s.sqlite") as store:
        assert predict_with_cache(candidate, samples, store) == ["one two three", "five six seven", ""]
        assert sorted(candidate.asked) == ["r0", "r1", "r2"]
        candidate.asked.clear()
        assert predict_with_cache(candidate, samples, store) == ["one two three", "five six seven", ""]
        assert candidate.asked == ["r2"]  # only the failed row is asked again
        edited = [samples[0], Sample("r1", "original 1", "changed text here now", "p"), samples[2]]
        candidate.asked.clear()
        assert predict_with_cache(candidate, edited, store)[1] == "changed text here"
        assert sorted(candidate.asked) == ["r1", "r2"]


@pytest.fixture
def style_suites():
    train = Suite("train", (
        Sample("t1", "The cat sat.", "Arr, the cat be sittin', matey!", "Rewrite this as a pirate."),
        Sample("t2", "We met at noon.", "Ahoy! We be meetin' at noon, ye scallywags!", "Make it sound like a pirate."),
        Sample("t3", "The cat sat.", "O feline, seated in repose divine.", "Turn this into a poem."),
        Sample("t4", "Sales rose.", "Dear colleagues, I am pleased to report that sales increased.", "Make it a formal email."),
    ))
    test = Suite("test", (
        Sample("q1", "The dog ran.", "Arr, the dog be runnin' off, matey!", "Rewrite it like a pirate would."),
        Sample("q2", "Costs fell.", "Dear team, I am pleased to inform you that costs decreased.", "Write a formal email."),
    ))
    return train, test


def test_retrieval_finds_the_nearest_style(minilm, style_suites, tmp_path):
    train, test = style_suites
    with Store(tmp_path / "s.sqlite") as store:
        nearest = RetrievalCandidate("knn", train, minilm, k=1, store=store)
        assert nearest.predict(test.samples) == ["Rewrite this as a pirate.", "Make it a formal email."]
        two = RetrievalCandidate("knn2", train, minilm, k=2, store=store).predict(test.samples[:1])[0]
        assert two == "Rewrite this as a pirate. Make it sound like a pirate."
        assert store.count_embeddings(minilm.fingerprint) > 0  # the index is cached like any embedding


def test_retrieval_never_answers_a_row_with_itself(minilm, style_suites):
    train, _ = style_suites
    answers = RetrievalCandidate("knn", train, minilm, k=1).predict(train.samples)
    assert all(answer != sample.rewrite_prompt for answer, sample in zip(answers, train.samples))
    assert all(answer in {s.rewrite_prompt for s in train.samples} for answer in answers)


def test_scoring_on_the_train_suite_is_refused(minilm, style_suites):
    train, _ = style_suites
    with pytest.raises(LearnedFromSuiteError, match="learned from suite 'train'"):
        evaluate(RetrievalCandidate("knn", train, minilm), train, minilm, bootstrap=FAST)


def test_retrieval_beats_a_bad_mean_prompt(minilm, style_suites):
    train, test = style_suites
    knn = evaluate(RetrievalCandidate("knn", train, minilm, k=1), test, minilm, bootstrap=FAST)
    banana = evaluate(ConstantCandidate("banana", "banana"), test, minilm, bootstrap=FAST)
    assert knn.mean > banana.mean + 0.1


def test_ensemble_joins_members_and_appends_the_suffix(tmp_path):
    samples = rows("one two three four", "FAIL")
    members = [FirstWordsCandidate(), ConstantCandidate("m", "Improve the text.")]
    ensemble = EnsembleCandidate("e", members, suffix="Thanks.")
    assert ensemble.predict(samples) == ["one two three Improve the text. Thanks.", "Improve the text. Thanks."]
    alone = EnsembleCandidate("e", [FirstWordsCandidate()], suffix="lucrarea").predict(samples)
    assert alone[1] == ""  # nobody answered: stays empty, so the suite check reports it
    other = EnsembleCandidate("e", [ConstantCandidate("m", "Improve the text.")], suffix="Thanks.")
    assert other.fingerprint != ensemble.fingerprint


@pytest.mark.e2e  # retrieval over synthetic-hard's long rewritten texts
def test_shipped_ensembles_and_retrieval_build_from_the_candidates_file(tmp_path, shipped_store_with_rewritten):
    registry = load_candidate_registry(REPO_ROOT / "candidates.toml")
    with Store(copy_store(shipped_store_with_rewritten, tmp_path / "s.sqlite")) as store:
        context = CandidateContext(store=store, suites=load_suite_specs(REPO_ROOT / "suites.toml"))
        lucrarea = resolve_candidate("mean-prompt+lucrarea", registry, context)
        assert lucrarea.predict(rows("x"))[0].endswith(LUCRAREA_SUFFIX)
        combined = resolve_candidate("retrieval-knn+mean", registry, context)
        assert combined.train_suites == {"synthetic-hard"}
        answer = combined.predict(rows("Arr matey, the ship be sailin'!"))[0]
        assert answer.endswith("altering the tone.") and len(answer) > 120


def test_ensemble_cycles_and_missing_train_suites_are_config_errors(tmp_path):
    (tmp_path / "c.toml").write_text(
        '[candidates.a]\nkind = "ensemble"\nmembers = ["b"]\n[candidates.b]\nkind = "ensemble"\nmembers = ["a"]\n'
        '[candidates.r]\nkind = "retrieval"\ntrain_suite = "nope"\n')
    registry = load_candidate_registry(tmp_path / "c.toml")
    with pytest.raises(ConfigError, match="a -> b -> a"):
        resolve_candidate("a", registry, CandidateContext())
    with pytest.raises(ConfigError, match="train_suite 'nope' is not a known suite"):
        resolve_candidate("r", registry, CandidateContext())


def test_retrieval_index_matches_direct_cosines(minilm, style_suites):
    train, test = style_suites
    candidate = RetrievalCandidate("knn", train, minilm, k=4)
    order = candidate.neighbours(test.samples[:1])[0]
    direct = minilm.embed([s.rewritten_text for s in train.samples]) @ minilm.embed([test.samples[0].rewritten_text])[0]
    assert list(order) == list(np.argsort(-direct))
