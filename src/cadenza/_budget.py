"""What a run, a team or an agent may spend, as a value: a spec carries it, the engine's accounts enforce it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ("Budget",)


class Budget(BaseModel):
    """The most a run, a team or an agent may spend; None for no limit of that kind."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tokens: int | None = Field(default=None, gt=0)
    """Every token counted (input, output, cache reads and writes)."""
    usd: float | None = Field(default=None, gt=0)
