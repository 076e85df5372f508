"""What generation costs: a price table (USD per million tokens, from a TOML file) and estimates.

Prices change and differ per vendor, so they are configuration (`fixtures/prices.toml`, or any file
given with `--prices`), never constants in code. A model is matched exactly, else by the longest
listed name it starts with followed by "-" ("gpt-4o-2024-08-06" → "gpt-4o"). An unknown model costs
"unknown", never a silent zero.

Before a run, `estimate_tokens` counts ~4 characters per token of the messages that will be sent
(English text with a BPE tokenizer); completions are estimated twice: a typical length and the
`max_tokens` cap, so a dry run shows both the likely cost and the worst case.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ConfigError
from harness.pricing import Price  # noqa: F401  (re-exported: part of this module's API)
from harness.tomlfile import read_toml

PRICES_FILE_NAME = Path("fixtures") / "prices.toml"
CHARS_PER_TOKEN = 4.0
#: tokens a chat template adds around each message (role markers, separators)
TOKENS_PER_MESSAGE = 4


@dataclass(frozen=True)
class PriceTable:
    prices: Mapping[str, Price] = field(default_factory=dict)
    source: str = "(none)"

    def price_for(self, model: str) -> Price | None:
        if model in self.prices:
            return self.prices[model]
        prefixes = [name for name in self.prices if model.startswith(name + "-")]
        return self.prices[max(prefixes, key=len)] if prefixes else None

    def cost(self, model: str, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
        """USD for this usage; None when the model has no price or the server reported no usage."""
        price = self.price_for(model)
        if price is None or prompt_tokens is None or completion_tokens is None:
            return None
        return price.cost(prompt_tokens, completion_tokens)


def default_prices_path() -> Path | None:
    """fixtures/prices.toml of the working directory, else of this checkout; None when neither exists."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (root / PRICES_FILE_NAME).is_file():
            return root / PRICES_FILE_NAME
    return None


def load_prices(path: str | Path | None) -> PriceTable:
    """Read `[models."NAME"] input_per_million = …, output_per_million = …` tables."""
    if path is None:
        return PriceTable()
    path = Path(path)
    data = read_toml(path, "prices file")
    models = data.get("models")
    if not isinstance(models, dict):
        raise ConfigError(f"{path}: expected a [models.\"NAME\"] table per model")
    prices = {}
    for name, entry in models.items():
        where = f"{path}: models.{name}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a table with input_per_million and output_per_million")
        values = []
        for key in ("input_per_million", "output_per_million"):
            value = entry.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{where}, key '{key}': a number >= 0 (USD per million tokens) is required, "
                                  f"got {value!r}")
            values.append(float(value))
        prices[str(name)] = Price(*values)
    return PriceTable(prices, str(path))


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
