"""Token and money accounting for the OPRO loop, on top of the project's one client.

`ChatResult` carries the tokens a server reports, but a `ChatCandidate` does not pass them on (it
returns prompts), so the loop could not see what evaluating a proposal cost. `MeteredChatClient` is a
`ChatClient` (same retries, concurrency, preflight, secrecy) that adds up the usage of every completion
it makes; the loop gives one to each proposer and to the target candidate and stops when the sums pass
its budget. Cached predictions make no request and therefore cost nothing here, as they should.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigError
from harness.llm import ChatClient, ChatResult, Message
from harness.pricing import FREE, Price  # noqa: F401  (Price is re-exported: part of this module's API)


@dataclass(frozen=True)
class Usage:
    """What a client spent: requests made, tokens reported, requests whose server reported no usage."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    unreported: int = 0
    cost_usd: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.requests + other.requests, self.prompt_tokens + other.prompt_tokens,
                     self.completion_tokens + other.completion_tokens, self.unreported + other.unreported,
                     self.cost_usd + other.cost_usd)

    def to_dict(self) -> dict:
        return {"requests": self.requests, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "tokens": self.tokens,
                "unreported_usage_requests": self.unreported, "cost_usd": self.cost_usd}


class MeteredChatClient(ChatClient):
    """A ChatClient that meters the usage of its completions (thread-safe) at `price`."""

    def __init__(self, *args: Any, price: Price = FREE, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.price = price
        self._meter_lock = threading.Lock()
        self._usage = Usage()

    @classmethod
    def like(cls, client: ChatClient, price: Price = FREE) -> MeteredChatClient:
        """A metered client with `client`'s endpoint, model, key variable and request policy."""
        return cls(client.base_url, client.model, client.api_key_env, client.timeout, client.max_retries,
                   client.max_concurrency, backoff_initial=client.backoff_initial, backoff_max=client.backoff_max,
                   max_retry_after=client.max_retry_after, preflight_timeout=client.preflight_timeout, price=price)

    @property
    def usage(self) -> Usage:
        with self._meter_lock:
            return self._usage

    def complete(self, messages: Sequence[Message], **kwargs: Any) -> ChatResult:
        result = super().complete(messages, **kwargs)
        prompt, completion = result.prompt_tokens or 0, result.completion_tokens or 0
        spent = Usage(1, prompt, completion, int(result.prompt_tokens is None and result.completion_tokens is None),
                      self.price.cost(prompt, completion))
        with self._meter_lock:
            self._usage = self._usage + spent
        return result


def parse_price(text: str) -> tuple[str, Price]:
    """'MODEL=IN,OUT' (USD per million input and output tokens) → (MODEL, Price)."""
    model, sep, numbers = text.rpartition("=")
    parts = numbers.split(",")
    try:
        if not sep or not model.strip() or len(parts) != 2:
            raise ValueError
        return model.strip(), Price(float(parts[0]), float(parts[1]))
    except ValueError:
        raise ConfigError(f"--price must be MODEL=IN,OUT in USD per million tokens (e.g. gpt-4o=2.5,10), "
                          f"got {text!r}") from None
