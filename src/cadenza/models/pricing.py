"""What a model call costs: a table of prices per million tokens, shipped as data and overridable.

Prices change more often than code, so they live in ``data/prices.json`` and a workflow file
(``prices:``) or `Prices.override` can replace or add any entry. A model with no price is
*unpriced*, not free: its calls cost 0.0 in the records, and a USD budget refuses to run it
(`Prices.require`), since it could not be enforced.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._errors import ConfigError
from .._usage import Usage

__all__ = ("PRICES", "Price", "Prices")

_PER_TOKEN = 1e-6


class Price(BaseModel):
    """USD per million tokens of each kind."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_read: float | None = Field(default=None, ge=0)
    """None: cache reads cost the input price."""
    cache_write: float | None = Field(default=None, ge=0)
    """None: cache writes cost the input price."""

    def cost(self, usage: Usage) -> float:
        """USD for ``usage`` (its ``cost_usd`` is ignored)."""
        read = self.input if self.cache_read is None else self.cache_read
        write = self.input if self.cache_write is None else self.cache_write
        return (usage.input_tokens * self.input + usage.output_tokens * self.output
                + usage.cache_read_tokens * read + usage.cache_write_tokens * write) * _PER_TOKEN

    def worst_case(self, input_tokens: int, max_output_tokens: int) -> float:
        """The most a call can cost: every input token uncached (or cache-written, if dearer), every output token."""
        dearest_input = max(self.input, self.cache_write or 0.0)
        return (input_tokens * dearest_input + max_output_tokens * self.output) * _PER_TOKEN


class Prices:
    """Prices by ``provider:model`` prefix; the longest matching prefix wins."""

    def __init__(self, table: Mapping[str, Price] | None = None) -> None:
        self._table: dict[str, Price] = dict(table or {})

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], *, where: str) -> Prices:
        """Build from plain data (``{"openai:gpt-5": {"input": 1.25, "output": 10}}``).

        Raises:
            ConfigError: an entry that is not a price, naming ``where`` and the key.
        """
        table: dict[str, Price] = {}
        for key, value in raw.items():
            if key.startswith("_"):
                continue
            try:
                table[key] = Price.model_validate(value)
            except ValidationError as exc:
                problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors())
                raise ConfigError(f"{where}: price of {key!r}: {problems}") from None
        return cls(table)

    @classmethod
    def option(cls, value: object, *, where: str) -> Prices:
        """A model's ``prices`` option: a `Prices` table, or a mapping as in a workflow file's ``prices:``.

        Raises:
            ConfigError: anything else, or a mapping that is not prices.
        """
        if isinstance(value, Prices):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: prices must be a mapping of model prefix to price, not {value!r}")
        return PRICES.override(cls.from_mapping(value, where=where))

    def override(self, other: Prices | Mapping[str, Price]) -> Prices:
        """A new table: this one with ``other``'s entries replacing or adding to it."""
        extra = other._table if isinstance(other, Prices) else dict(other)
        return Prices({**self._table, **extra})

    def lookup(self, model: str) -> Price | None:
        """The price of ``model`` (``provider:name``), or None when it is unpriced."""
        best: str | None = None
        for key in self._table:
            if model.startswith(key) and (best is None or len(key) > len(best)):
                best = key
        return None if best is None else self._table[best]

    def cost(self, model: str, usage: Usage) -> float:
        """USD for ``usage`` on ``model``; 0.0 when the model is unpriced."""
        price = self.lookup(model)
        return 0.0 if price is None else price.cost(usage)

    def require(self, model: str, *, why: str) -> Price:
        """The price of ``model``, or a `ConfigError` saying it has none and what needs one."""
        price = self.lookup(model)
        if price is None:
            raise ConfigError(
                f"model {model!r} has no price, and {why} needs one: add it under 'prices:' in the workflow "
                f"file (input, output, cache_read, cache_write: USD per million tokens)"
            )
        return price

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and self.lookup(model) is not None


def _shipped() -> Prices:
    text = resources.files("cadenza.models").joinpath("data/prices.json").read_text(encoding="utf-8")
    return Prices.from_mapping(json.loads(text), where="cadenza/models/data/prices.json")


PRICES = _shipped()
"""The shipped table. Adapters price their calls with the table they were given, this one by default."""
