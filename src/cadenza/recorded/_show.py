"""A run as data: what ``cadenza show --json`` prints and the web viewer draws, from the run's rows alone.

Each team's plan with its steps (plan order first, then any step the plan does not name), each step's outcome,
the tool calls the audit log holds for it, the peer groups' conversations and the approvals still pending. The
JSON columns are decoded here; one that does not decode is a `StoreError` naming it, never a traceback.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from .._errors import StoreError
from .._ids import ScopePath, child_path, split_path
from .._messages import ErrorInfo, Result
from .._plan import Plan, Step
from .._usage import Usage
from ..stores._summary import decode, loads, seconds, when
from ..stores.base import ApprovalRow, AuditRecord, MessageRow, RunSnapshot, StepRow
from ._calls import detail_of
from ._conversations import conversation_json, conversations
from ._text import shorten

__all__ = ("StepState", "TeamState", "approval_json", "approval_subject", "is_nested", "error_of", "result_of", "show_json", "spent", "teams",
           "tool_call_json", "tool_calls", "tool_calls_by_step", "usage_in")


def usage_in(text: str, what: str) -> Usage:
    """A usage column read as a `Usage`; ``what`` names whose it is in the error."""
    return decode(Usage, text, f"the usage of {what}")


def error_of(text: str | None, what: str) -> ErrorInfo | None:
    """An error column read as an `ErrorInfo`; None when there is none."""
    return None if text is None else decode(ErrorInfo, text, f"the error of {what}")


@dataclasses.dataclass(slots=True)
class StepState:
    """One step of a team: its place in the plan (if the plan is stored) and its row (if it started)."""

    id: str
    agent: str
    plan_step: Step | None
    row: StepRow | None

    @property
    def status(self) -> str:
        return self.row.status if self.row is not None else "pending"


@dataclasses.dataclass(slots=True)
class TeamState:
    """One team of the run (``lead``, ``lead/review``): where its plan came from and its steps."""

    scope: ScopePath
    source: str | None
    steps: list[StepState]


def teams(snapshot: RunSnapshot) -> list[TeamState]:
    """Every team scope with its steps: plan order first, then any step the plan does not name."""
    rows: dict[ScopePath, dict[str, StepRow]] = {}
    for step in snapshot.steps:
        rows.setdefault(step.scope, {})[step.step_id] = step
    found = []
    for plan_row in snapshot.plans:
        plan = decode(Plan, plan_row.plan_json, f"the plan of {plan_row.scope!r}")
        by_id = rows.pop(plan_row.scope, {})
        steps = [StepState(s.id, s.agent, s, by_id.pop(s.id, None)) for s in plan.steps]
        steps += [StepState(r.step_id, r.agent, None, r) for r in by_id.values()]
        found.append(TeamState(plan_row.scope, plan_row.source, steps))
    for scope, by_id in rows.items():
        found.append(TeamState(scope, None, [StepState(r.step_id, r.agent, None, r) for r in by_id.values()]))
    return found


def result_of(row: StepRow) -> Result | None:
    """The step's final `Result`, once it has one."""
    return None if row.result_json is None else decode(Result, row.result_json, f"the result of step {row.step_id!r}")


def spent(snapshot: RunSnapshot) -> Usage:
    """What the run has spent: its stored total once it stopped; while it runs (or after its process died), the sum
    of what is recorded so far, which the run row only gets at the end."""
    run = snapshot.run
    if run.status != "running":
        return usage_in(run.usage_json, f"run {run.run_id}")
    from ..engine._durable import recorded_usage

    try:
        return recorded_usage(snapshot)
    except ValueError as exc:
        raise StoreError(f"run {run.run_id}: a stored usage cannot be read: {exc}") from None


def tool_calls(audit: Sequence[AuditRecord]) -> list[dict[str, Any]]:
    """Every tool call the audit log holds (denied ones too), in order, each as `tool_call_json` gives it."""
    return [tool_call_json(r) for r in audit if r.kind in ("tool.called", "tool.denied")]


def tool_calls_by_step(audit: Sequence[AuditRecord]) -> dict[str, list[dict[str, Any]]]:
    """`tool_calls`, by the path of the step that made each."""
    calls: dict[str, list[dict[str, Any]]] = {}
    for call in tool_calls(audit):
        calls.setdefault(str(call["step"]), []).append(call)
    return calls


def tool_call_json(record: AuditRecord) -> dict[str, Any]:
    """One tool call: who called what, when, and what came of it (the error, or a preview and digest of the result)."""
    detail = detail_of(record)
    return {"at": when(record.at), "step": detail.get("step"), "agent": record.actor, "tool": record.subject,
            "outcome": detail.get("outcome"), "arguments_digest": detail.get("arguments_digest"),
            "error": detail.get("detail"), "result_preview": detail.get("result_preview"),
            "result_chars": detail.get("result_chars"), "result_digest": detail.get("result_digest")}


def show_json(snapshot: RunSnapshot, audit: Sequence[AuditRecord] = (),
              messages: Sequence[MessageRow] = ()) -> dict[str, Any]:
    """The run as data: what ``cadenza show`` draws, with outputs in full, each step's tool calls and every peer
    group's conversation (by the group's path: a step's path, or the run's for a group that is the whole run)."""
    calls = tool_calls_by_step(audit)
    run = snapshot.run
    error = error_of(run.error_json, f"run {run.run_id}")
    return {
        "run_id": run.run_id,
        "workflow": run.workflow,
        "goal": run.goal,
        "status": run.status,
        "source": run.source,
        "started_at": when(run.started_at),
        "finished_at": when(run.finished_at),
        "duration": seconds(run.started_at, run.finished_at),
        "usage": spent(snapshot).model_dump(),
        "output": loads(run.output_json, f"the output of run {run.run_id}"),
        "error": error.model_dump() if error else None,
        "teams": [{"scope": t.scope, "source": t.source,
                   "steps": [{**_step_json(s), "tool_calls": calls.get(child_path(t.scope, s.id), [])}
                             for s in t.steps]}
                  for t in teams(snapshot)],
        "spawned": [{"scope": s.scope, "name": s.name} for s in snapshot.spawned],
        "conversations": [conversation_json(scope, record) for scope, record in conversations(messages).items()],
        "pending_approvals": [approval_json(a) for a in snapshot.approvals if a.status == "pending"],
    }


def _step_json(step: StepState) -> dict[str, Any]:
    row, plan_step = step.row, step.plan_step
    out: dict[str, Any] = {
        "id": step.id,
        "agent": step.agent,
        "instruction": plan_step.instruction if plan_step else None,
        "depends_on": list(plan_step.depends_on) if plan_step else [],
        "status": step.status,
        "attempts": row.attempts if row else 0,
        "started_at": when(row.started_at) if row else None,
        "finished_at": when(row.finished_at) if row else None,
        "duration": seconds(row.started_at, row.finished_at) if row else None,
        "usage": usage_in(row.usage_json, f"step {step.id!r}").model_dump() if row else Usage().model_dump(),
        "output": None,
        "error": None,
        "stop_reason": None,
        "transcript": None,
        "skip_reason": row.skip_reason if row else None,
    }
    if row is not None:
        result = result_of(row)
        if result is not None:
            out.update(output=result.output, stop_reason=result.stop_reason, transcript=result.transcript)
        error = error_of(row.error_json, f"step {step.id!r}")
        out["error"] = error.model_dump() if error else None
    return out


def approval_json(row: ApprovalRow) -> dict[str, Any]:
    """A pending approval: which step's call waits, with its arguments and why it was asked."""
    return {
        "approval_id": row.approval_id,
        "scope": row.scope,
        "step_id": row.step_id,
        "agent": row.agent,
        "tool": row.tool,
        "arguments": loads(row.arguments_json, f"the arguments of approval {row.approval_id}"),
        "reason": row.reason,
        "status": row.status,
        "requested_at": when(row.requested_at),
    }


def is_nested(scope: ScopePath, by_scope: Mapping[ScopePath, TeamState]) -> bool:
    """Whether the team at ``scope`` runs as a step of another team in ``by_scope`` (a team records under its step's
    path: the parent team's scope, a slash, the step id)."""
    parent, step_id = split_path(scope)
    return parent in by_scope and any(s.id == step_id for s in by_scope[parent].steps)


def approval_subject(row: ApprovalRow) -> str:
    """What waits for the decision: ``writer wants to call send_email({...})`` or a whole step's start."""
    from .._port import STEP

    if row.tool != STEP:
        return f"{row.agent} wants to call {row.tool}({shorten(row.arguments_json, 80)})"
    arguments = loads(row.arguments_json, f"the arguments of approval {row.approval_id}")
    instruction = arguments.get("instruction") if isinstance(arguments, dict) else None
    return f"{row.agent} waits to start" + (f": {shorten(str(instruction), 80)}" if instruction else "")
