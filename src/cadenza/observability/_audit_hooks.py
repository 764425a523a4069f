"""What the audit log records of a run's events, and of refused envelopes.

The audit log is a sink of the run's event stream (`AuditSink`): the messages between agents, the
agents spawned, and every model and tool call a worker reports through its port. A worker builds
those reports only when some sink wants them (`EventStream.observed`); `tools._reports.tool_called` is how
it builds one for a tool call. Records join the run journal's batches: they cost no commit of their own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._events import (
    AgentSpawned,
    ApprovalRequested,
    MessageRejected,
    MessageSent,
    ModelCalled,
    PeerMessageSent,
    ToolCalled,
)
from .._ids import child_path

if TYPE_CHECKING:
    from .._events import Event
    from .._step_context import StepContext
    from ..security._audit import AuditLog

__all__ = ("AuditSink", "log_denial")

_log = logging.getLogger("cadenza.security")


def log_denial(ctx: StepContext, agent: str, tool: str, detail: str) -> None:
    """A denied tool call is a warning in the log where it was denied, whether or not the run keeps an audit log."""
    from ._logging import step_fields

    _log.warning("tool call denied: %s", detail, extra={**step_fields(ctx), "agent": agent, "tool": tool})


class AuditSink:
    """Appends to the run's hash-chained audit log what each event says that an auditor asks about."""

    __slots__ = ("log",)
    wants_reports = True

    def __init__(self, log: AuditLog) -> None:
        self.log = log

    def __call__(self, event: Event) -> None:
        record = _RECORDS.get(type(event))
        if record is not None:
            record(self.log, event)


def _message(log: AuditLog, e: MessageSent) -> None:
    detail: dict[str, object] = {"kind": e.kind, "task_id": e.task_id}
    if e.kind == "task":
        detail["step"] = e.step_id
    else:
        detail["status"] = e.status
    detail["signed"] = e.signed
    log.append("message.sent", e.sender, e.recipient, detail)


def _peer_message(log: AuditLog, e: PeerMessageSent) -> None:
    message = e.message
    detail = {"kind": "message", "message_id": message.message_id, "round": message.round,
              "in_reply_to": message.in_reply_to, "signed": e.signed}
    log.append("message.sent", child_path(e.group, message.sender) if message.round else e.group,
               child_path(e.group, message.recipient), detail)


def _spawned(log: AuditLog, e: AgentSpawned) -> None:
    proposal = e.proposal
    log.append("agent.spawned", e.team, proposal.name,
               {"role": proposal.role, "tools": list(proposal.tools), "tier": proposal.tier})


def _model(log: AuditLog, e: ModelCalled) -> None:
    """When, how long, what it cost (not what was said)."""
    detail: dict[str, object] = {"step": e.scope, "seconds": round(e.seconds, 6),
                                 "outcome": "ok" if e.error is None else "error"}
    usage = e.usage
    if usage is not None:
        detail.update(tokens=usage.total_tokens, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                      cost_usd=usage.cost_usd)
    if e.error is not None:
        detail["error"] = e.error
    log.append("model.called", e.agent, e.model, detail, at=e.at)


def _tool(log: AuditLog, e: ToolCalled) -> None:
    detail: dict[str, object] = {"step": e.scope, "arguments_digest": e.arguments_digest, "outcome": e.outcome}
    if e.detail:
        detail["detail"] = e.detail
    if e.result_preview is not None:
        detail.update(result_preview=e.result_preview, result_chars=e.result_chars, result_digest=e.result_digest)
    log.append("tool.denied" if e.outcome == "denied" else "tool.called", e.agent, e.tool, detail)


def _approval(log: AuditLog, e: ApprovalRequested) -> None:
    log.append("approval.requested", e.agent, e.approval_id, {"step": e.scope, "tool": e.tool,
                                                             "arguments_digest": e.arguments_digest,
                                                             "reason": e.reason})


def _rejected(log: AuditLog, e: MessageRejected) -> None:
    """A refused envelope, with what it claimed."""
    log.append("message.rejected", e.sender or "?", e.recipient or "", {
        "reason": e.reason, "detail": e.detail, "nonce": e.nonce, "kind": e.kind,
    })


_RECORDS: dict[type, Callable[[AuditLog, Any], None]] = {
    MessageSent: _message, PeerMessageSent: _peer_message, AgentSpawned: _spawned, ModelCalled: _model, ToolCalled: _tool,
    ApprovalRequested: _approval, MessageRejected: _rejected,
}
