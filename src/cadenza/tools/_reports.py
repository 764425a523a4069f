"""How a worker tells its run what came of a tool call: a `ToolCalled` report, with a digest of the arguments
and a bounded preview and digest of the result, for the audit log, metrics and ``show``."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from .._events import ToolCalled
from ._side_effects import arguments_digest

if TYPE_CHECKING:
    from .._events import ToolOutcome
    from .._step_context import StepContext

__all__ = ("DETAIL_LIMIT", "RESULT_PREVIEW", "tool_called")


RESULT_PREVIEW = 200
"""Characters of a tool's result kept in its audit record; the digest covers the whole."""
DETAIL_LIMIT = 1000
"""Characters of an error or denial kept in a tool call's audit record."""


def tool_called(ctx: StepContext, agent: str, tool: str, arguments: dict[str, Any], outcome: ToolOutcome,
                detail: str = "", *, result: str | None = None, call_id: str | None = None) -> ToolCalled:
    """One tool call (denied ones too) as the run's sinks see it: who, which tool, a digest of its arguments, what
    came of it.

    What came of it is what a user looks for afterwards (``show``, ``trace``, ``export``): the error or denial
    text (``detail``, bounded), or a bounded preview and a sha256 digest of the ``result`` the model was given.
    """
    called = ToolCalled(ctx.run_id, ctx.scope, agent, tool, arguments_digest(arguments), outcome,
                        detail if len(detail) <= DETAIL_LIMIT else detail[:DETAIL_LIMIT] + "…", call_id=call_id)
    if result is not None:
        called.result_preview = result[:RESULT_PREVIEW]
        called.result_chars = len(result)
        called.result_digest = "sha256:" + hashlib.sha256(result.encode()).hexdigest()
    return called
