"""What the audit log records of a worker's tool calls and of refused envelopes, in one shape.

A recorded run keeps a hash-chained `AuditLog` in its `RunState`; a worker reaches it only through
its port (``RunPort.audit``), and builds a record only when the run keeps a log. Records join the
run journal's batches: they cost no commit of their own.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._port import RunPort
    from ._run_state import RunState
    from ._step_context import StepContext

__all__ = ("audit_rejection", "audit_tool_call")

_log = logging.getLogger("cadenza.security")


RESULT_PREVIEW = 200
"""Characters of a tool's result kept in its audit record; the digest covers the whole."""
DETAIL_LIMIT = 1000
"""Characters of an error or denial kept in a tool call's audit record."""


def audit_tool_call(port: RunPort, ctx: StepContext, agent: str, tool: str, arguments: dict[str, Any], outcome: str,
                    detail: str = "", *, result: str | None = None) -> None:
    """Record one tool call (denied ones too): who, which tool, a digest of its arguments, what came of it.

    What came of it is what a user looks for afterwards (``show``, ``trace``, ``export``): the error or
    denial text (``detail``), or a bounded preview and a sha256 digest of the ``result`` the model was given.
    A denied call is also a warning in the log, whether or not the run keeps an audit log.
    """
    if outcome == "denied":
        from ._logging import step_fields

        _log.warning("tool call denied: %s", detail, extra={**step_fields(ctx), "agent": agent, "tool": tool})
    if not port.audited:
        return
    from ._side_effects import arguments_digest

    record: dict[str, object] = {"step": ctx.scope,
                                 "arguments_digest": arguments_digest(arguments), "outcome": outcome}
    if detail:
        record["detail"] = detail if len(detail) <= DETAIL_LIMIT else detail[:DETAIL_LIMIT] + "…"
    if result is not None:
        record.update(result_preview=result[:RESULT_PREVIEW], result_chars=len(result),
                      result_digest="sha256:" + hashlib.sha256(result.encode()).hexdigest())
    port.audit("tool.denied" if outcome == "denied" else "tool.called", agent, tool, record)


def audit_rejection(run: RunState, reason: str, detail: str, *, sender: str | None, recipient: str | None,
                    nonce: str | None, kind: str | None) -> None:
    """Record a refused envelope (forged, tampered, replayed, stale, another run's) with what it claimed."""
    _log.warning("message refused (%s): %s", reason, detail,
                 extra={"sender": sender, "recipient": recipient, "nonce": nonce})
    run.audit("message.rejected", sender or "?", recipient or "", {
        "reason": reason, "detail": detail, "nonce": nonce, "kind": kind,
    })
