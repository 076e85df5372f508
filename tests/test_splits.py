"""harness.splits: a prompt (or group) never crosses splits; splits are seeded and deterministic."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optimize_helpers import family_suite

from harness.data import Sample, Suite
from harness.errors import ConfigError
from harness.splits import normalise_prompt, parse_fractions, split_suite

PROMPTS = ["Make it formal.", "make it  formal.", "Rewrite as a poem.", "Shorten it.", "Add a twist.",
           "Pirate voice.", "Make it sad.", "Haiku please.", "Rewrite it.", "Be brief."]


@st.composite
def suites(draw):
    n = draw(st.integers(min_value=3, max_value=40))
    with_groups = draw(st.booleans())
    samples = []
    for i in range(n):
        prompt = draw(st.sampled_from(PROMPTS))
        group = draw(st.sampled_from(["g1", "g2", "g3", "g4", "g5", None])) if with_groups else None
        samples.append(Sample(f"id-{i}", f"orig {i}", f"rew {i}", prompt, group))
    return Suite("prop", tuple(samples))


fractions_strategy = st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1)).filter(
    lambda f: 0 < sum(f) <= 1)


def _assignment(split):
    return {s.id: name for name in ("train", "dev", "heldout") for s in split.part(name).samples}


@settings(max_examples=150, deadline=None)
@given(suite=suites(), fractions=fractions_strategy, by=st.sampled_from(["prompt", "group"]),
       seed=st.integers(0, 2**32 - 1))
def test_no_prompt_or_group_in_two_splits(suite, fractions, by, seed):
    try:
        split = split_suite(suite, fractions, by=by, seed=seed)
    except ConfigError as error:
        assert "cannot give each" in str(error)  # fewer units than non-empty splits: refused, not fudged
        return
    owner_of_prompt: dict[str, str] = {}
    owner_of_group: dict[str, str] = {}
    seen = []
    for name in ("train", "dev", "heldout"):
        part = split.part(name)
        assert part.name == f"prop:{name}"
        for sample in part.samples:
            seen.append(sample.id)
            key = normalise_prompt(sample.rewrite_prompt)
            assert owner_of_prompt.setdefault(key, name) == name, f"prompt {key!r} in two splits"
            if by == "group" and sample.group is not None:
                assert owner_of_group.setdefault(sample.group, name) == name, f"group {sample.group} in two splits"
    assert len(seen) == len(set(seen))  # no row twice
    if sum(fractions) >= 1.0 - 1e-12:
        assert sorted(seen) == sorted(suite.ids)  # nothing left out when the fractions cover everything
    for name, fraction in zip(("train", "dev", "heldout"), fractions):
        if fraction > 0:
            assert len(split.part(name)) > 0, f"{name} empty despite fraction {fraction}"
    # deterministic, and independent of the suite's row order
    again = split_suite(suite, fractions, by=by, seed=seed)
    shuffled = list(suite.samples)
    random.Random(seed).shuffle(shuffled)
    reordered = split_suite(Suite("prop", tuple(shuffled)), fractions, by=by, seed=seed)
    assert _assignment(again) == _assignment(split) == _assignment(reordered)


def test_fractions_are_respected_roughly_and_seeds_differ():
    suite = family_suite(repeats=4, families=[f"Prompt number {i}." for i in range(100)])
    split = split_suite(suite, (0.6, 0.2, 0.2), seed=1)
    sizes = [len(split.train), len(split.dev), len(split.heldout)]
    assert sum(sizes) == 400 and 220 <= sizes[0] <= 260 and 60 <= sizes[1] <= 100 and 60 <= sizes[2] <= 100
    other = split_suite(suite, (0.6, 0.2, 0.2), seed=2)
    assert _assignment(other) != _assignment(split)
    assert split.describe()["n_train"] == sizes[0]
    # rows keep the suite's order inside a split
    positions = {s.id: i for i, s in enumerate(suite.samples)}
    assert [positions[s.id] for s in split.train.samples] == sorted(positions[s.id] for s in split.train.samples)


def test_fractions_below_one_leave_rows_out():
    suite = family_suite(repeats=1, families=[f"Prompt {i}." for i in range(50)])
    split = split_suite(suite, (0.2, 0.1, 0.2), seed=0)
    assert 15 <= len(split.train) + len(split.dev) + len(split.heldout) <= 35


def test_group_split_keeps_a_prompt_shared_by_two_groups_together():
    samples = (Sample("1", "a", "b", "Same prompt.", "g1"), Sample("2", "a", "b", "Same prompt.", "g2"),
               Sample("3", "a", "b", "Other.", "g2"), Sample("4", "a", "b", "Third.", "g3"),
               Sample("5", "a", "b", "Fourth.", "g4"))
    for seed in range(20):
        split = split_suite(Suite("s", samples), (0.5, 0, 0.5), by="group", seed=seed)
        owner = _assignment(split)
        assert owner["1"] == owner["2"] == owner["3"]  # linked through the prompt and through group g2


def test_bad_fractions_and_too_few_units_are_errors():
    assert parse_fractions("0.7, 0, 0.3") == (0.7, 0.0, 0.3)
    for bad in ("0.7,0.3", "a,b,c", "0.8,0.3,0.1", "0,0,0", "-0.1,0.5,0.5"):
        with pytest.raises(ConfigError):
            parse_fractions(bad)
    one_prompt = Suite("one", tuple(Sample(str(i), "a", "b", "Only prompt.") for i in range(5)))
    with pytest.raises(ConfigError, match="1 distinct prompt unit"):
        split_suite(one_prompt, (0.5, 0, 0.5))
    with pytest.raises(ConfigError, match="split by"):
        split_suite(one_prompt, (1, 0, 0), by="row")
