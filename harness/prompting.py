"""The one prompt format shared by inference (`harness.candidates.hf`) and LoRA fine-tuning.

A fine-tuned adapter only works when it sees at inference exactly the text it was trained on, so both
sides build their prompts here and nowhere else:

- `recovery_messages` turns a row into chat messages (system + user);
- `format_prompt` renders them with the tokenizer's chat template (`add_generation_prompt=True`), or with
  a plain fallback (BOS, system, user, `PLAIN_ANSWER_CUE`) when the tokenizer has no chat template;
- `format_training_example` returns `(prompt_text, answer_text)` where `prompt_text` is *exactly*
  `format_prompt(...)` and `answer_text` is the rewrite prompt followed by the EOS token, so training can
  put labels on the answer only;
- `encode_training_example` tokenizes that pair the way inference tokenizes prompts.

Tokenization rule: the prompt text already contains every special token it needs (chat templates write
their own BOS; the plain template starts with the tokenizer's BOS token), so prompts and answers are
always tokenized with ``add_special_tokens=False`` (`ADD_SPECIAL_TOKENS`), as transformers itself does
after `apply_chat_template`.

Chat templates that reject a system message (Gemma, older Mistral/Mixtral templates raise
"roles must alternate") get the system text prepended to the user message instead; the choice depends
only on the tokenizer, so training and inference still agree.

Long texts are cut to `max_chars` characters each (original and rewritten separately) and marked with
`TRUNCATION_MARK`. Bump `PROMPT_FORMAT_VERSION` whenever this module's output changes for the same
inputs: it is part of the hf candidate's fingerprint, so cached predictions follow the format.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.data import Sample
from harness.errors import ConfigError
from harness.templates import check_placeholders, substitute

#: Part of every fingerprint that depends on the prompt format; bump it when the rendering code changes.
PROMPT_FORMAT_VERSION = 1

DEFAULT_SYSTEM = (
    "You recover the instruction that was used to rewrite a text. Given an original text and the "
    "rewritten text an assistant produced from it, answer with the rewrite prompt only: one short "
    "imperative sentence, no explanation."
)
DEFAULT_USER = (
    "Original text:\n{original_text}\n\n"
    "Rewritten text:\n{rewritten_text}\n\n"
    "Which prompt turned the original text into the rewritten text?"
)
#: Without a chat template the prompt is: BOS token (if any), system text, blank line, user text, this cue.
PLAIN_ANSWER_CUE = "\n\nRewrite prompt:\n"
#: That plain format as a Jinja chat template: `format_prompt` renders it for tokenizers without a chat
#: template, and a chat server (vLLM's `--chat-template FILE`) given it renders the very same text from
#: the messages a chat candidate sends. One line, so Jinja's whitespace handling cannot change it.
PLAIN_CHAT_TEMPLATE = (
    "{{ bos_token if bos_token else '' }}{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}{{ '\\n\\nRewrite prompt:\\n' + message['content'] }}"
    "{% else %}{{ ('\\n\\n' if not loop.first else '') + message['content'] }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '\\n\\nRewrite prompt:\\n' }}{% endif %}"
)
#: Each text is cut to this many characters (Kaggle originals are mostly shorter; a few run to pages).
DEFAULT_MAX_CHARS = 2000
TRUNCATION_MARK = " [...]"
#: See the module docstring: prompts carry their own special tokens.
ADD_SPECIAL_TOKENS = False

PLACEHOLDERS = ("original_text", "rewritten_text")


def check_user_template(user_template: str) -> None:
    """Raise ConfigError for unknown `{placeholders}` or a template that uses neither text. As in
    str.format (and the chat candidate's templates), `{{` and `}}` are literal braces."""
    if not check_placeholders(user_template, PLACEHOLDERS, "user template"):
        raise ConfigError("user template: it uses neither {original_text} nor {rewritten_text}, so every row "
                          "would get the same question")


def truncate_text(text: str, max_chars: int | None) -> str:
    """`text` cut to `max_chars` characters (plus `TRUNCATION_MARK`), or unchanged when it fits or
    `max_chars` is None."""
    if max_chars is None or len(text) <= max_chars:
        return text
    return text[:max_chars].rstrip() + TRUNCATION_MARK


def recovery_messages(
    original_text: str,
    rewritten_text: str,
    *,
    system: str = DEFAULT_SYSTEM,
    user_template: str = DEFAULT_USER,
    max_chars: int | None = DEFAULT_MAX_CHARS,
    examples: Sequence[Sample] = (),
) -> list[dict[str, str]]:
    """Chat messages asking for the rewrite prompt of one row.

    `user_template` uses the placeholders ``{original_text}`` and/or ``{rewritten_text}`` (``{{``/``}}``
    for literal braces). Substitution is one pass, so braces or placeholders inside the texts themselves
    are left alone. An empty `system` means no system message. Each of `examples` (few-shot rows) becomes
    a user turn asked the same way and an assistant turn holding its rewrite prompt, before the row.
    """
    check_user_template(user_template)

    def ask(original: str, rewritten: str) -> dict[str, str]:
        texts = {"original_text": truncate_text(original, max_chars), "rewritten_text": truncate_text(rewritten, max_chars)}
        return {"role": "user", "content": substitute(user_template, texts)}

    messages = [{"role": "system", "content": system}] if system else []
    for example in examples:
        messages += [ask(example.original_text, example.rewritten_text),
                     {"role": "assistant", "content": example.rewrite_prompt.strip()}]
    messages.append(ask(original_text, rewritten_text))
    return messages


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def format_prompt(
    tokenizer: Any,
    original_text: str,
    rewritten_text: str,
    *,
    system: str = DEFAULT_SYSTEM,
    user_template: str = DEFAULT_USER,
    max_chars: int | None = DEFAULT_MAX_CHARS,
    examples: Sequence[Sample] = (),
) -> str:
    """The text the model continues with its answer (generation prompt included). Few-shot `examples`
    come first: as earlier turns of the chat, or, without a chat template, as earlier questions each
    followed by `PLAIN_ANSWER_CUE` and its answer, separated by blank lines (so a base model that
    continues the pattern ends its answer with a newline)."""
    messages = recovery_messages(original_text, rewritten_text, system=system, user_template=user_template,
                                 max_chars=max_chars, examples=examples)
    if not accepts_system_message(tokenizer) and system:
        # the system text goes in front of the first user message
        messages = [dict(m) for m in messages if m["role"] != "system"]
        messages[0]["content"] = f"{system}\n\n{messages[0]['content']}"
    return render_chat(tokenizer, messages)


def render_chat(tokenizer: Any, messages: Sequence[dict[str, str]]) -> str:
    """`messages` as the model reads them, generation prompt included: the tokenizer's chat template, or
    `PLAIN_CHAT_TEMPLATE` when it has none. A chat server with the same template renders the same text."""
    if has_chat_template(tokenizer):
        return tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
    # rendered here, with the settings transformers renders chat templates with, so that any tokenizer
    # object works (tests/test_vllm_entry.py checks it against apply_chat_template, which vLLM calls)
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    template = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(PLAIN_CHAT_TEMPLATE)
    return template.render(messages=list(messages), add_generation_prompt=True,
                           bos_token=getattr(tokenizer, "bos_token", None) or "")


def accepts_system_message(tokenizer: Any) -> bool:
    """Whether the tokenizer's chat template takes a system message (Gemma's and older Mistral/Mixtral
    templates raise instead; the plain template always takes one)."""
    if not has_chat_template(tokenizer):
        return True
    from jinja2.exceptions import TemplateError

    try:
        tokenizer.apply_chat_template([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
                                      add_generation_prompt=True, tokenize=False)
    except TemplateError:  # raised by the template's raise_exception(...): e.g. "System role not supported"
        return False
    return True


def format_training_example(
    tokenizer: Any,
    sample: Sample,
    *,
    system: str = DEFAULT_SYSTEM,
    user_template: str = DEFAULT_USER,
    max_chars: int | None = DEFAULT_MAX_CHARS,
) -> tuple[str, str]:
    """(prompt_text, answer_text) for one training row: `prompt_text == format_prompt(...)` exactly and
    `answer_text` is the stripped rewrite prompt followed by the tokenizer's EOS token, which teaches the
    model to stop where inference stops."""
    eos = getattr(tokenizer, "eos_token", None)
    if not eos:
        raise ConfigError("the tokenizer has no EOS token; training needs one to end each answer")
    answer = sample.rewrite_prompt.strip()
    if not answer:
        raise ConfigError(f"row {sample.id!r}: empty rewrite_prompt cannot be a training answer")
    prompt = format_prompt(tokenizer, sample.original_text, sample.rewritten_text, system=system,
                           user_template=user_template, max_chars=max_chars)
    return prompt, answer + eos


def encode_training_example(tokenizer: Any, sample: Sample, **prompt_options: Any) -> dict[str, list[int]]:
    """Token ids of prompt + answer and labels that are -100 (ignored by the loss) on the prompt.

    Prompt and answer are tokenized separately (`ADD_SPECIAL_TOKENS`) and concatenated, so the prompt's
    ids are exactly those inference feeds the model.
    """
    prompt, answer = format_training_example(tokenizer, sample, **prompt_options)
    prompt_ids = tokenizer(prompt, add_special_tokens=ADD_SPECIAL_TOKENS)["input_ids"]
    answer_ids = tokenizer(answer, add_special_tokens=ADD_SPECIAL_TOKENS)["input_ids"]
    return {"input_ids": prompt_ids + answer_ids, "labels": [-100] * len(prompt_ids) + answer_ids}
