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
from typing import Any

from harness.llm import ChatClient, ChatResult, Message
from harness.pricing import FREE, Price, Usage


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
        # the loop's budget needs a number: a request whose server reported no usage costs 0 here, and is
        # counted in `unreported`
        spent = Usage.of_request(result.prompt_tokens, result.completion_tokens,
                                 self.price.cost(result.prompt_tokens or 0, result.completion_tokens or 0))
        with self._meter_lock:
            self._usage = self._usage + spent
        return result
