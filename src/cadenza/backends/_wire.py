"""The wire between the run's process and its worker processes: JSON lines, and failures as data.

Each message is one JSON object on one line. A worker process reads its instructions on stdin
and writes on a private copy of its stdout, while anything a tool prints goes to stderr, so a
stray ``print`` cannot corrupt the protocol.

    run's process -> worker      {"op": "spec", "sid", "spec"}         an agent to rebuild, once per process
                                 {"op": "step", "id", "sid", "task", "ctx", "key", "recipient", "trace",
                                  "workspace"}                         run one attempt of one step
                                 {"op": "answer", "id", "value" | "error"}   the answer to a port request
                                 {"op": "cancel", "id"}                the step was cancelled
    worker -> run's process      {"op": "ask", "id", "step", "method", "args"}   a port request, answered
                                 {"op": "tell", "step", "method", "args"}       a port call without answer
                                 {"op": "done", "id", "result" | "envelope" | "error"}
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import TypeAdapter

from .._errors import (
    ApprovalRequired,
    BudgetExceeded,
    CadenzaError,
    ConfigError,
    StoreError,
    ToolError,
    WorkspaceConflict,
)
from .._events import ModelCalled, ModelDelta, ToolCalled, ToolStarted

__all__ = ("LINE_LIMIT", "REPORTS", "answered", "error_from", "error_of", "read", "value_from", "value_of", "write")

LINE_LIMIT = 64 * 1024 * 1024
"""The longest message (a Result with a large output, a tool's result): bigger ones are refused, not cut."""

Message = dict[str, Any]

REPORTS: dict[str, type[ModelCalled | ToolCalled]] = {"ModelCalled": ModelCalled, "ToolCalled": ToolCalled}
"""The events a worker reports to its run (``tell`` ``report``), by name; the run's own events never cross."""
PROGRESS: dict[str, type[ModelDelta | ToolStarted]] = {"ModelDelta": ModelDelta, "ToolStarted": ToolStarted}
"""The progress a worker tells its run while a sink reads it (``tell`` ``progress``), by name."""
T = TypeVar("T")


_ADAPTERS: dict[type[Any], TypeAdapter[Any]] = {}
"""A validator per type of value, made once: building one costs far more than using it."""


def _adapter(kind: type[T]) -> TypeAdapter[T]:
    found = _ADAPTERS.get(kind)
    if found is None:
        found = _ADAPTERS[kind] = TypeAdapter(kind)
    return found


def value_of(value: object) -> Any:
    """A port's value (a `Claim`, a `ToolCallRecord`, a `Usage`, a workspace entry...) as JSON data."""
    return _adapter(type(value)).dump_python(value, mode="json")


def value_from(kind: type[T], data: Any) -> T:
    """The ``kind`` value that `value_of` made ``data`` from.

    Raises:
        pydantic.ValidationError: ``data`` is not one; the error names the field.
    """
    return _adapter(kind).validate_python(data)


def write(stream: asyncio.StreamWriter, message: Message) -> None:
    """Queue ``message`` on ``stream`` (the caller drains when it must wait for the pipe)."""
    stream.write(json.dumps(message, separators=(",", ":"), ensure_ascii=False, default=str).encode() + b"\n")


async def read(stream: asyncio.StreamReader) -> Message | None:
    """The next message; None once the other side has closed the pipe (or died)."""
    line = await stream.readline()
    if not line:
        return None
    found = json.loads(line)
    if not isinstance(found, dict):
        raise ValueError(f"not a message: {line[:200]!r}")
    return found


def answered(waiting: Mapping[int, asyncio.Future[Any]], answer: Mapping[str, Any]) -> None:
    """Settle the request of ``waiting`` that ``answer`` (``{"id", "value" | "error"}``) answers: with its value, or
    with the error it stands for (`error_from`); one nobody waits for any more is dropped."""
    found = waiting.get(int(answer.get("id", 0)))
    if found is None or found.done():
        return
    if "error" in answer:
        found.set_exception(error_from(answer["error"]))
    else:
        found.set_result(answer.get("value"))


def error_of(exc: BaseException) -> Message:
    """An exception a port raised, as data for the other side to raise again."""
    error: Message = {"type": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, ApprovalRequired):
        error["approval_id"] = exc.approval_id
    if isinstance(exc, WorkspaceConflict):
        error.update(key=exc.key, expected=exc.expected, actual=exc.actual)
    return error


def error_from(error: Message) -> Exception:
    """The exception ``error`` stands for: one the worker's code handles (a budget refused, an approval
    pending, a tool refused, a write lost), or a `ConfigError` naming any other."""
    kind, message = str(error.get("type")), str(error.get("message"))
    if kind == "ApprovalRequired":
        return ApprovalRequired(message, approval_id=str(error.get("approval_id")))
    if kind == "WorkspaceConflict":
        return WorkspaceConflict(str(error["key"]), int(error["expected"]), int(error["actual"]))
    known: dict[str, type[CadenzaError]] = {"BudgetExceeded": BudgetExceeded, "ToolError": ToolError,
                                            "ConfigError": ConfigError, "StoreError": StoreError}
    found = known.get(kind)
    if found is not None:
        return found(message)
    return ConfigError(f"the run refused a worker's request ({kind}): {message}")
