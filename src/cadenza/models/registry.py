"""Model strings (``provider:name``) resolve to models through explicit registration.

Providers register a factory under a name; nothing is imported from dotted strings a
user gives. The vendor providers (``anthropic``, ``openai``, ``openai-compatible``) are
extras: their modules are imported on first use, and a missing SDK is a clear error
saying which extra to install.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from .._errors import ConfigError, UnknownModelError
from .base import Model

__all__ = ("ModelFactory", "available_providers", "register_provider", "resolve_model")

ModelFactory = Callable[[str, dict[str, Any]], Model]
"""Builds a model from the part after ``provider:`` and provider options."""

_factories: dict[str, ModelFactory] = {}

_EXTRAS: dict[str, tuple[str, str]] = {
    "anthropic": ("cadenza.models.anthropic_provider", "anthropic"),
    "openai": ("cadenza.models.openai_provider", "openai"),
    "openai-compatible": ("cadenza.models.openai_provider", "openai"),
}
"""Provider name to (the module that registers it on import, the extra that installs its SDK)."""


def register_provider(provider: str, factory: ModelFactory, *, replace: bool = False) -> None:
    """Make ``provider:NAME`` model strings resolve through ``factory``."""
    if provider in _factories and not replace:
        raise ValueError(f"model provider {provider!r} is already registered")
    _factories[provider] = factory


def available_providers() -> list[str]:
    """Registered provider names, sorted."""
    _ensure_builtins()
    return sorted({*_factories, *_EXTRAS})


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
    factory = _factories.get(provider) or _load_extra(provider, spec)
    if factory is None:
        known = ", ".join(available_providers())
        raise UnknownModelError(f"unknown model provider {provider!r} in model {spec!r}; known providers: {known}")
    return factory(name or "default", dict(options or {}))


def _load_extra(provider: str, spec: str) -> ModelFactory | None:
    """Import the module of a vendor provider, which registers it; None for a provider cadenza does not ship."""
    found = _EXTRAS.get(provider)
    if found is None:
        return None
    module, extra = found
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != extra:
            raise
        raise ConfigError(
            f"model {spec!r} needs the {extra} SDK, which is not installed: pip install 'cadenza[{extra}]'"
        ) from None
    return _factories.get(provider)


def _ensure_builtins() -> None:
    if "simulated" not in _factories:
        from . import simulated  # registers itself

        del simulated
