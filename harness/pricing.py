"""What model calls cost and what they spent: one home for prices and token accounting, shared by data
generation and prompt optimization.

- `Price`: US dollars per million prompt and completion tokens (`parse_price` reads `MODEL=IN,OUT`).
- `PriceTable`: prices per model from a TOML file. Prices change and differ per vendor, so they are
  configuration (`fixtures/prices.toml`, or any file given with `--prices`), never constants in code. A
  model is matched exactly, else by the longest listed name it starts with followed by "-"
  ("gpt-4o-2024-08-06" → "gpt-4o"). An unknown model costs "unknown", never a silent zero.
- `Usage`: requests, reported tokens and cost, added up (`+`); a cost of None (unknown) stays unknown.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ConfigError
from harness.tomlfile import read_toml

PRICES_FILE_NAME = Path("fixtures") / "prices.toml"


@dataclass(frozen=True)
class Price:
    """US dollars per million prompt (input) and completion (output) tokens; zero means unpriced/free."""

    input_per_million: float = 0.0
    output_per_million: float = 0.0

    def __post_init__(self) -> None:
        if self.input_per_million < 0 or self.output_per_million < 0:
            raise ConfigError(f"prices must be >= 0, got {self.input_per_million:g}/{self.output_per_million:g}")

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_million + completion_tokens * self.output_per_million) / 1e6


#: The price of a local or unpriced model.
FREE = Price()


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


@dataclass(frozen=True)
class PriceTable:
    """Prices by model name (see the module docstring for how a name is matched)."""

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
    for root in (Path.cwd(), Path(__file__).resolve().parents[1]):
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


@dataclass(frozen=True)
class Usage:
    """What model calls spent: requests answered, the tokens their servers reported, the requests whose
    server reported no usage, and the cost in USD (None: unknown, e.g. the model has no price)."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    unreported: int = 0
    cost_usd: float | None = 0.0

    @classmethod
    def of_request(cls, prompt_tokens: int | None, completion_tokens: int | None, cost_usd: float | None) -> Usage:
        """One answered request, as its server reported it (None: not reported), at `cost_usd`."""
        return cls(1, prompt_tokens or 0, completion_tokens or 0,
                   int(prompt_tokens is None and completion_tokens is None), cost_usd)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        cost = None if self.cost_usd is None or other.cost_usd is None else self.cost_usd + other.cost_usd
        return Usage(self.requests + other.requests, self.prompt_tokens + other.prompt_tokens,
                     self.completion_tokens + other.completion_tokens, self.unreported + other.unreported, cost)

    def to_dict(self) -> dict:
        return {"requests": self.requests, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "tokens": self.tokens,
                "unreported_usage_requests": self.unreported, "cost_usd": self.cost_usd}
