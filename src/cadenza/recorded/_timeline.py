"""A run's timeline, read back from its stored rows: each step in plan order (a nested team's under the step that
ran it) with its start, duration, attempts, tokens and cost, and from the audit log the model calls and tool calls
its agent made, in the order they happened; a peer group's messages among its members' calls.

Each team's critical path is marked: the chain of dependencies that finished last, so decided when the team could
finish. ``cadenza trace`` draws these lines as text and the web viewer as bars.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from .._ids import ScopePath, child_path
from .._plan import Plan
from .._usage import Usage
from ..stores.base import AuditRecord, MessageRow, RunSnapshot, StepRow
from ._calls import Call, calls_by_step
from ._conversations import conversations
from ._text import shorten

if TYPE_CHECKING:
    from ..engine._journal import PeerRecord

__all__ = ("TraceLine", "critical_steps", "offset", "trace_lines")


@dataclass(frozen=True, slots=True)
class TraceLine:
    """One line of the tree: a step, or a tool call under one."""

    depth: int
    label: str
    status: str
    start: float | None
    """Seconds from the run's start."""
    duration: float | None
    tokens: int
    cost: float
    critical: bool
    detail: str = ""
    path: ScopePath | None = None
    """The step's path, on a step's line."""


def critical_steps(plan: Plan, rows: dict[str, StepRow]) -> set[str]:
    """The critical path of one team's run: from the step that finished last, back through the dependency
    that finished last before each (the one its start waited for)."""
    finished = {sid: row.finished_at for sid, row in rows.items() if row.finished_at is not None}
    if not finished:
        return set()
    by_id = {s.id: s for s in plan.steps}
    current: str | None = max(finished, key=lambda sid: finished[sid])
    path: set[str] = set()
    while current is not None and current not in path:
        path.add(current)
        deps = [d for d in (by_id[current].depends_on if current in by_id else ()) if d in finished]
        current = max(deps, key=lambda d: finished[d]) if deps else None
    return path


def trace_lines(snapshot: RunSnapshot, audit: Sequence[AuditRecord],
                messages: Sequence[MessageRow] = ()) -> list[TraceLine]:
    """The tree of the run, depth first in plan order, with each peer group's conversation."""
    t0 = snapshot.run.started_at
    talks = conversations(messages)
    plans = {p.scope: Plan.model_validate_json(p.plan_json) for p in snapshot.plans}
    rows: dict[ScopePath, dict[str, StepRow]] = {}
    for row in snapshot.steps:
        rows.setdefault(row.scope, {})[row.step_id] = row
    root = snapshot.plans[0].scope if snapshot.plans else None
    calls, top = calls_by_step(audit, root)
    lines: list[TraceLine] = []

    def team(scope: ScopePath, depth: int) -> None:
        plan = plans.get(scope)
        scoped = rows.get(scope, {})
        order = [s.id for s in plan.steps] if plan is not None else list(scoped)
        critical = critical_steps(plan, scoped) if plan is not None else set()
        agents = {s.id: s.agent for s in plan.steps} if plan is not None else {}
        for step_id in order:
            row = scoped.get(step_id)
            agent = row.agent if row is not None else agents.get(step_id, "?")
            usage = Usage.model_validate_json(row.usage_json) if row is not None else Usage()
            start = offset(t0, row.started_at) if row is not None else None
            end = offset(t0, row.finished_at) if row is not None else None
            detail = f"{row.attempts} attempts" if row is not None and row.attempts > 1 else ""
            if row is not None and row.skip_reason:
                detail = row.skip_reason
            path = child_path(scope, step_id)
            lines.append(TraceLine(depth, f"{step_id} {agent}", row.status if row is not None else "pending", start,
                                   None if start is None or end is None else end - start, usage.total_tokens,
                                   usage.cost_usd, step_id in critical, detail, path))
            lines.extend(_call_line(call, depth + 1, t0) for call in calls.get(path, ()))
            if path in talks:
                lines.extend(_conversation_lines(path, talks.pop(path), calls, depth + 1, t0))
            if path in plans:
                team(path, depth + 1)

    first_step = min((r.started_at for r in rows.get(root or ScopePath(""), {}).values() if r.started_at), default=None)
    before = [c for c in top if first_step is None or c.at < first_step]
    lines.extend(_call_line(c, 0, t0, purpose="planning") for c in before)
    if root is not None:
        team(root, 0)
    after = [c for c in top if first_step is not None and c.at >= first_step]
    lines.extend(_call_line(c, 0, t0, purpose="synthesis") for c in after)
    for scope, record in talks.items():  # not under a step: a peer group that is the whole run
        lines.extend(_conversation_lines(scope, record, calls, 0, t0))
    return lines


def _conversation_lines(scope: ScopePath, record: PeerRecord, calls: dict[str, list[Call]], depth: int,
                        t0: datetime) -> list[TraceLine]:
    """A peer group's messages and its members' calls (recorded at ``group/member``), by when they happened."""
    timed: list[tuple[datetime, TraceLine]] = []
    for said in record.said:
        status = "success" if said.message_id in record.handled else "pending"
        timed.append((said.sent_at, TraceLine(depth, f"✉ {said.sender} → {said.recipient}", status,
                                              offset(t0, said.sent_at), None, 0, 0.0, False,
                                              shorten(said.content.replace("\n", " "), 100))))
    inside = f"{scope}/"
    for path, made in calls.items():
        if path.startswith(inside):
            member = path.removeprefix(inside)
            timed += [(call.at, _call_line(call, depth, t0, who=member)) for call in made]
    timed.sort(key=lambda pair: pair[0])  # stable: a message and the call that sent it keep their recorded order
    return [line for _, line in timed]


def _call_line(call: Call, depth: int, t0: datetime, *, purpose: str = "", who: str = "") -> TraceLine:
    """A model call (``chat MODEL``, with its duration, tokens and cost) or a tool call (an instant) under a step.

    ``purpose`` names what a call of the top team itself was for (its planning or its synthesis); ``who`` the member
    of a peer group that made it, put before its label.
    """
    by = f"{who}: " if who else ""
    status = "success" if call.outcome == "ok" else "failed"
    if call.is_model:
        said = purpose if call.outcome == "ok" else "; ".join(filter(None, (purpose, call.error or call.outcome)))
        return TraceLine(depth, f"{by}chat {call.name}", status, offset(t0, call.at), call.seconds, call.tokens or 0,
                         call.cost or 0.0, False, said)
    if call.error:
        shown = f"{call.outcome}: {call.error}"
    else:
        shown = f"{call.outcome} → {call.preview}" if call.preview else call.outcome
    return TraceLine(depth, f"{by}↳ {call.name}", status, offset(t0, call.at), None, 0, 0.0, False,
                     shorten(shown.replace("\n", " "), 100))


def offset(t0: datetime, at: datetime | None) -> float:
    """Seconds from ``t0`` to ``at`` (0 when ``at`` is not known)."""
    return 0.0 if at is None else (at - t0).total_seconds()
