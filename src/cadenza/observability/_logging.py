"""Structured logs: every line of a run carries its run, step, agent and trace ids.

cadenza logs through the standard `logging` module under the ``cadenza`` logger, so an
application routes and filters it as it does everything else. Two pieces make the lines
useful for a team of agents:

- `CorrelationFilter` stamps each record with the ids of where it was logged: the run, team
  scope, step, agent and task that the runtime passes with each line of a step (`step_fields`
  of its `StepContext`; no context variable finds them), and the trace and span ids of the
  current OpenTelemetry span.
- `EventLog` turns the run's events into log lines at levels that make sense: a step retried
  or failed is a warning, a failed run an error, progress is info. Pass it (or `log_events`)
  as a run's event sink, or beside another one with `fan_out`.

`configure` sets up a handler for programs that have none (the CLI does: ``--log-format
json`` for machines, a readable line for people).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TextIO

if TYPE_CHECKING:
    from .._step_context import StepContext

__all__ = ("CorrelationFilter", "EventLog", "JsonFormatter", "TextFormatter", "configure", "fan_out", "logger",
           "step_fields")

logger = logging.getLogger("cadenza")
"""The root of cadenza's loggers; runtime modules log under ``cadenza.<module>``."""

LogFormat = Literal["text", "json"]
_IDS = ("run_id", "task_id", "team", "step", "agent", "trace_id", "span_id")


class CorrelationFilter(logging.Filter):
    """Adds ``run_id``, ``task_id``, ``team``, ``step``, ``agent``, ``trace_id`` and ``span_id`` to each record.

    Values a caller passed in ``extra=`` (`step_fields`) win; the trace ids come from the current span.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        found: dict[str, str | None] = {name: None for name in _IDS}
        trace_id, span_id = _span_ids()
        found.update(trace_id=trace_id, span_id=span_id)
        for name, value in found.items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        return True


def step_fields(ctx: StepContext) -> dict[str, str]:
    """The ids of a step for a log line's ``extra=``: its run, team, step, agent and task."""
    return {"run_id": ctx.run_id, "team": ctx.team, "step": ctx.step_id, "agent": ctx.agent, "task_id": ctx.task_id}


def _span_ids() -> tuple[str | None, str | None]:
    try:
        from opentelemetry import trace
    except ImportError:  # pragma: no cover - opentelemetry-api is a dependency
        return None, None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None, None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the ids, and any ``extra=`` fields given."""

    _STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _IDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        for name, value in vars(record).items():
            if name not in self._STANDARD and name not in _IDS and not name.startswith("_"):
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``21:05:01 WARNING lead/s2 (writer): step retried ...  [run_1a2b trace 4bf9...]`` for people."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        where = "/".join(p for p in (getattr(record, "team", None), getattr(record, "step", None)) if p)
        agent = getattr(record, "agent", None)
        who = f"{where} ({agent})" if where and agent else where or (agent or "")
        ids = [str(getattr(record, "run_id", None) or "")]
        trace_id = getattr(record, "trace_id", None)
        if trace_id:
            ids.append(f"trace {trace_id[:8]}")
        tail = f"  [{' '.join(i for i in ids if i)}]" if any(ids) else ""
        text = f"{when} {record.levelname:<7} {who + ': ' if who else ''}{record.getMessage()}{tail}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure(format: LogFormat = "text", *, level: int | str = logging.WARNING, stream: TextIO | None = None) -> None:
    """Send cadenza's logs to ``stream`` (stderr) as ``format``, from ``level`` up; replaces an earlier call's handler."""
    for old in [h for h in logger.handlers if getattr(h, "_cadenza", False)]:
        logger.removeHandler(old)
    handler: logging.Handler = logging.StreamHandler(stream) if stream is not None else _Stderr()
    handler._cadenza = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if format == "json" else TextFormatter())
    handler.addFilter(CorrelationFilter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


class _Stderr(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (a test runner or a live display may have replaced it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


_events = logging.getLogger("cadenza.run")


class EventLog:
    """An event sink that logs each event of a run with its ids, at a level that fits what happened."""

    def __call__(self, event: Any) -> None:
        kind = type(event).__name__
        render = _RENDER.get(kind)
        if render is None:
            return
        level, message = render(event)
        if not _events.isEnabledFor(level):
            return
        extra = {"run_id": event.run_id, "team": event.team, "event": kind,
                 "step": getattr(event, "step_id", None), "agent": getattr(event, "agent", None)}
        _events.log(level, message, extra=extra)


def _error_text(event: Any) -> str:
    error: Any = getattr(event, "error", None) or getattr(event, "reason", None)
    return f"{error.type}: {error.message}" if hasattr(error, "type") else str(error)


_RENDER: dict[str, Callable[[Any], tuple[int, str]]] = {
    "RunStarted": lambda e: (logging.INFO, f"run started: {e.goal!r}"),
    "PlanReady": lambda e: (logging.INFO, f"plan ready ({e.source}): {len(e.plan.steps)} steps"),
    "AgentSpawned": lambda e: (logging.INFO, f"agent spawned: {e.proposal.name}"),
    "StepStarted": lambda e: (logging.DEBUG, f"step started (attempt {e.attempt})"),
    "StepRetrying": lambda e: (logging.WARNING,
                               f"step failed, retrying in {e.delay:.2f}s (attempt {e.attempt}): {_error_text(e)}"),
    "StepFinished": lambda e: (logging.INFO, f"step {e.status} in attempt {e.attempt}, "
                                             f"{e.usage.total_tokens} tokens, ${e.usage.cost_usd:.4f}"),
    "StepFailed": lambda e: (logging.WARNING, f"step failed after {e.attempt} attempt(s): {_error_text(e)}"),
    "StepWaiting": lambda e: (logging.WARNING, f"step waits for a human decision: {_error_text(e)}"),
    "StepSkipped": lambda e: (logging.INFO, f"step skipped: {e.reason}"),
    "StepCancelled": lambda e: (logging.WARNING, "step cancelled"),
    "RunFinished": lambda e: (logging.ERROR if e.status == "failure" else logging.INFO,
                              f"run finished: {e.status}, {e.usage.total_tokens} tokens, ${e.usage.cost_usd:.4f}"),
}


def fan_out(*sinks: Callable[[Any], None] | None) -> Callable[[Any], None]:
    """One event sink that hands each event to every given sink (None ones are left out)."""
    chosen: Iterable[Callable[[Any], None]] = tuple(s for s in sinks if s is not None)

    def each(event: Any) -> None:
        for sink in chosen:
            sink(event)

    return each
