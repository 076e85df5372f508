"""What a generation run would cost, before it runs (prices: `harness.pricing.PriceTable`).

Before a run, `estimate_tokens` counts ~4 characters per token of the messages that will be sent
(English text with a BPE tokenizer); completions are estimated twice: a typical length and the
`max_tokens` cap, so a dry run shows both the likely cost and the worst case.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from harness.pricing import PriceTable

CHARS_PER_TOKEN = 4.0
#: tokens a chat template adds around each message (role markers, separators)
TOKENS_PER_MESSAGE = 4


def estimate_tokens(messages: Sequence[Mapping[str, str]]) -> int:
    """Prompt tokens of a conversation, roughly (see the module docstring)."""
    return sum(TOKENS_PER_MESSAGE + math.ceil(len(str(m.get("content", ""))) / CHARS_PER_TOKEN) for m in messages)


def text_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass(frozen=True)
class Estimate:
    """What a run would send: requests and tokens, and their cost (None when the model has no price)."""

    requests: int
    prompt_tokens: int
    completion_tokens_typical: int
    completion_tokens_max: int | None
    cost_typical: float | None
    cost_max: float | None
    price_source: str = ""

    def lines(self, model: str) -> list[str]:
        cap = f"{self.completion_tokens_max:,}" if self.completion_tokens_max is not None else "no cap (max_tokens unset)"
        lines = [f"requests: {self.requests:,}",
                 f"prompt tokens (estimated): {self.prompt_tokens:,}",
                 f"completion tokens: typical {self.completion_tokens_typical:,}, at most {cap}"]
        if self.cost_typical is None:
            lines.append(f"cost: unknown: no price for {model!r} in {self.price_source} (add it there, or pass --prices FILE)")
        else:
            most = f"${self.cost_max:,.4f}" if self.cost_max is not None else "unbounded (set --max-tokens)"
            lines.append(f"cost: typical ${self.cost_typical:,.4f}, at most {most}")
        return lines


def estimate(conversations: Sequence[Sequence[Mapping[str, str]]], typical_completion: Sequence[int],
             max_tokens: int | None, model: str, prices: PriceTable) -> Estimate:
    """The cost of sending `conversations` once each (retries of invalid answers come on top)."""
    prompt = sum(estimate_tokens(c) for c in conversations)
    typical = sum(min(t, max_tokens) if max_tokens else t for t in typical_completion)
    most = max_tokens * len(conversations) if max_tokens else None
    return Estimate(len(conversations), prompt, typical, most, prices.cost(model, prompt, typical),
                    prices.cost(model, prompt, most) if most is not None else None, prices.source)
