"""The chat candidate: ask any OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp server) for the prompt.

Each row becomes one conversation: an optional system message, few-shot example turns taken from a
train suite (user: the example's texts, assistant: its true prompt), then the row's own texts through
the user template. The model's answers (`n` per row) are cleaned by `harness.candidates.postprocess`
and joined with a space into the row's prediction.

It is a streaming candidate: answers are yielded as they arrive, so the prediction cache stores each
one at once and a killed run resumes where it stopped. A row whose request fails for good, or whose
answer holds no usable prompt, is answered "" (the suite check reports it by id; `failures` says why)
and the run goes on.

The fingerprint covers what changes answers (endpoint, model, templates, few-shot content, sampling
parameters, post-processing): never the key, and not concurrency, timeout or retries.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from harness.candidates.base import CandidateContext
from harness.candidates.postprocess import MODES, POSTPROCESS_VERSION
from harness.candidates.postprocess import postprocess as postprocess_answer
from harness.data import Sample, load_suite
from harness.errors import ConfigError
from harness.hashing import json_fingerprint
from harness.llm import ChatClient, ChatRequestError
from harness.prompting import PLACEHOLDERS, recovery_messages
from harness.templates import check_placeholders, substitute

if TYPE_CHECKING:
    from harness.candidates.schema import FewShotKeys

log = logging.getLogger(__name__)


DEFAULT_SYSTEM = (
    "You recover prompts. A language model was given an original text and an instruction, and rewrote the "
    "text following that instruction. Given both texts, state the instruction it was given. Answer with the "
    "instruction only: one imperative sentence such as \"Rewrite this text as a pirate shanty.\", with no "
    "preamble, no explanation and no quotes."
)
DEFAULT_USER = (
    "Original text:\n<<<\n{original_text}\n>>>\n\n"
    "Rewritten text:\n<<<\n{rewritten_text}\n>>>\n\n"
    "What instruction turned the original text into the rewritten text?"
)
#: The user template when `postprocess = "json"` and none is given: asks for the format that mode reads.
DEFAULT_USER_JSON = DEFAULT_USER + ' Answer with JSON only: {{"prompt": "<the instruction>"}}'




def check_template(template: str, what: str, *, require_placeholder: bool) -> None:
    """Raise ConfigError for unknown `{placeholders}` (or, for the user template, none at all).
    `{{` and `}}` are literal braces, as in str.format."""
    used = check_placeholders(template, PLACEHOLDERS, what)
    if require_placeholder and not used:
        raise ConfigError(f"{what}: the template uses neither {{original_text}} nor {{rewritten_text}}, so every "
                          "row would get the same question")


def render_template(template: str, sample: Sample) -> str:
    """Fill {original_text} and {rewritten_text} in one pass (text inside the values is never
    re-interpreted); `{{`/`}}` become literal braces."""
    return substitute(template, {"original_text": sample.original_text, "rewritten_text": sample.rewritten_text})


class ChatCandidate:
    """Recovers prompts with a chat model behind `client` (see the module docstring).

    Args:
        name: the candidate's name in reports.
        client: the endpoint and model (its key, concurrency, timeout and retries stay out of the fingerprint).
        system: the system message template ("" sends none: some chat templates, e.g. Gemma's, reject it).
        user: the user message template, with {original_text} and/or {rewritten_text}.
        examples: few-shot rows, sent as user/assistant turns before the row.
        train_suites: suites the examples come from (scoring on them is refused).
        temperature, n, max_tokens, seed: generation parameters; n answers per row are joined by a space.
        postprocess: how an answer becomes a prompt: "auto", "json", "last_line" or "raw".
        max_text_chars: each text cut to this many characters as the hf candidate cuts it (None: never).

    The conversation is `harness.prompting.recovery_messages`, the messages the hf candidate renders with
    the model's chat template: a chat server rendering them with the same template sends the model the
    same text (docs/train.md, "Serving an adapter with vLLM").
    """

    def __init__(self, name: str, client: ChatClient, *, system: str = DEFAULT_SYSTEM, user: str = DEFAULT_USER,
                 examples: Sequence[Sample] = (), train_suites: Sequence[str] = (), temperature: float = 0.0,
                 n: int = 1, max_tokens: int | None = None, seed: int | None = None, postprocess: str = "auto",
                 max_text_chars: int | None = None, spec: str | None = None) -> None:
        if postprocess not in MODES:
            raise ConfigError(f"candidate '{name}': postprocess must be one of {', '.join(MODES)}, got {postprocess!r}")
        check_template(system, f"candidate '{name}': system template", require_placeholder=False)
        check_template(user, f"candidate '{name}': user template", require_placeholder=True)
        self.name = name
        self.spec = spec or name
        self.client = client
        self.system = system
        self.user = user
        self.examples = tuple(examples)
        self.train_suites = tuple(train_suites)
        self.temperature = temperature
        self.n = n
        self.max_tokens = max_tokens
        self.seed = seed
        self.postprocess = postprocess
        self.max_text_chars = max_text_chars
        #: sample id → why its prediction is empty, for the last predict_stream call
        self.failures: dict[str, str] = {}
        self._preflight_passed = False
        self.fingerprint = json_fingerprint({
            "kind": "chat", "base_url": client.base_url, "model": client.model, "system": system, "user": user,
            "examples": [[e.original_text, e.rewritten_text, e.rewrite_prompt] for e in self.examples],
            "temperature": temperature, "n": n, "max_tokens": max_tokens, "seed": seed,
            "postprocess": postprocess, "postprocess_version": POSTPROCESS_VERSION,
            # only when they change what is sent, so that existing candidates keep their fingerprints
            **({"max_text_chars": max_text_chars} if max_text_chars is not None else {}),
            **({"few_shot_answers_stripped": True} if any(e.rewrite_prompt != e.rewrite_prompt.strip()
                                                          for e in self.examples) else {}),
        })

    def __repr__(self) -> str:
        return (f"ChatCandidate(name={self.name!r}, model={self.client.model!r}, base_url={self.client.base_url!r}, "
                f"api_key_env={self.client.api_key_env!r}, few_shot={len(self.examples)}, n={self.n}, "
                f"postprocess={self.postprocess!r})")

    def preflight(self) -> None:
        """Endpoint reachable, key variable set and accepted, model listed: checked once per candidate."""
        if not self._preflight_passed:
            self.client.preflight()
            self._preflight_passed = True

    def _assistant_turn(self, prompt: str) -> str:
        return json.dumps({"prompt": prompt}, ensure_ascii=False) if self.postprocess == "json" else prompt

    def messages(self, sample: Sample) -> list[dict[str, str]]:
        """The conversation sent for `sample`."""
        system = render_template(self.system, sample) if self.system else ""
        conversation = recovery_messages(sample.original_text, sample.rewritten_text, system=system,
                                         user_template=self.user, max_chars=self.max_text_chars,
                                         examples=self.examples)
        return [{"role": "assistant", "content": self._assistant_turn(m["content"])} if m["role"] == "assistant"
                else m for m in conversation]

    def predict_stream(self, samples: Sequence[Sample]) -> Iterator[tuple[int, str]]:
        """Yield (index, prediction) as answers arrive; "" for a failed row or an unusable answer."""
        self.failures = {}
        conversations = (self.messages(sample) for sample in samples)
        results = self.client.complete_many(conversations, temperature=self.temperature, n=self.n,
                                            max_tokens=self.max_tokens, seed=self.seed)
        for index, outcome in results:
            sample_id = samples[index].id
            if isinstance(outcome, ChatRequestError):
                self._fail(sample_id, str(outcome))
                yield index, ""
                continue
            if isinstance(outcome, Exception):
                raise outcome  # not the endpoint's failure: a bug must not hide behind empty predictions
            # redacted too: an answer is stored and reported, and a key must never be (however it got there)
            answers = [postprocess_answer(self.client.redact(text), self.postprocess) for text in outcome.texts]
            prediction = " ".join(answer for answer in answers if answer)
            if not prediction:
                shown = " | ".join(outcome.texts)
                shown = shown if len(shown) <= 200 else shown[:199] + "…"
                self._fail(sample_id, f"no usable prompt in the answer (postprocess {self.postprocess!r}): {shown!r}")
            yield index, prediction

    def _fail(self, sample_id: str, why: str) -> None:
        self.failures[sample_id] = why
        log.warning("candidate '%s': row %r answered empty: %s", self.name, sample_id, why)

    def predict(self, samples: Sequence[Sample]) -> list[str]:
        predictions = [""] * len(samples)
        for index, prediction in self.predict_stream(samples):
            predictions[index] = prediction
        return predictions


# -- from candidates.toml -----------------------------------------------------------------------------------
def from_config(name: str, entry: Mapping[str, Any], context: CandidateContext) -> ChatCandidate:
    """Build a chat candidate from its `[candidates.NAME]` entry (keys: `schema.ChatEntry`, see docs/chat.md)."""
    from harness.candidates.schema import ChatEntry, validate_entry
    from harness.candidates.schema import where as entry_where

    where = f"{entry_where(context.source, name)} (kind chat)"
    if "api_key" in entry:  # never echo its value
        raise ConfigError(f"{where}: a key must never be written in the candidates file; put it in an environment "
                          "variable and give the variable's NAME as api_key_env")
    settings = validate_entry(ChatEntry, entry, where)
    postprocess = settings.postprocess
    system = DEFAULT_SYSTEM if settings.system is None else settings.system
    user = settings.user if settings.user is not None else DEFAULT_USER_JSON if postprocess == "json" else DEFAULT_USER
    examples, example_suites = _few_shot(settings, context, where)
    trained_on = list(settings.train_suites)
    train_suites = [*trained_on, *(s for s in example_suites if s not in trained_on)]
    try:
        client = ChatClient(settings.base_url.strip(), settings.model, settings.api_key_env, timeout=settings.timeout,
                            max_retries=settings.max_retries, max_concurrency=settings.max_concurrency)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None
    return ChatCandidate(name, client, system=system, user=user, examples=examples, train_suites=train_suites,
                         temperature=settings.temperature, n=settings.n, max_tokens=settings.max_tokens,
                         seed=settings.seed, postprocess=postprocess, max_text_chars=settings.max_text_chars)


def _few_shot(settings: FewShotKeys, context: CandidateContext, where: str) -> tuple[list[Sample], list[str]]:
    """The few-shot examples: `few_shot_k` rows spread evenly over the suite `few_shot_suite` (the same
    rows every time, so the fingerprint is stable). `settings` is a validated entry (chat or hf)."""
    suite_name, k = settings.few_shot_suite, settings.few_shot_k
    if suite_name is None:
        if k:
            raise ConfigError(f"{where}: few_shot_k = {k} needs a few_shot_suite to take the examples from")
        return [], []
    if k == 0:
        raise ConfigError(f"{where}: few_shot_suite = '{suite_name}' needs few_shot_k >= 1 (how many examples)")
    if suite_name not in context.suites:
        known = ", ".join(context.suites) or "(none)"
        raise ConfigError(f"{where}: few_shot_suite '{suite_name}' is not a known suite; known: {known}")
    suite = load_suite(context.suites[suite_name])
    if k > len(suite):
        raise ConfigError(f"{where}: few_shot_k = {k} but suite '{suite_name}' has only {len(suite)} rows")
    picked = [suite.samples[(i * len(suite)) // k] for i in range(k)]
    return picked, [suite_name]


