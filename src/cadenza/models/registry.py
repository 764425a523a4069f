"""Model strings (``provider:name``) resolve to models through explicit registration.

Providers register a factory under a name; nothing is imported from dotted
strings. Later providers (Anthropic, OpenAI) register themselves here as extras.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._errors import UnknownModelError
from .base import Model

__all__ = ("ModelFactory", "available_providers", "register_provider", "resolve_model")

ModelFactory = Callable[[str, dict[str, Any]], Model]
"""Builds a model from the part after ``provider:`` and provider options."""

_factories: dict[str, ModelFactory] = {}


def register_provider(provider: str, factory: ModelFactory, *, replace: bool = False) -> None:
    """Make ``provider:NAME`` model strings resolve through ``factory``."""
    if provider in _factories and not replace:
        raise ValueError(f"model provider {provider!r} is already registered")
    _factories[provider] = factory


def available_providers() -> list[str]:
    """Registered provider names, sorted."""
    _ensure_builtins()
    return sorted(_factories)


def resolve_model(spec: str | Model, options: dict[str, Any] | None = None) -> Model:
    """Turn a model string (or a ready model) into a model.

    ``simulated`` alone means ``simulated:default``.

    Raises:
        UnknownModelError: the provider is not registered; the message lists those that are.
    """
    if not isinstance(spec, str):
        return spec
    _ensure_builtins()
    provider, _, name = spec.partition(":")
    factory = _factories.get(provider)
    if factory is None:
        known = ", ".join(sorted(_factories))
        raise UnknownModelError(f"unknown model provider {provider!r} in model {spec!r}; known providers: {known}")
    return factory(name or "default", dict(options or {}))


def _ensure_builtins() -> None:
    if "simulated" not in _factories:
        from . import simulated  # registers itself

        del simulated
