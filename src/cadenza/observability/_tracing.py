"""OpenTelemetry spans for runs, plans, steps, agents, model calls and tool calls (GenAI semantic conventions).

cadenza depends on ``opentelemetry-api`` only; an application that installs the SDK and sets a
tracer provider (or sets the ``OTEL_*`` variables with an exporter) gets the spans. Until a
provider is set, the API's tracer is a proxy that records nothing, and cadenza skips building
spans and their attributes altogether, so tracing costs nothing when it is off.

Prompt and completion text are recorded only when the user opts in (``CADENZA_TRACE_CONTENT=1``
or the GenAI conventions' ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``); otherwise
attributes carry names, ids, models, tokens and cost, never what was said. Trace context travels inside the signed message envelope (W3C ``traceparent``), so work
done in another process joins its run's trace.

The OpenTelemetry API itself is imported only once tracing is on: an application that sets a tracer
provider has imported it already, so until then `enabled` answers from ``sys.modules`` and
``from cadenza import Agent`` does not pay for loading it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Literal, Protocol

from .._errors import ConfigError
from .._version import __version__

__all__ = ("attach_context", "capture_content", "carrier", "enabled", "export_configured", "export_to", "fail", "record_content", "record_outcome", "record_usage",
           "span")

_PROVIDER_FROM_ENV = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ
_TRACE_API = "opentelemetry.trace"


class Span(Protocol):
    """What cadenza does with a span: an OpenTelemetry span, or the stand-in used while tracing is off."""

    def is_recording(self) -> bool: ...

    def set_attribute(self, key: str, value: Any) -> None: ...

    def set_status(self, status: Any, description: str | None = None) -> None: ...


class _NotRecording:
    """The span of a run without tracing: records nothing (so the `record_*` functions return at once)."""

    def is_recording(self) -> bool:
        return False

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def set_status(self, status: Any, description: str | None = None) -> None:
        pass


_OFF: AbstractContextManager[Span] = nullcontext(_NotRecording())
_UNTRACED: AbstractContextManager[None] = nullcontext()


def enabled() -> bool:
    """Whether an application set a tracer provider (until then the API only hands out a proxy).

    Asked several times a step, so it reads the API's global first (a provider is set at most
    once per process) rather than going through `trace.get_tracer_provider`, which looks up the
    environment on every call. A process that never imported the API cannot have set a provider.
    """
    api = sys.modules.get(_TRACE_API)
    if not _PROVIDER_FROM_ENV and getattr(api, "_TRACER_PROVIDER", None) is None:
        return False
    from opentelemetry import trace

    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def span(name: str, attributes: Mapping[str, Any] | None = None, *,
         kind: Literal["internal", "client"] = "internal") -> AbstractContextManager[Span]:
    """A span around the body, current inside it; a failure in the body marks it as an error.

    When tracing is off this is a shared no-op context, without touching the API (call sites on the
    hot path check `enabled` first, so as not to build the name and attributes either).
    """
    if not enabled():
        return _OFF
    from opentelemetry import trace

    tracer = trace.get_tracer("cadenza", __version__)
    return tracer.start_as_current_span(name, kind=trace.SpanKind.CLIENT if kind == "client" else trace.SpanKind.INTERNAL,
                                        attributes=_clean(attributes), record_exception=True,
                                        set_status_on_exception=True)


def record_outcome(current: Span, result: Any) -> None:
    """Mark ``current`` failed when ``result`` (a Result or RunResult, which fail as data) is a failure."""
    if result.status == "failure" and result.error is not None:
        fail(current, result.error.type, result.error.message)


def fail(current: Span, error_type: str, message: str) -> None:
    """Mark ``current`` as failed with ``error.type`` (for failures that come back as data, not exceptions)."""
    if current.is_recording():
        from opentelemetry.trace import Status, StatusCode

        current.set_attribute("error.type", error_type)
        current.set_status(Status(StatusCode.ERROR, message))


def record_usage(current: Span, usage: Any, *, response_model: str | None = None) -> None:
    """Token counts and cost on ``current`` (GenAI names, plus cadenza's cache tokens and cost)."""
    if not current.is_recording():
        return
    current.set_attribute("gen_ai.usage.input_tokens", usage.input_tokens + usage.cache_read_tokens
                          + usage.cache_write_tokens)
    current.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens)
    current.set_attribute("cadenza.usage.cache_read_tokens", usage.cache_read_tokens)
    current.set_attribute("cadenza.usage.cache_write_tokens", usage.cache_write_tokens)
    current.set_attribute("cadenza.usage.cost_usd", usage.cost_usd)
    if response_model:
        current.set_attribute("gen_ai.response.model", response_model)


def capture_content() -> bool:
    """Whether the user opted in to recording prompts and completions on spans."""
    import os

    return (os.environ.get("CADENZA_TRACE_CONTENT", "").lower() in ("1", "true", "yes")
            or os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "").lower() == "true")


def record_content(current: Span, request: Any, response: Any) -> None:
    """The request's system prompt and messages and the response's text and tool calls, when opted in."""
    if not current.is_recording() or not capture_content():
        return
    import json

    current.set_attribute("gen_ai.system_instructions", request.system)
    current.set_attribute("gen_ai.input.messages", json.dumps([m.model_dump(mode="json") for m in request.messages]))
    current.set_attribute("gen_ai.output.messages", json.dumps({
        "text": response.text, "tool_calls": [c.model_dump(mode="json") for c in response.tool_calls]}))


def carrier() -> dict[str, str] | None:
    """The current trace context as W3C headers (``traceparent``), for an envelope; None when tracing is off."""
    if not enabled():
        return None
    from opentelemetry.propagate import inject

    headers: dict[str, str] = {}
    inject(headers)
    return headers or None


def attach_context(headers: Mapping[str, str] | None) -> AbstractContextManager[None]:
    """Run the body in the trace context ``headers`` carry (from an envelope), so its spans join that trace."""
    if not headers or not enabled():
        return _UNTRACED
    return _attached(headers)


@contextmanager
def _attached(headers: Mapping[str, str]) -> Iterator[None]:
    from opentelemetry import context as otel_context
    from opentelemetry.propagate import extract

    token = otel_context.attach(extract(dict(headers)))
    try:
        yield
    finally:
        otel_context.detach(token)


_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def export_configured() -> bool:
    """Whether the ``OTEL_EXPORTER_OTLP_*`` variables say where to export spans (a worker process inherits them)."""
    return any(os.environ.get(name) for name in _ENDPOINT_VARIABLES)


def export_to(endpoint: str | None) -> Callable[[], None]:
    """Export spans over OTLP/HTTP to ``endpoint`` (``http://localhost:4318``; None: the ``OTEL_EXPORTER_OTLP_*``
    variables say where); returns the function that flushes and shuts the exporter down at exit.

    An endpoint given here is also written to ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, so the worker processes this
    process starts (the process backend) export their agents' spans to the same place.

    Raises:
        ConfigError: the SDK or the OTLP exporter is not installed (``pip install 'cadenza[otel]'``).
    """
    from opentelemetry import trace

    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ModuleNotFoundError:
        raise ConfigError("exporting traces needs the OpenTelemetry SDK and OTLP exporter: "
                          "pip install 'cadenza[otel]'") from None
    traces = None if endpoint is None else endpoint.rstrip("/") + ("" if endpoint.endswith("/v1/traces")
                                                                    else "/v1/traces")
    if traces is not None:
        os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = traces
    provider = TracerProvider(resource=Resource.create({"service.name": "cadenza"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces)))
    trace.set_tracer_provider(provider)
    return provider.shutdown


def _clean(attributes: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not attributes:
        return None
    return {k: v for k, v in attributes.items() if v is not None}
