"""Parsing and judging generator answers, and Gemma-like post-processing: pure functions."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.generate.gemma_style import gemma_postprocess
from harness.generate.validation import (
    InvalidGeneration,
    check_pair,
    flags,
    merge_flags,
    parse_pair,
    problems,
)

texts = st.text(max_size=200)


@given(original=texts, rewritten=texts, wrap=st.sampled_from(["{}", "```json\n{}\n```", "Sure! Here it is:\n{}\nHope it helps.",
                                                              "<think>{{\"original_text\": \"no\"}}</think>{}"]),
       upper=st.booleans())
def test_a_json_pair_round_trips_through_any_wrapping(original, rewritten, wrap, upper):
    keys = ("ORIGINAL_TEXT", "Rewritten_Text") if upper else ("original_text", "rewritten_text")
    body = json.dumps({keys[0]: original, keys[1]: rewritten}, ensure_ascii=bool(upper))
    assert parse_pair(wrap.replace("{}", body, 1) if wrap != "{}" else body) == (original, rewritten)


@given(answer=st.text(max_size=300))
def test_parsing_never_raises_anything_but_invalid_generation(answer):
    try:
        original, rewritten = parse_pair(answer)
    except InvalidGeneration as invalid:
        assert invalid.reason == "not_json"
    else:
        assert isinstance(original, str) and isinstance(rewritten, str)


@given(first=texts, second=texts)
def test_the_last_complete_object_wins(first, second):
    answer = json.dumps({"original_text": "a", "rewritten_text": first}) + " then " + \
        json.dumps({"original_text": "b", "rewritten_text": second})
    assert parse_pair(answer) == ("b", second)


@pytest.mark.parametrize("answer", ['{"original_text": "a"}', '{"original_text": 1, "rewritten_text": "b"}', "[1, 2]",
                                    '{"original_text": "a", "rewritten_text": "b"', ""])
def test_answers_without_both_string_fields_are_not_json(answer):
    with pytest.raises(InvalidGeneration, match="not_json"):
        parse_pair(answer)


@given(original=texts, rewritten=texts, limit=st.integers(1, 50))
def test_check_pair_agrees_with_problems(original, rewritten, limit):
    found = problems(original, rewritten, max_words=limit)
    if found:
        with pytest.raises(InvalidGeneration) as caught:
            check_pair(original, rewritten, max_words=limit)
        assert caught.value.reason == found[0].reason
    else:
        check_pair(original, rewritten, max_words=limit)
        assert original.strip() and rewritten.strip() and len(original.split()) <= limit
        assert " ".join(original.casefold().split()) != " ".join(rewritten.casefold().split())


def test_each_problem_has_its_reason():
    reasons = lambda o, r, m=5: [p.reason for p in problems(o, r, max_words=m)]  # noqa: E731
    assert reasons("", "x") == ["empty_original"]
    assert reasons("x", " ") == ["empty_rewritten"]
    assert reasons("one two three four five six", "other") == ["original_too_long"]
    assert reasons("Same  TEXT", "same text") == ["unchanged"]
    assert reasons("fine text", "new text") == []


def test_flags_mark_rows_for_the_reviewer():
    original = "Dear team, the quarterly meeting moves to Thursday at ten in the large room on floor two."
    assert flags(original, original.replace("ten", "eleven")) == ["near_copy"]
    assert "chatty_opener" in flags(original, "Sure, here is the rewritten text: Meeting Thursday!")
    assert "placeholder_left" in flags(original, "Best regards, [Your Name]")
    assert "prompt_echo" in flags(original, "Rewrite the text as a haiku. Thursday rain", "Rewrite the text as a haiku.")
    assert "short_original" in flags("Too short.", "Much longer now")
    assert "long_rewrite" in flags("Tiny text here.", " ".join(["word"] * 200))
    assert flags(original, "Thursday, ten o'clock, big room upstairs: be there or be square, folks!") == []
    assert merge_flags(["zzz", "near_copy"], ["chatty_opener"]) == ["near_copy", "chatty_opener", "zzz"]


@pytest.mark.parametrize(("raw", "mode", "expected"), [
    ("Sure, here is the rewritten text:\n\nThe cat sat.", "strip", "The cat sat."),
    ("**Sure, here's the text rewritten as a poem:**\n\nRoses bloom\n\nI hope this helps!", "strip", "Roses bloom"),
    ('"The whole text in quotes."', "strip", "The whole text in quotes."),
    ("Certainly!\nA line.\n\nLet me know if you need changes.", "strip", "A line."),
    ("## Title\n\n**Bold** body", "plain", "Title\n\nBold body"),
    ("Sure, here is the text:\n\nBody", "none", "Sure, here is the text:\n\nBody"),
    ("Here is the rewritten text:\n", "strip", "Here is the rewritten text:"),  # nothing would remain: kept
    ('He said "yes" and "no"', "strip", 'He said "yes" and "no"'),  # inner quotes are not a wrapper
])
def test_gemma_postprocess(raw, mode, expected):
    assert gemma_postprocess(raw, mode) == expected


@given(text=st.text(max_size=200), mode=st.sampled_from(["none", "strip", "plain"]))
def test_gemma_postprocess_never_invents_text_nor_empties_a_nonblank_answer(text, mode):
    result = gemma_postprocess(text, mode)
    assert len(result) <= len(text.strip()) and result == result.strip()
    if text.strip():
        assert result
    if mode == "none":
        assert result == text.strip()


# -- what a real weak model (Gemma-3-270m behind llama.cpp, tests/realmodel) answered ---------------------
@given(original=st.text(alphabet=".…-–—*_ \n\"'", max_size=20), rewritten=texts)
def test_a_text_without_a_letter_or_digit_is_empty(original, rewritten):
    reasons = [p.reason for p in problems(original, rewritten, max_words=None)]
    assert reasons[0] == "empty_original"
    assert [p.reason for p in problems("A real original text.", original, max_words=None)][0] == "empty_rewritten"


def test_the_skeleton_a_weak_model_copies_is_never_a_row():
    # Gemma-3-270m answered this verbatim to every request whose format line showed it
    with pytest.raises(InvalidGeneration, match="empty_original: original_text has no words, only '...'"):
        check_pair(*parse_pair('{ "original_text": "...","rewritten_text": "..."}'))
    from harness.generate.catalog import ExpandedPrompt
    from harness.generate.synth import synth_messages

    prompt = ExpandedPrompt(index=0, seed=0, instruction="Rewrite this as a haiku.", template_ids=("poem",),
                            families=("poetry",), choices=({},), template_hash="h", text_kind="a memo", topic="rain")
    asked = "\n".join(m["content"] for m in synth_messages(prompt, max_words=50))
    assert '"original_text"' in asked and '"..."' not in asked and ": \"" not in asked  # fields named, no values


def test_a_rewrite_that_only_says_the_instruction_back_is_rejected():
    prompt = "Rewrite this text in a more formal tone."
    original = "hey, the library is shut monday, bring books back tuesday."
    for echo in (prompt, "Rewrite the text in a more formal tone", "  rewrite this text in a more formal tone!  "):
        assert [p.reason for p in problems(original, echo, max_words=None, prompt=prompt)] == ["echoed_prompt"]
    assert problems(original, "The library will be closed on Monday; kindly return books on Tuesday.",
                    max_words=None, prompt=prompt) == []
    assert problems(original, prompt, max_words=None) == []  # without the instruction nothing is compared
