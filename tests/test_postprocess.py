"""Post-processing of chat answers: examples of real model chatter, and properties (hypothesis)."""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from harness.candidates.postprocess import (
    MODES,
    clean_prompt,
    extract_json_prompt,
    last_nonempty_line,
    postprocess,
)

EXAMPLES = [
    # (answer, auto, last_line)
    ('Sure, here is the prompt:\n\n**"Rewrite the text as a pirate shanty."**',
     "Rewrite the text as a pirate shanty.", "Rewrite the text as a pirate shanty."),
    ("The prompt is: Make it formal.", "Make it formal.", "Make it formal."),
    ("Prompt: `Convert this into a haiku`", "Convert this into a haiku", "Convert this into a haiku"),
    ("**Prompt:** Rewrite the text as a sonnet.", "Rewrite the text as a sonnet.", "Rewrite the text as a sonnet."),
    ("Sure! Here's the recovered rewrite prompt:\n\nRewrite the email in a more formal tone.\n\n"
     "Let me know if you need anything else!",
     "Rewrite the email in a more formal tone.", "Rewrite the email in a more formal tone."),
    ("The text rhymes and is short.\nIt mentions the sea.\nFinal answer: Rewrite it as a sea shanty.",
     "Rewrite it as a sea shanty.", "Rewrite it as a sea shanty."),
    ('<think>the text became a poem</think>\n"Rewrite as a poem."', "Rewrite as a poem.", "Rewrite as a poem."),
    ("- Rewrite the memo as a limerick.", "Rewrite the memo as a limerick.", "Rewrite the memo as a limerick."),
    ("```\nTurn this into a recipe.\n```", "Turn this into a recipe.", "Turn this into a recipe."),
    ("“Make the story spooky.”", "Make the story spooky.", "Make the story spooky."),
    ("Rewrite the text so that it is funny.\nNote: the rewrite adds jokes.",
     "Rewrite the text so that it is funny.", "Rewrite the text so that it is funny."),
    ("Make it formal.", "Make it formal.", "Make it formal."),
]

UNUSABLE = ["", "   \n ", "Sure, here is the prompt:", "**", '""', "<think>reasoning cut off by max_tokens",
            "Prompt:\n\n```\n```"]


@pytest.mark.parametrize(("answer", "auto", "last_line"), EXAMPLES)
def test_chatter_is_removed(answer, auto, last_line):
    assert postprocess(answer) == auto
    assert postprocess(answer, "last_line") == last_line
    assert postprocess(answer, "raw") == answer.strip()


@pytest.mark.parametrize("answer", UNUSABLE)
@pytest.mark.parametrize("mode", ["auto", "last_line", "json"])
def test_nothing_usable_gives_empty(answer, mode):
    assert postprocess(answer, mode) == ""


def test_json_answers_in_fences_and_after_chatter():
    fenced = 'Here you go:\n```json\n{"prompt": "Make it a poem", "confidence": 0.8}\n```'
    assert postprocess(fenced, "json") == postprocess(fenced) == "Make it a poem"
    assert postprocess('Reasoning… {"prompt": "draft"}\nFinal: {"Prompt": "Make it rhyme"}', "json") == "Make it rhyme"
    assert postprocess('{"rewrite_prompt": "Shorten it."}', "json") == "Shorten it."
    # nested objects are not answers; the outer one is
    assert extract_json_prompt('{"prompt": "outer", "meta": {"prompt": "inner"}}') == "outer"
    # json mode is strict: no JSON, no answer (the row is reported rather than guessed)
    assert postprocess("Make it a poem.", "json") == ""
    assert postprocess('{"prompt": 3}', "json") == ""


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="unknown postprocess mode 'fancy'; known: auto, json, last_line, raw"):
        postprocess("x", "fancy")


def test_last_line_skips_separators_and_closers():
    assert last_nonempty_line("a\nb\n---\n\n") == "b"
    assert last_nonempty_line("Rewrite it.\nHope this helps!") == "Rewrite it."
    assert last_nonempty_line("Hope this helps!") == "Hope this helps!"


# -- properties ---------------------------------------------------------------------------------------------
CHATTER = st.sampled_from(["Sure, here is the prompt:", "Prompt:", "The prompt is:", "**", "```", '"', "'", "`",
                           "Let me know if you need more!", "Note: guessed.", "<think>", "</think>", "- ", "\n",
                           "Here's the rewrite prompt:", "Final answer:", "{", "}", '{"prompt": "', '"}', "“", "”"])
ANSWERS = st.lists(st.one_of(st.text(max_size=30), CHATTER), max_size=8).map("".join)


def is_subsequence(short: str, long: str) -> bool:
    characters = iter(long)
    return all(ch in characters for ch in short)


@settings(max_examples=300, deadline=None)
@given(ANSWERS, st.sampled_from(MODES))
@example('{"prompt": "{\\"prompt\\": \\"inner\\"}"}', "auto")
@example('{"prompt": "a"**}', "auto")
def test_output_is_stripped_and_never_longer(answer, mode):
    result = postprocess(answer, mode)
    assert result == result.strip()
    assert len(result) <= len(answer)


@settings(max_examples=300, deadline=None)
@given(ANSWERS.filter(lambda a: "{" not in a), st.sampled_from(["auto", "last_line", "raw"]))
def test_never_adds_text(answer, mode):
    """Outside JSON, cleaning only deletes: the prompt is a subsequence of the answer."""
    assert is_subsequence(postprocess(answer, mode), answer)


@settings(max_examples=300, deadline=None)
@given(ANSWERS, st.sampled_from(["auto", "last_line", "raw"]))
@example('{"prompt": "{\\"prompt\\": \\"inner\\"}"}', "auto")
@example('{"prompt": "a"**}', "auto")
@example("Prompt: Note: guessed.", "last_line")
def test_idempotent(answer, mode):
    once = postprocess(answer, mode)
    assert postprocess(once, mode) == once


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_json_round_trip(prompt):
    encoded = json.dumps({"prompt": prompt})
    assert postprocess(encoded, "json") == prompt.strip()
    assert postprocess(encoded) == postprocess(prompt)
    fenced = f"Sure!\n```json\n{json.dumps({'prompt': prompt}, ensure_ascii=False)}\n```"
    assert postprocess(fenced, "json") == prompt.strip()


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(categories=["L", "N"]), min_size=1, max_size=20),
       st.sampled_from(["Sure, here is the prompt: ", "Prompt: ", "The prompt is: ", "Here's the prompt:\n\n"]),
       st.sampled_from([("", ""), ('"', '"'), ("**", "**"), ("`", "`")]))
def test_openers_and_wrappers_around_a_plain_prompt_are_removed(word, opener, wrapper):
    prompt = f"Rewrite it as {word}."
    assert postprocess(f"{opener}{wrapper[0]}{prompt}{wrapper[1]}") == prompt


@settings(max_examples=200, deadline=None)
@given(ANSWERS)
def test_usable_means_a_letter_or_digit(answer):
    for mode in ("auto", "last_line"):
        result = postprocess(answer, mode)
        assert result == "" or any(ch.isalnum() for ch in result)
    assert clean_prompt(clean_prompt(answer)) == clean_prompt(answer)
