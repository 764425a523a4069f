"""Model strings (``provider:name``) resolve to models through explicit registration.

Providers register a factory under a name; nothing is imported from dotted strings a
user gives. The vendor providers (``anthropic``, ``openai``, ``openai-compatible``) are
extras: their modules are imported on first use, and a missing SDK is a clear error
saying which extra to install.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

from .._errors import ConfigError, UnknownModelError
from .._names import closest, did_you_mean, provider_of
from .base import Model, facts_of

__all__ = ("ModelFactory", "available_providers", "is_vendor", "meant_model", "register_provider", "resolve_model")

ModelFactory = Callable[[str, dict[str, Any]], Model]
"""Builds a model from the part after ``provider:`` and provider options."""

_factories: dict[str, ModelFactory] = {}

_EXTRAS: dict[str, tuple[str, str]] = {
    "anthropic": ("cadenza.models.anthropic_provider", "anthropic"),
    "openai": ("cadenza.models.openai_provider", "openai"),
    "openai-compatible": ("cadenza.models.openai_provider", "openai"),
}
"""Provider name to (the module that registers it on import, the extra that installs its SDK)."""

_RESILIENCE = {"max_attempts": int, "retry_initial": float, "retry_max": float,
               "breaker_threshold": int, "breaker_reset": float}
"""Options of a vendor model that configure its retries and breaker rather than the adapter."""


def register_provider(provider: str, factory: ModelFactory, *, replace: bool = False) -> None:
    """Make ``provider:NAME`` model strings resolve through ``factory``."""
    if provider in _factories and not replace:
        raise ValueError(f"model provider {provider!r} is already registered")
    _factories[provider] = factory


def available_providers() -> list[str]:
    """Registered provider names, sorted."""
    _ensure_builtins()
    return sorted({*_factories, *_EXTRAS})


def resolve_model(spec: str | Model | Sequence[str | Model], options: dict[str, Any] | None = None) -> Model:
    """Turn a model string (or a ready model, or a fallback chain of either) into a model.

    ``simulated`` alone means ``simulated:default``. A vendor model (``anthropic``, ``openai``,
    ``openai-compatible``) comes wrapped in its retries and the shared breaker of its endpoint;
    the options ``max_attempts``, ``retry_initial``, ``retry_max``, ``breaker_threshold`` and
    ``breaker_reset`` tune them. A list is a fallback chain: each model is tried in turn.

    Raises:
        UnknownModelError: the provider is not registered; the message lists those that are.
        ConfigError: a vendor SDK is not installed, a key is missing, or an option is invalid.
    """
    if not isinstance(spec, str):
        if isinstance(spec, Sequence):
            from .resilience import FallbackModel

            chain = [resolve_model(s, options) for s in spec]
            return chain[0] if len(chain) == 1 else FallbackModel(chain)
        return spec
    _ensure_builtins()
    provider, _, name = spec.partition(":")
    factory = _factories.get(provider) or _load_extra(provider, spec)
    if factory is None:
        known = ", ".join(available_providers())
        raise UnknownModelError(f"unknown model provider {provider!r} in model {spec!r}{did_you_mean(meant_model(spec))}; "
                                f"known providers: {known} (a model string is provider:model)")
    adapter_options = dict(options or {})
    resilience = {key: adapter_options.pop(key) for key in _RESILIENCE if key in adapter_options}
    model = factory(name or "default", adapter_options)
    if provider not in _EXTRAS:
        if resilience:
            raise ConfigError(f"model {spec!r}: {', '.join(resilience)} apply only to vendor models")
        return model
    return _resilient(model, spec, resilience)


def _resilient(model: Model, spec: str, options: dict[str, Any]) -> Model:
    from .resilience import ModelRetry, ResilientModel, breaker_for

    try:
        values = {key: _RESILIENCE[key](value) for key, value in options.items()}
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model {spec!r}: invalid retry or breaker option: {exc}") from None
    retry = ModelRetry(
        max_attempts=values.get("max_attempts", 4), initial=values.get("retry_initial", 0.5),
        maximum=values.get("retry_max", 30.0),
    )
    endpoint = facts_of(model)[0].endpoint or provider_of(spec)
    breaker = breaker_for(endpoint, model.name, failure_threshold=values.get("breaker_threshold", 5),
                          reset_after=values.get("breaker_reset", 30.0))
    return ResilientModel(model, retry=retry, breaker=breaker)


def is_vendor(provider: str) -> bool:
    """Whether ``provider`` is one of the vendor extras, whose adapters price their own calls."""
    return provider in _EXTRAS


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
        from .simulated._model import create

        register_provider("simulated", create)


_VENDOR_PREFIXES = (("gpt-", "openai"), ("chatgpt-", "openai"), ("o1", "openai"), ("o3", "openai"), ("o4", "openai"),
                    ("claude", "anthropic"))
"""How a bare model name shows its vendor, for a string written without its provider."""


def meant_model(spec: str) -> str | None:
    """The model string meant by ``spec``, which names no registered provider, when it is near one: a misspelt
    provider (``simulatd:fast``), another framework's ``provider/model`` (``openai/gpt-4o``), or a bare model name
    (``gpt-4o``, ``claude-sonnet-4-5``); None when no guess is good enough."""
    providers = available_providers()
    provider, colon, name = spec.partition(":")
    if colon:
        near = closest(provider, providers)
        return None if near is None else f"{near}:{name}"
    vendor, slash, rest = spec.partition("/")
    if slash and vendor in providers:
        return f"{vendor}:{rest}"
    for prefix, owner in _VENDOR_PREFIXES:
        if spec.lower().startswith(prefix):
            return f"{owner}:{spec}"
    return closest(spec, providers)  # a provider alone, misspelt: "simulatd"
