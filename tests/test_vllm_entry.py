"""The adapter served by vLLM and scored as a `chat` candidate sends the model the text the hf candidate
tokenizes.

vLLM's chat endpoint renders the request's messages with the served model's chat template
(`tokenizer.apply_chat_template(messages, add_generation_prompt=True)`, or the `--chat-template` file)
and tokenizes the result without adding special tokens; the hf candidate renders `format_prompt` and
tokenizes it the same way. So the check is: the chat candidate's messages, rendered as vLLM renders them,
equal the hf candidate's prompt, character for character and token for token. Covered: a chat template
that takes a system message, one that refuses it, none at all (the plain format as a template file),
texts cut at `max_text_chars`, braces in the system text and the texts, and few-shot rows. The requests
themselves (model = the LoRA module's name, greedy, answer length) go to the stub OpenAI server.
"""

from __future__ import annotations

import functools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stub_openai_server import StubOpenAIServer
from tiny_models import (
    CHAT_TEMPLATE,
    MEMORIZE_ROWS,
    build_tiny_tokenizer,
    tiny_train_config,
    write_rows_jsonl,
)

from harness.candidates import CandidateContext
from harness.candidates.chat import from_config as chat_from_config
from harness.candidates.hf import from_config as hf_from_config
from harness.data import Sample, load_suite_specs
from harness.prompting import PLAIN_CHAT_TEMPLATE, accepts_system_message, format_prompt, recovery_messages
from harness.tomlfile import tomllib
from harness.train.entry import entry_values, vllm_command, vllm_entry_values

#: Gemma's and older Mistral templates refuse a system message like this.
NO_SYSTEM_TEMPLATE = ("{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
                      "{% endif %}" + CHAT_TEMPLATE)
TEMPLATES = {"chat template": CHAT_TEMPLATE, "template refusing a system message": NO_SYSTEM_TEMPLATE,
             "no chat template": None}
ROWS = [
    *MEMORIZE_ROWS,
    Sample("long", "A long original text that runs well past the limit. " * 3, "Short {braces} {{kept}}.", "x"),
    Sample("braces", "{original_text} is not a placeholder here", "}{ neither", "y"),
]


@pytest.fixture(scope="module")
def tokenizers():
    return {name: build_tiny_tokenizer(chat_template=template) for name, template in TEMPLATES.items()}


def served_text(tokenizer, messages) -> str:
    """What vLLM renders from `messages`: the model's chat template, or the `--chat-template` file that
    `prh train` writes for a model without one (PLAIN_CHAT_TEMPLATE)."""
    template = None if tokenizer.chat_template else PLAIN_CHAT_TEMPLATE
    return tokenizer.apply_chat_template(messages, chat_template=template, add_generation_prompt=True, tokenize=False)


def entries(tokenizer, **prompt):
    """(hf entry, chat entry) for one adapter, as `prh train` writes them."""
    config = tiny_train_config("/models/base", max_text_chars=40, **prompt)
    hf = entry_values(config, model="/models/base", adapter=None, train_suites=["mem"], description="hf")
    chat = vllm_entry_values(config, lora_name="tiny-ft", system_accepted=accepts_system_message(tokenizer),
                             train_suites=["mem"], description="vllm")
    return hf, chat


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("system", ["Recover the {prompt}.", ""])
def test_the_vllm_entry_sends_the_text_the_hf_entry_tokenizes(tokenizers, template, system):
    tokenizer = tokenizers[template]
    hf_entry, chat_entry = entries(tokenizer, system=system)
    hf = hf_from_config("tiny", hf_entry, CandidateContext())
    chat = chat_from_config("tiny-vllm", chat_entry, CandidateContext())
    assert chat.train_suites == ("mem",) and chat.client.model == "tiny-ft"
    for row in ROWS:
        hf_text = hf.prompt(tokenizer, row)
        assert served_text(tokenizer, chat.messages(row)) == hf_text, row.id
        ids = tokenizer(hf_text, add_special_tokens=False)["input_ids"]
        assert tokenizer(served_text(tokenizer, chat.messages(row)), add_special_tokens=False)["input_ids"] == ids
    assert " [...]" in hf.prompt(tokenizer, ROWS[3])  # the long row was cut, on both sides
    if system:
        assert system in hf.prompt(tokenizer, ROWS[0])  # braces in the system text stay literal


@pytest.mark.parametrize("template", ["chat template", "no chat template"])
def test_few_shot_rows_reach_the_model_as_the_hf_candidate_asks_them(tokenizers, template, tmp_path):
    """Few-shot entries are written by hand: the same keys on both sides give the same text (answers are
    stripped on both). With a template that refuses a system message they cannot agree (the hf candidate
    puts the system text in front of the first example only): docs/train.md says so."""
    tokenizer = tokenizers[template]
    shots = [Sample(f"s{i}", row.original_text, row.rewritten_text, f"  {row.rewrite_prompt} ")
             for i, row in enumerate(MEMORIZE_ROWS)]
    write_rows_jsonl(tmp_path / "shots.jsonl", shots)
    (tmp_path / "suites.toml").write_text('[suites.shots]\npath = "shots.jsonl"\n')
    context = CandidateContext(base_dir=tmp_path, suites=load_suite_specs(tmp_path / "suites.toml"))
    hf_entry, chat_entry = entries(tokenizer)
    few_shot = {"few_shot_suite": "shots", "few_shot_k": 2}
    hf = hf_from_config("tiny", {**hf_entry, **few_shot}, context)
    chat = chat_from_config("tiny-vllm", {**chat_entry, **few_shot}, context)
    assert chat.train_suites == ("mem", "shots")
    for row in ROWS:
        assert served_text(tokenizer, chat.messages(row)) == hf.prompt(tokenizer, row), row.id
    asked = hf.prompt(tokenizer, ROWS[0])
    assert shots[0].rewrite_prompt.strip() in asked and shots[0].rewrite_prompt not in asked  # stripped


@settings(max_examples=60, deadline=None)
@given(system=st.text(max_size=30), texts=st.lists(st.text(min_size=1, max_size=60), min_size=2, max_size=2),
       answers=st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=20)
                        .filter(str.strip), max_size=2))
def test_the_plain_template_file_renders_what_the_plain_prompt_is(system, texts, answers):
    """For a tokenizer without a chat template, `format_prompt` and a server given PLAIN_CHAT_TEMPLATE
    (rendered by transformers' apply_chat_template, which vLLM calls) agree on any texts."""
    tokenizer = plain_tokenizer()
    examples = [Sample(f"e{i}", f"o{i}", f"r{i}", answer) for i, answer in enumerate(answers)]
    options = {"system": system, "user_template": "{original_text}|{rewritten_text}", "max_chars": None}
    messages = recovery_messages(texts[0], texts[1], examples=examples, **options)
    assert served_text(tokenizer, messages) == format_prompt(tokenizer, texts[0], texts[1], examples=examples,
                                                             **options)


@functools.cache
def plain_tokenizer():
    return build_tiny_tokenizer(chat_template=None)


def test_requests_name_the_lora_module_and_ask_greedily_for_the_answer_length(tokenizers):
    hf_entry, chat_entry = entries(tokenizers["chat template"])
    with StubOpenAIServer(models=["tiny-ft"]) as server:
        server.handler = lambda request: "Make it sound like a pirate."
        chat = chat_from_config("tiny-vllm", {**chat_entry, "base_url": server.base_url}, CandidateContext())
        chat.preflight()
        assert chat.predict(ROWS[:2]) == ["Make it sound like a pirate."] * 2
        asked = [r for r in server.requests if r.path.endswith("/chat/completions")]
    assert {r.body["model"] for r in asked} == {"tiny-ft"}
    assert {r.body["max_tokens"] for r in asked} == {hf_entry["max_new_tokens"]}
    assert {r.body["temperature"] for r in asked} == {0.0}
    assert sorted(json.dumps(r.body["messages"]) for r in asked) == sorted(json.dumps(chat.messages(row))
                                                                         for row in ROWS[:2])


def test_the_vllm_command_serves_the_adapter_by_name():
    command = vllm_command("/models/base dir", "tiny-ft", "/runs/a/adapter", lora_r=4, chat_template=None)
    assert command == "vllm serve '/models/base dir' --enable-lora --lora-modules tiny-ft=/runs/a/adapter"
    wide = vllm_command("org/m", "x", "/a", lora_r=32, chat_template="/runs/a/chat_template.jinja")
    assert wide.endswith("--max-lora-rank 32 --chat-template /runs/a/chat_template.jinja")
    toml = tomllib.loads('[candidates.x]\nkind = "chat"\nbase_url = "http://h/v1"\nmodel = "m"\nmax_text_chars = 0\n')
    with pytest.raises(Exception, match="max_text_chars"):
        chat_from_config("x", toml["candidates"]["x"], CandidateContext())
