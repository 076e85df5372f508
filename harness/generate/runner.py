"""Run generation work items through a chat client, keeping every row the moment it is accepted.

Synthesis and rewriting differ only in what they ask and how an answer becomes a row; this module is
the part they share:

- items whose id is already in the output are skipped (a rerun resumes; nothing is asked twice);
- the rest go through `client.complete_many` (bounded concurrency, backoff on 429/5xx, redaction:
  `harness.llm.ChatClient`, or anything with the same three members, e.g. a local model);
- each answer is judged by the task's `Acceptor`: an accepted row is appended to the output at once,
  with provenance (model, endpoint, template hash, seed, time, token usage, cost); a rejected answer is
  logged to the failures file (it was paid for) and the item is asked again, with the rejection reason
  as a correction turn, at most `invalid_retries` times, after which the failure is final;
- a request that fails for good (after the client's own retries) is a final failure at once;
- an answer cut off at the token limit (finish reason "length") is rejected as `truncated` before the
  acceptor sees it: a rewrite or a JSON object that stops mid-way is not a row (a base model that never
  ends its turn produces nothing else; `stop` sequences end its answers). Its retry is the same
  conversation again, without the cut-off answer (shown it, a model continues it);
- JSON mode "schema" sends the task's JSON schema inside json_object (llama-cpp-python's server and others
  that read it there constrain decoding to it, so even a weak model writes the right fields);
- in JSON mode "auto", the first 400/422 answer to a request carrying `response_format` switches JSON
  mode off for the rest of the run (servers without it reject the field) and that item is asked again.

Retries run in rounds (all first answers, then the retries), because `complete_many` takes one set of
parameters per call; rounds only delay the few retried items. Failed items are not rows, so a rerun asks
them again; `failures` keeps the history of every rejected answer.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from harness.errors import ConfigError
from harness.generate.jsonl import AppendOnlyJsonl
from harness.generate.validation import InvalidGeneration
from harness.llm import ChatRequestError, ChatResult
from harness.pricing import PriceTable, Usage

log = logging.getLogger(__name__)

JSON_MODES = ("auto", "on", "off", "schema")
#: the Kaggle columns first, in Kaggle's order, so a row reads like the competition's data
KAGGLE_ORDER = ("original_text", "rewrite_prompt", "rewritten_text", "group")
_SHOWN_ANSWER = 2000
_SHOWN_DETAIL = 500


@dataclass(frozen=True)
class WorkItem:
    """One row to generate: its id (the resume key), the conversation to send, the row fields known in
    advance (e.g. rewrite_prompt, group) and item-level provenance (template hash, seed, …)."""

    id: str
    messages: tuple[Mapping[str, str], ...]
    fields: Mapping[str, Any] = field(default_factory=dict)
    provenance: Mapping[str, Any] = field(default_factory=dict)
    typical_completion_tokens: int = 400


class Acceptor(Protocol):
    """Turns an answer into the generated fields of a row, or says why it cannot."""

    def accept(self, item: WorkItem, answer: str) -> dict[str, Any]:
        """The generated fields (e.g. original_text, rewritten_text, flags); raises InvalidGeneration."""
        ...

    def correction(self, item: WorkItem, invalid: InvalidGeneration) -> str | None:
        """The user turn sent after a rejected answer (None: send the same conversation again)."""
        ...


class GenerationClient(Protocol):
    """What the runner needs of a client: `harness.llm.ChatClient` has it."""

    model: str
    base_url: str

    def complete_many(self, requests: Iterable[Sequence[Mapping[str, Any]]], **kwargs: Any
                      ) -> Iterator[tuple[int, ChatResult | Exception]]: ...

    def redact(self, text: str) -> str: ...


@dataclass(frozen=True)
class RunSettings:
    """Generation parameters. `json_mode`: "on" sends response_format json_object, "off" never does,
    "auto" sends it and falls back when the server rejects it, "schema" sends it with `json_schema` (the
    task's answer schema). `stop`: sequences that end an answer (sent as the API's `stop`)."""

    temperature: float = 0.9
    max_tokens: int | None = None
    json_mode: str = "off"
    invalid_retries: int = 2
    stop: tuple[str, ...] = ()
    json_schema: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.json_mode not in JSON_MODES:
            raise ConfigError(f"json mode must be one of {', '.join(JSON_MODES)}, got {self.json_mode!r}")
        if isinstance(self.invalid_retries, bool) or not isinstance(self.invalid_retries, int) or self.invalid_retries < 0:
            raise ConfigError(f"invalid_retries must be an integer >= 0, got {self.invalid_retries!r}")
        if not 0.0 <= self.temperature <= 2.0:
            raise ConfigError(f"temperature must be between 0 and 2, got {self.temperature:g}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ConfigError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.json_mode == "schema" and self.json_schema is None:
            raise ConfigError("json mode 'schema' needs a task whose answer is JSON (synth); this one has no schema")
        if any(not isinstance(s, str) or not s for s in self.stop) or len(self.stop) > 4:
            raise ConfigError(f"stop must be at most 4 non-empty strings (the API's limit), got {list(self.stop)!r}")

    def response_format(self, json_on: bool) -> dict[str, Any] | None:
        """What a request sends as `response_format` while JSON mode is `json_on`."""
        if not json_on:
            return None
        if self.json_mode == "schema":
            return {"type": "json_object", "schema": dict(self.json_schema or {})}
        return {"type": "json_object"}

    def request_options(self) -> dict[str, Any]:
        """Sampling options of every request (besides response_format)."""
        options: dict[str, Any] = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        if self.stop:
            options["stop"] = list(self.stop)
        return options


@dataclass
class RunSummary:
    """What a run did. `usage.cost_usd` is None when the model has no price (or a server reported no usage)."""

    planned: int = 0
    skipped: int = 0
    written: int = 0
    failed: int = 0
    invalid_answers: int = 0
    usage: Usage = Usage()
    seconds: float = 0.0
    json_fallback: bool = False
    reasons: Counter = field(default_factory=Counter)

    def lines(self) -> list[str]:
        from harness.generate.progress import format_cost

        reasons = ", ".join(f"{r} ×{c}" for r, c in self.reasons.most_common()) or "none"
        return [f"items: {self.planned} planned, {self.skipped} already done, {self.written} written, "
                f"{self.failed} failed",
                f"requests: {self.usage.requests} ({self.invalid_answers} answers rejected; reasons: {reasons})",
                f"tokens: {self.usage.prompt_tokens:,} prompt, {self.usage.completion_tokens:,} completion; "
                f"cost {format_cost(self.usage.cost_usd)}; {self.seconds:.1f} s"]


@dataclass
class _ItemState:
    messages: list[Mapping[str, str]]
    requests: int = 0
    rejected: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float | None = 0.0
    latency_s: float = 0.0
    fell_back: bool = False

    def add_usage(self, result: ChatResult, cost: float | None) -> None:
        self.requests += 1
        self.latency_s += result.latency_s
        if result.prompt_tokens is not None:
            self.prompt_tokens = (self.prompt_tokens or 0) + result.prompt_tokens
        if result.completion_tokens is not None:
            self.completion_tokens = (self.completion_tokens or 0) + result.completion_tokens
        self.cost = None if cost is None or self.cost is None else self.cost + cost


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def safe_endpoint(base_url: str) -> str:
    """The endpoint as recorded in provenance: without credentials, query or fragment."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _trim(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def run_items(items: Sequence[WorkItem], client: GenerationClient, acceptor: Acceptor, rows: AppendOnlyJsonl,
              failures: AppendOnlyJsonl, *, settings: RunSettings, task: str, prices: PriceTable,
              on_progress: Callable[[int, int, float | None, int], None] | None = None) -> RunSummary:
    """Generate every item of `items` not yet in `rows` (both files open); see the module docstring."""
    started = time.perf_counter()
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        raise ValueError("work items must have distinct ids")
    todo = [item for item in items if item.id not in rows]
    summary = RunSummary(planned=len(items), skipped=len(items) - len(todo))
    summary.usage = Usage(cost_usd=0.0 if prices.price_for(client.model) is not None else None)
    states = {item.id: _ItemState(list(item.messages)) for item in todo}
    json_on = settings.json_mode != "off"
    progress = on_progress or (lambda done, total, cost, failed: None)
    done = 0
    progress(0, len(todo), summary.usage.cost_usd, 0)

    def fail(item: WorkItem, state: _ItemState, reason: str, detail: str, answer: str | None, final: bool) -> None:
        failures.append({
            "id": item.id, "task": task, "final": final, "attempt": state.requests, "reason": reason,
            "detail": _trim(client.redact(detail), _SHOWN_DETAIL),
            "answer": _trim(answer, _SHOWN_ANSWER) if answer is not None else None,
            "model": client.model, "endpoint": safe_endpoint(client.base_url), "created": utc_now(),
            "prompt_tokens": state.prompt_tokens, "completion_tokens": state.completion_tokens,
            "cost_usd": state.cost, **({"rewrite_prompt": item.fields["rewrite_prompt"]}
                                       if "rewrite_prompt" in item.fields else {})})
        summary.reasons[reason] += 1
        if final:
            summary.failed += 1

    pending = list(todo)
    while pending:
        batch, pending = pending, []
        response_format = settings.response_format(json_on)
        outcomes = client.complete_many([states[item.id].messages for item in batch],
                                        **settings.request_options(), response_format=response_format)
        unanswered = set(range(len(batch)))
        for index, outcome in outcomes:
            unanswered.discard(index)
            item = batch[index]
            state = states[item.id]
            if isinstance(outcome, ChatRequestError):
                if (response_format is not None and settings.json_mode == "auto" and not state.fell_back
                        and outcome.status_code in (400, 422)):
                    log.warning("%s rejected a request with response_format (%s); JSON mode is off for the "
                                "rest of this run", client.base_url, outcome)
                    json_on, state.fell_back, summary.json_fallback = False, True, True
                    # stop sending the field at once: requests not started yet go again without it
                    outcomes.close()
                    pending.append(item)
                    pending.extend(batch[i] for i in sorted(unanswered))
                    break
                fail(item, state, "request_failed", str(outcome), None, final=True)
                done += 1
                progress(done, len(todo), summary.usage.cost_usd, summary.failed)
                continue
            if isinstance(outcome, Exception):
                raise outcome  # not the endpoint's failure: a bug must surface
            cost = prices.cost(client.model, outcome.prompt_tokens, outcome.completion_tokens)
            state.add_usage(outcome, cost)
            summary.usage += Usage.of_request(outcome.prompt_tokens, outcome.completion_tokens, cost)
            answer = client.redact(outcome.text)
            try:
                if outcome.finish_reasons[:1] == ["length"]:
                    raise InvalidGeneration("truncated", f"the answer was cut off at the token limit (max_tokens "
                                                         f"{settings.max_tokens}), so it is incomplete; a shorter "
                                                         "answer fits")
                generated = acceptor.accept(item, answer)
            except InvalidGeneration as invalid:
                summary.invalid_answers += 1
                state.rejected += 1
                final = state.rejected > settings.invalid_retries
                fail(item, state, invalid.reason, invalid.detail, answer, final=final)
                if final:
                    done += 1
                    progress(done, len(todo), summary.usage.cost_usd, summary.failed)
                else:
                    # a cut-off answer is asked for afresh, never shown back: a model continues what it is
                    # shown (Gemma-3-270m repeated a cut-off answer word for word in 4 of 4 such retries)
                    correction = None if invalid.reason == "truncated" else acceptor.correction(item, invalid)
                    if correction is not None:
                        state.messages = [*state.messages, {"role": "assistant", "content": _trim(answer, _SHOWN_ANSWER)},
                                          {"role": "user", "content": correction}]
                    pending.append(item)
                continue
            merged = {**item.fields, **generated}
            row = {"id": item.id, **{k: merged.pop(k) for k in KAGGLE_ORDER if k in merged}, **merged, "provenance": {
                "task": task, "model": client.model, "endpoint": safe_endpoint(client.base_url), **item.provenance,
                "temperature": settings.temperature, "max_tokens": settings.max_tokens,
                **({"stop": list(settings.stop)} if settings.stop else {}),
                "json_mode": response_format is not None, "requests": state.requests,
                "prompt_tokens": state.prompt_tokens, "completion_tokens": state.completion_tokens,
                "cost_usd": state.cost, "latency_s": round(state.latency_s, 3), "created": utc_now()}}
            rows.append(row)
            summary.written += 1
            done += 1
            progress(done, len(todo), summary.usage.cost_usd, summary.failed)
    summary.seconds = time.perf_counter() - started
    return summary
