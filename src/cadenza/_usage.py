"""What work cost, as a value: below the messages that carry it and the errors that report it."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

__all__ = ("Usage",)


class Usage(BaseModel):
    """What work cost: tokens, model calls and money. Adds up across agents and teams."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_tokens: int = Field(default=0, ge=0)
    """Prompt tokens billed at the full input price (cache reads excluded)."""
    output_tokens: int = Field(default=0, ge=0)
    """Completion tokens."""
    cache_read_tokens: int = Field(default=0, ge=0)
    """Prompt tokens served from the provider's prompt cache."""
    cache_write_tokens: int = Field(default=0, ge=0)
    """Prompt tokens written to the provider's prompt cache."""
    model_calls: int = Field(default=0, ge=0)
    """Requests made to a model."""
    cost_usd: float = Field(default=0.0, ge=0.0)
    """Money spent, in US dollars, as priced when the call was made."""

    @property
    def total_tokens(self) -> int:
        """Every token counted, whatever its price."""
        return self.input_tokens + self.output_tokens + self.cache_read_tokens + self.cache_write_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage.sum((self, other))

    @classmethod
    def sum(cls, usages: Iterable[Usage]) -> Usage:
        """All of ``usages`` added up, building one object rather than one per addition."""
        inp = out = cache_read = cache_write = calls = 0
        cost = 0.0
        for u in usages:
            inp += u.input_tokens
            out += u.output_tokens
            cache_read += u.cache_read_tokens
            cache_write += u.cache_write_tokens
            calls += u.model_calls
            cost += u.cost_usd
        return cls(input_tokens=inp, output_tokens=out, cache_read_tokens=cache_read,
                   cache_write_tokens=cache_write, model_calls=calls, cost_usd=cost)
