"""The shared prompt format: what inference sends is exactly what fine-tuning trained on."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiny_models import CHAT_TEMPLATE, build_tiny_tokenizer

from harness.data import Sample
from harness.errors import ConfigError
from harness.prompting import (
    DEFAULT_SYSTEM,
    PLAIN_ANSWER_CUE,
    TRUNCATION_MARK,
    encode_training_example,
    format_prompt,
    format_training_example,
    recovery_messages,
)

# Gemma-style: system messages are refused by the template itself.
NO_SYSTEM_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@pytest.fixture(scope="module")
def chat_tokenizer():
    return build_tiny_tokenizer()


@pytest.fixture(scope="module")
def plain_tokenizer():
    return build_tiny_tokenizer(chat_template=None)


@pytest.fixture(scope="module")
def no_system_tokenizer():
    return build_tiny_tokenizer(chat_template=NO_SYSTEM_TEMPLATE)


def test_messages_fill_the_template_once():
    messages = recovery_messages("a {rewritten_text} b", "c {{x}}", system="S",
                                 user_template="O={original_text} R={rewritten_text} {{literal}}")
    assert messages == [{"role": "system", "content": "S"},
                        {"role": "user", "content": "O=a {rewritten_text} b R=c {{x}} {literal}"}]
    assert recovery_messages("o", "r", system="", user_template="{rewritten_text}") == [{"role": "user", "content": "r"}]


@pytest.mark.parametrize(("template", "problem"), [("{original_text} {nope}", "unknown placeholder"),
                                                   ("no texts at all", "neither")])
def test_bad_user_templates_are_config_errors(template, problem):
    with pytest.raises(ConfigError, match=problem):
        recovery_messages("o", "r", user_template=template)


def test_each_text_is_truncated_separately():
    user = recovery_messages("a" * 50, "b" * 10, user_template="{original_text}|{rewritten_text}", max_chars=20)[-1]
    assert user["content"] == "a" * 20 + TRUNCATION_MARK + "|" + "b" * 10
    assert recovery_messages("a" * 50, "b", user_template="{original_text}", max_chars=None)[-1]["content"] == "a" * 50


def test_chat_template_prompt_ends_with_the_generation_prompt(chat_tokenizer):
    prompt = format_prompt(chat_tokenizer, "orig", "new", system="S", user_template="{original_text}/{rewritten_text}")
    assert prompt == "<s><|system|>\nS</s>\n<|user|>\norig/new</s>\n<|assistant|>\n"
    assert chat_tokenizer.chat_template == CHAT_TEMPLATE


def test_plain_fallback_without_chat_template(plain_tokenizer):
    prompt = format_prompt(plain_tokenizer, "orig", "new", system="S", user_template="{original_text}/{rewritten_text}")
    assert prompt == "<s>S\n\norig/new" + PLAIN_ANSWER_CUE
    assert format_prompt(plain_tokenizer, "o", "n", system="", user_template="{rewritten_text}") == "<s>n" + PLAIN_ANSWER_CUE


def test_template_without_system_role_gets_it_in_the_user_message(no_system_tokenizer):
    prompt = format_prompt(no_system_tokenizer, "orig", "new", system="S", user_template="{original_text}")
    assert prompt == "<s><|user|>\nS\n\norig</s>\n<|assistant|>\n"


@pytest.mark.parametrize("which", ["chat_tokenizer", "plain_tokenizer", "no_system_tokenizer"])
def test_training_prompt_is_the_inference_prompt_and_answer_ends_with_eos(which, request):
    tokenizer = request.getfixturevalue(which)
    sample = Sample("1", "The cat sat.", "A feline reposed.", "  Rewrite it formally.\n")
    prompt, answer = format_training_example(tokenizer, sample, max_chars=8)
    assert prompt == format_prompt(tokenizer, sample.original_text, sample.rewritten_text, max_chars=8)
    assert answer == "Rewrite it formally." + tokenizer.eos_token

    encoded = encode_training_example(tokenizer, sample, max_chars=8)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert encoded["input_ids"][:len(prompt_ids)] == prompt_ids
    assert encoded["labels"][:len(prompt_ids)] == [-100] * len(prompt_ids)
    answer_ids = encoded["input_ids"][len(prompt_ids):]
    assert encoded["labels"][len(prompt_ids):] == answer_ids
    assert answer_ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(answer_ids, skip_special_tokens=True) == "Rewrite it formally."


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(original=st.text(max_size=80), rewritten=st.text(max_size=80), answer=st.text(min_size=1, max_size=30),
       max_chars=st.one_of(st.none(), st.integers(1, 60)))
def test_property_training_and_inference_prompts_never_drift(chat_tokenizer, plain_tokenizer, original, rewritten,
                                                             answer, max_chars):
    if not answer.strip():
        return
    sample = Sample("x", original, rewritten, answer)
    for tokenizer in (chat_tokenizer, plain_tokenizer):
        prompt, completion = format_training_example(tokenizer, sample, max_chars=max_chars)
        assert prompt == format_prompt(tokenizer, original, rewritten, max_chars=max_chars)
        assert completion == answer.strip() + tokenizer.eos_token
        assert DEFAULT_SYSTEM in prompt


def test_training_needs_an_answer_and_an_eos(chat_tokenizer):
    with pytest.raises(ConfigError, match="empty rewrite_prompt"):
        format_training_example(chat_tokenizer, Sample("7", "o", "r", "   "))
