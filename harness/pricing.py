"""What model calls cost: one price type shared by data generation and prompt optimization."""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import ConfigError


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
