"""Where the runtime reports what the audit log records: each a no-op when the run keeps no log.

A recorded run (one with a store) keeps a hash-chained `AuditLog`; it travels in a context
variable set around the run, so every step, tool call and envelope check of the run reaches
it without being handed it. Records join the run journal's batches: they cost no commit of
their own.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from ._journal import current_step

if TYPE_CHECKING:
    from datetime import datetime

    from ._audit import AuditKind, AuditLog
    from ._messages import Usage

__all__ = (
    "audit",
    "audit_model_call",
    "audit_rejection",
    "audit_tool_call",
    "auditing",
    "current_audit",
)

current_audit: ContextVar[AuditLog | None] = ContextVar("cadenza_audit", default=None)
_log = logging.getLogger("cadenza.security")


@contextmanager
def auditing(log: AuditLog | None) -> Iterator[None]:
    """Record what happens in the body in ``log`` (None: record nothing, whatever an outer run does)."""
    token = current_audit.set(log)
    try:
        yield
    finally:
        current_audit.reset(token)


def audit(kind: AuditKind, actor: str, subject: str, detail: Mapping[str, object] | None = None) -> None:
    """Append one record to the running run's log, if it keeps one."""
    log = current_audit.get()
    if log is not None:
        log.append(kind, actor, subject, detail)


RESULT_PREVIEW = 200
"""Characters of a tool's result kept in its audit record; the digest covers the whole."""
DETAIL_LIMIT = 1000
"""Characters of an error or denial kept in a tool call's audit record."""


def audit_tool_call(agent: str, tool: str, arguments: dict[str, Any], outcome: str, detail: str = "", *,
                    result: str | None = None) -> None:
    """Record one tool call (denied ones too): who, which tool, a digest of its arguments, what came of it.

    What came of it is what a user looks for afterwards (``show``, ``trace``, ``export``): the error or
    denial text (``detail``), or a bounded preview and a sha256 digest of the ``result`` the model was given.
    A denied call is also a warning in the log, whether or not the run keeps an audit log.
    """
    if outcome == "denied":
        _log.warning("tool call denied: %s", detail, extra={"agent": agent, "tool": tool})
    if current_audit.get() is None:
        return
    from ._side_effects import arguments_digest

    step = current_step.get()
    record: dict[str, object] = {"step": step.scope if step is not None else None,
                                 "arguments_digest": arguments_digest(arguments), "outcome": outcome}
    if detail:
        record["detail"] = detail if len(detail) <= DETAIL_LIMIT else detail[:DETAIL_LIMIT] + "…"
    if result is not None:
        record.update(result_preview=result[:RESULT_PREVIEW], result_chars=len(result),
                      result_digest="sha256:" + hashlib.sha256(result.encode()).hexdigest())
    audit("tool.denied" if outcome == "denied" else "tool.called", agent, tool, record)


def audit_model_call(agent: str | None, model: str, started: datetime, seconds: float, usage: Usage | None,
                     error: str | None) -> None:
    """Record one model call of the running step: when, how long, what it cost (not what was said)."""
    log = current_audit.get()
    if log is None:
        return
    step = current_step.get()
    detail: dict[str, object] = {"step": step.scope if step is not None else None, "seconds": round(seconds, 6),
                                 "outcome": "ok" if error is None else "error"}
    if usage is not None:
        detail.update(tokens=usage.total_tokens, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                      cost_usd=usage.cost_usd)
    if error is not None:
        detail["error"] = error
    log.append("model.called", agent or "?", model, detail, at=started)


def audit_rejection(reason: str, detail: str, *, sender: str | None, recipient: str | None, nonce: str | None,
                    kind: str | None) -> None:
    """Record a refused envelope (forged, tampered, replayed, stale, another run's) with what it claimed."""
    _log.warning("message refused (%s): %s", reason, detail,
                 extra={"sender": sender, "recipient": recipient, "nonce": nonce})
    audit("message.rejected", sender or "?", recipient or "", {
        "reason": reason, "detail": detail, "nonce": nonce, "kind": kind,
    })
