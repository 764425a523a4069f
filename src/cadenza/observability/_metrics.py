"""OpenTelemetry metrics: model calls, tokens, cost, latency, retries, breaker openings, tool calls and denials.

Through the OpenTelemetry metrics API; an application that sets a meter provider (the SDK with
a reader or an exporter) gets them. Until one is set nothing is recorded and nothing is built:
the instruments are made on first use once a provider exists. The API itself is imported only then
(an application that set a provider has imported it already).
"""

from __future__ import annotations

import os
import sys
from functools import cache
from typing import TYPE_CHECKING, Any

from .._events import ModelCalled, StepRetrying, ToolCalled
from .._names import provider_of
from .._version import __version__

if TYPE_CHECKING:
    from .._events import Event
    from .._usage import Usage

__all__ = ("MetricsSink", "breaker_opened", "enabled", "model_call", "step_retried", "tool_call")


def enabled() -> bool:
    """Whether an application set a meter provider (until then the API only hands out a proxy).

    Asked on every model call: reads the API's global first (set at most once per process); a process that never
    imported the API cannot have set a provider.
    """
    api = sys.modules.get("opentelemetry.metrics._internal")
    if getattr(api, "_METER_PROVIDER", None) is None and not _PROVIDER_FROM_ENV:
        return False
    from opentelemetry import metrics

    return type(metrics.get_meter_provider()).__name__ != "_ProxyMeterProvider"


_PROVIDER_FROM_ENV = "OTEL_PYTHON_METER_PROVIDER" in os.environ


@cache
def _instruments(provider_id: int) -> dict[str, Any]:
    from opentelemetry import metrics

    meter = metrics.get_meter("cadenza", __version__)
    return {
        "calls": meter.create_counter("cadenza.model.calls", unit="{call}", description="Model calls made"),
        "tokens": meter.create_counter("gen_ai.client.token.usage.total", unit="{token}",
                                       description="Tokens used, by gen_ai.token.type"),
        "cost": meter.create_counter("cadenza.model.cost", unit="USD", description="Money spent on model calls"),
        "latency": meter.create_histogram("gen_ai.client.operation.duration", unit="s",
                                          description="Duration of model calls"),
        "retries": meter.create_counter("cadenza.step.retries", unit="{retry}", description="Steps retried"),
        "breaker": meter.create_counter("cadenza.breaker.opened", unit="{opening}",
                                        description="Circuit breakers opened"),
        "tools": meter.create_counter("cadenza.tool.calls", unit="{call}",
                                      description="Tool calls, by outcome (ok, error, denied, ...)"),
    }


def _get() -> dict[str, Any] | None:
    if not enabled():
        return None
    from opentelemetry import metrics

    return _instruments(id(metrics.get_meter_provider()))


def model_call(model: str, usage: Usage | None, seconds: float, error: str | None) -> None:
    """One model call: its duration, and when it answered, its tokens by type and its cost."""
    found = _get()
    if found is None:
        return
    attributes = {"gen_ai.provider.name": provider_of(model), "gen_ai.request.model": model, "gen_ai.operation.name": "chat"}
    if error is not None:
        attributes["error.type"] = error
    found["calls"].add(1, attributes)
    found["latency"].record(seconds, attributes)
    if usage is None:
        return
    for kind, count in (("input", usage.input_tokens), ("output", usage.output_tokens),
                        ("cache_read", usage.cache_read_tokens), ("cache_write", usage.cache_write_tokens)):
        if count:
            found["tokens"].add(count, {**attributes, "gen_ai.token.type": kind})
    if usage.cost_usd:
        found["cost"].add(usage.cost_usd, attributes)


def step_retried(team: str, agent: str, error: str) -> None:
    found = _get()
    if found is not None:
        found["retries"].add(1, {"cadenza.team": team, "gen_ai.agent.name": agent, "error.type": error})


def breaker_opened(name: str) -> None:
    found = _get()
    if found is not None:
        found["breaker"].add(1, {"cadenza.breaker": name})


def tool_call(agent: str, tool: str, outcome: str) -> None:
    found = _get()
    if found is not None:
        found["tools"].add(1, {"gen_ai.agent.name": agent, "gen_ai.tool.name": tool, "cadenza.outcome": outcome})


class MetricsSink:
    """The metrics of a run's events: model calls, tool calls and retried steps.

    A run subscribes it when an application has set a meter provider (`enabled`), so a run without one builds
    no metric and, for the metrics alone, asks its workers for no report of their calls.
    """

    __slots__ = ()
    wants_reports = True

    def __call__(self, event: Event) -> None:
        if type(event) is ModelCalled:
            model_call(event.model, event.usage, event.seconds, event.error)
        elif type(event) is ToolCalled:
            tool_call(event.agent, event.tool, event.outcome if event.outcome in ("ok", "denied") else "error")
        elif type(event) is StepRetrying:
            step_retried(event.team, event.agent, event.error.type)
