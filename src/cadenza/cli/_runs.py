"""Recorded runs as people and programs read them: ``cadenza runs``, ``show`` and ``export``.

Everything here works from store rows alone (no workflow file, no model), so a run
can be inspected on any machine that can reach its store. The JSON columns are
decoded once, here; a column that does not decode means the store is damaged and
is reported as a `StoreError`, never as a traceback.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from .._errors import StoreError
from .._ids import ScopePath, child_path, split_path
from .._messages import ErrorInfo, Result
from .._plan import Plan, Step
from .._usage import Usage
from ..stores._summary import decode as _decode
from ..stores._summary import duration as _duration
from ..stores._summary import run_summary
from ..stores._summary import seconds as _seconds
from ..stores._summary import when as _when
from ..stores.base import (
    ApprovalRow,
    AuditHead,
    AuditRecord,
    MessageRow,
    PlanRow,
    RunRow,
    RunSnapshot,
    SpawnRow,
    StepRow,
    ToolCallRow,
    UsageRow,
    WorkspaceEntry,
)
from ._conversations import add_conversation, conversation_json, conversation_tree, conversations
from ._display import _STYLES, _output_text
from ._plan_view import shorten

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.tree import Tree

    from ..engine._journal import PeerRecord

__all__ = ("EXPORT_FORMAT", "approval_subject", "export_json", "runs_json", "runs_table", "show_json", "show_view")

EXPORT_FORMAT = 2
"""The version of the ``cadenza export`` document; raised when a field changes meaning or goes away."""

_OUTPUT_CHARS = 100
ModelT = TypeVar("ModelT", bound=BaseModel)


# --------------------------------------------------------------------------- decoding


def _loads(text: str | None, what: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise StoreError(f"{what} is not valid JSON; the store may be damaged") from None


def _usage(text: str, what: str) -> Usage:
    return _decode(Usage, text, f"the usage of {what}")


def _error(text: str | None, what: str) -> ErrorInfo | None:
    return None if text is None else _decode(ErrorInfo, text, f"the error of {what}")


def _local(at: datetime) -> str:
    return at.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


# --------------------------------------------------------------------------- cadenza runs


def runs_table(rows: Sequence[RunRow], *, where: str) -> RenderableType:
    """The runs as a table under the store's name, in the order given (the store lists the newest first)."""
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False, header_style="bold")
    longest = max((len(row.run_id) for row in rows), default=2)
    table.add_column("id", no_wrap=True, min_width=longest)  # ids are typed back in: never shortened
    for name, justify in (("workflow", "left"), ("status", "left"), ("started", "left"),
                          ("duration", "right"), ("tokens", "right"), ("cost", "right")):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for row in rows:
        usage = _usage(row.usage_json, f"run {row.run_id}")
        glyph, style = _STYLES.get(row.status, ("•", ""))
        table.add_row(f"[cyan]{row.run_id}[/]", escape(row.workflow), f"[{style}]{glyph} {row.status}[/]",
                      _local(row.started_at), _duration(row.started_at, row.finished_at),
                      str(usage.total_tokens), f"${usage.cost_usd:.4f}")
    return Group(Text(f"runs in {where}", style="dim"), table)


def runs_json(rows: Sequence[RunRow]) -> list[dict[str, Any]]:
    """The runs as JSON-ready summaries, in the order given."""
    return [run_summary(row) for row in rows]


# --------------------------------------------------------------------------- cadenza show


@dataclasses.dataclass(slots=True)
class _StepState:
    """One step of a team: its place in the plan (if the plan is stored) and its row (if it started)."""

    id: str
    agent: str
    plan_step: Step | None
    row: StepRow | None

    @property
    def status(self) -> str:
        return self.row.status if self.row is not None else "pending"


@dataclasses.dataclass(slots=True)
class _TeamState:
    scope: ScopePath
    source: str | None
    steps: list[_StepState]


def _teams(snapshot: RunSnapshot) -> list[_TeamState]:
    """Every team scope with its steps: plan order first, then any step the plan does not name."""
    rows: dict[ScopePath, dict[str, StepRow]] = {}
    for step in snapshot.steps:
        rows.setdefault(step.scope, {})[step.step_id] = step
    teams = []
    for plan_row in snapshot.plans:
        plan = _decode(Plan, plan_row.plan_json, f"the plan of {plan_row.scope!r}")
        by_id = rows.pop(plan_row.scope, {})
        steps = [_StepState(s.id, s.agent, s, by_id.pop(s.id, None)) for s in plan.steps]
        steps += [_StepState(r.step_id, r.agent, None, r) for r in by_id.values()]
        teams.append(_TeamState(plan_row.scope, plan_row.source, steps))
    for scope, by_id in rows.items():
        teams.append(_TeamState(scope, None, [_StepState(r.step_id, r.agent, None, r) for r in by_id.values()]))
    return teams


def _result(row: StepRow) -> Result | None:
    return None if row.result_json is None else _decode(Result, row.result_json, f"the result of step {row.step_id!r}")


def spent(snapshot: RunSnapshot) -> Usage:
    """What the run has spent: its stored total once it stopped; while it runs (or after its process died), the sum
    of what is recorded so far, which the run row only gets at the end."""
    run = snapshot.run
    if run.status != "running":
        return _usage(run.usage_json, f"run {run.run_id}")
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
    detail = _loads(record.detail_json, f"audit record {record.seq}")
    detail = detail if isinstance(detail, dict) else {}
    return {"at": _when(record.at), "step": detail.get("step"), "agent": record.actor, "tool": record.subject,
            "outcome": detail.get("outcome"), "arguments_digest": detail.get("arguments_digest"),
            "error": detail.get("detail"), "result_preview": detail.get("result_preview"),
            "result_chars": detail.get("result_chars"), "result_digest": detail.get("result_digest")}


def show_json(snapshot: RunSnapshot, audit: Sequence[AuditRecord] = (),
              messages: Sequence[MessageRow] = ()) -> dict[str, Any]:
    """The run as data: what ``cadenza show`` draws, with outputs in full, each step's tool calls and every peer
    group's conversation (by the group's path: a step's path, or the run's for a group that is the whole run)."""
    calls = tool_calls_by_step(audit)
    run = snapshot.run
    error = _error(run.error_json, f"run {run.run_id}")
    return {
        "run_id": run.run_id,
        "workflow": run.workflow,
        "goal": run.goal,
        "status": run.status,
        "source": run.source,
        "started_at": _when(run.started_at),
        "finished_at": _when(run.finished_at),
        "duration": _seconds(run.started_at, run.finished_at),
        "usage": spent(snapshot).model_dump(),
        "output": _loads(run.output_json, f"the output of run {run.run_id}"),
        "error": error.model_dump() if error else None,
        "teams": [{"scope": t.scope, "source": t.source,
                   "steps": [{**_step_json(s), "tool_calls": calls.get(child_path(t.scope, s.id), [])}
                             for s in t.steps]}
                  for t in _teams(snapshot)],
        "spawned": [{"scope": s.scope, "name": s.name} for s in snapshot.spawned],
        "conversations": [conversation_json(scope, record) for scope, record in conversations(messages).items()],
        "pending_approvals": [_approval_json(a) for a in snapshot.approvals if a.status == "pending"],
    }


def _step_json(step: _StepState) -> dict[str, Any]:
    row, plan_step = step.row, step.plan_step
    out: dict[str, Any] = {
        "id": step.id,
        "agent": step.agent,
        "instruction": plan_step.instruction if plan_step else None,
        "depends_on": list(plan_step.depends_on) if plan_step else [],
        "status": step.status,
        "attempts": row.attempts if row else 0,
        "started_at": _when(row.started_at) if row else None,
        "finished_at": _when(row.finished_at) if row else None,
        "duration": _seconds(row.started_at, row.finished_at) if row else None,
        "usage": _usage(row.usage_json, f"step {step.id!r}").model_dump() if row else Usage().model_dump(),
        "output": None,
        "error": None,
        "stop_reason": None,
        "transcript": None,
        "skip_reason": row.skip_reason if row else None,
    }
    if row is not None:
        result = _result(row)
        if result is not None:
            out.update(output=result.output, stop_reason=result.stop_reason, transcript=result.transcript)
        error = _error(row.error_json, f"step {step.id!r}")
        out["error"] = error.model_dump() if error else None
    return out


def _approval_json(row: ApprovalRow) -> dict[str, Any]:
    return {
        "approval_id": row.approval_id,
        "scope": row.scope,
        "step_id": row.step_id,
        "agent": row.agent,
        "tool": row.tool,
        "arguments": _loads(row.arguments_json, f"the arguments of approval {row.approval_id}"),
        "reason": row.reason,
        "status": row.status,
        "requested_at": _when(row.requested_at),
    }


def show_view(snapshot: RunSnapshot, audit: Sequence[AuditRecord] = (),
              messages: Sequence[MessageRow] = ()) -> RenderableType:
    """The run for a terminal: a header with totals, each team's plan as a tree (with each step's tool calls and
    what came of them, and the conversation of a step that is a peer group), a peer group that is the whole run
    as its own tree, pending approvals."""
    from rich.console import Group

    parts: list[RenderableType] = [_header(snapshot.run, spent(snapshot))]
    teams = {t.scope: t for t in _teams(snapshot)}
    shown: set[ScopePath] = set()
    within = _Within(tool_calls_by_step(audit), conversations(messages))
    for team in teams.values():
        if team.scope not in shown and not _is_nested(team.scope, teams):
            parts.append(_team_tree(team, teams, shown, within))
    parts += [conversation_tree(scope, record) for scope, record in within.conversations.items()]  # not a step's
    pending = [a for a in snapshot.approvals if a.status == "pending"]
    if pending:
        parts.append(_approvals(snapshot.run.run_id, pending))
    if within.cut:
        parts.append(f"[dim]step outputs are cut to one line of {_OUTPUT_CHARS} characters; whole in: "
                     f"cadenza show {snapshot.run.run_id} --json[/]")
    spaced: list[RenderableType] = []
    for part in parts:  # a blank line between the header, each tree and the approvals
        spaced += [part, ""]
    return Group(*spaced[:-1])


def _header(run: RunRow, usage: Usage) -> RenderableType:
    from rich.markup import escape
    from rich.table import Table

    glyph, style = _STYLES.get(run.status, ("•", ""))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column()
    grid.add_row("run", f"[bold cyan]{run.run_id}[/]  {escape(run.workflow)}  [{style}]{glyph} {run.status}[/]")
    grid.add_row("goal", escape(run.goal))
    if run.source:
        grid.add_row("workflow", escape(run.source))
    took = _duration(run.started_at, run.finished_at) if run.finished_at else "not finished"
    grid.add_row("started", f"{_local(run.started_at)} · {took}")
    grid.add_row("usage", f"{usage.total_tokens} tokens ({usage.input_tokens} in, {usage.output_tokens} out) · "
                          f"${usage.cost_usd:.4f} · {_plural(usage.model_calls, 'model call')}")
    output = _loads(run.output_json, f"the output of run {run.run_id}")
    if output is not None:  # whole: it is what the run was for
        grid.add_row("output", escape(_output_text(output).strip()))
    error = _error(run.error_json, f"run {run.run_id}")
    if error is not None and run.status == "waiting":
        grid.add_row("waiting", f"[{style}]{escape(error.message)}[/]")
    elif error is not None:
        grid.add_row("error", f"[{style}]{escape(error.type)}: {escape(error.message)}[/]")
    return grid


def _is_nested(scope: ScopePath, teams: dict[ScopePath, _TeamState]) -> bool:
    # A nested team records under its step's path: the parent team's scope, a slash, the step id.
    parent, step_id = split_path(scope)
    return parent in teams and any(s.id == step_id for s in teams[parent].steps)


@dataclasses.dataclass(slots=True)
class _Within:
    """What ``show`` draws under the steps: tool calls, and the conversations not drawn yet, by step path."""

    calls: dict[str, list[dict[str, Any]]]
    conversations: dict[ScopePath, PeerRecord]
    cut: bool = False
    """Whether a step's output was drawn cut to one line: the view then says where to read it whole."""


def _team_tree(team: _TeamState, teams: dict[ScopePath, _TeamState], shown: set[ScopePath], within: _Within) -> Tree:
    from rich.markup import escape
    from rich.tree import Tree

    shown.add(team.scope)
    plan = f"{team.source} plan, " if team.source else "no stored plan, "
    done = sum(s.status in ("success", "partial") for s in team.steps)
    tree = Tree(f"[bold]{escape(team.scope)}[/] [dim]· {plan}{_plural(len(team.steps), 'step')}, {done} done[/]")
    for step in team.steps:
        node = tree.add(_step_label(step))
        within.cut |= _add_step_detail(node, step)
        path = child_path(team.scope, step.id)
        for call in within.calls.get(path, []):
            node.add(tool_call_line(call))
        talk = within.conversations.pop(path, None)
        if talk is not None:
            add_conversation(node, talk)
        nested = teams.get(path)
        if nested is not None and nested.scope not in shown:
            node.add(_team_tree(nested, teams, shown, within))
    return tree


def _step_label(step: _StepState) -> str:
    from rich.markup import escape

    glyph, style = _STYLES.get(step.status, ("•", ""))
    label = f"[{style}]{glyph}[/] [cyan]{escape(step.id)}[/] {escape(step.agent)} [{style}]{step.status}[/]"
    row = step.row
    if row is None:
        return label
    if row.attempts > 1:
        label += f" [dim]· {row.attempts} attempts[/]"
    if row.finished_at is not None:
        label += f" [dim]· {_duration(row.started_at, row.finished_at)}[/]"
    tokens = _usage(row.usage_json, f"step {step.id!r}").total_tokens
    if tokens:
        label += f" [dim]· {tokens} tokens[/]"
    if step.plan_step is not None and step.plan_step.depends_on:
        label += f" [dim](after {escape(', '.join(step.plan_step.depends_on))})[/]"
    return label


def _add_step_detail(node: Tree, step: _StepState) -> bool:
    """Adds the step's error or skip reason, its output and why a conversation stopped; True if the output was cut."""
    from rich.markup import escape

    row = step.row
    if row is None:
        return False
    error = _error(row.error_json, f"step {step.id!r}")
    result = _result(row)
    if error is not None and step.status != "waiting":  # what a waiting step waits for is listed at the end
        style = _STYLES.get(step.status, ("", "red"))[1]
        node.add(f"[{style}]{escape(error.type)}: {escape(shorten(error.message, _OUTPUT_CHARS))}[/]")
    elif row.skip_reason:
        node.add(f"[dim]skipped: {escape(shorten(row.skip_reason, _OUTPUT_CHARS))}[/]")
    cut = False
    if result is not None and result.output is not None:
        text = _output_text(result.output)
        line = shorten(text, _OUTPUT_CHARS)
        cut = line != text.strip()
        node.add(f"[dim]→[/] {escape(line)}")
    if result is not None and result.stop_reason is not None and error is None:
        node.add(f"[dim]stopped on {escape(result.stop_reason)}[/]")
    return cut


def tool_call_line(call: dict[str, Any]) -> str:
    """``↳ tool outcome`` with the error, or an arrow to the start of what the tool returned."""
    from rich.markup import escape

    style = "green" if call["outcome"] == "ok" else "red"
    line = f"[dim]↳[/] {escape(str(call['tool']))} [{style}]{escape(str(call['outcome']))}[/]"
    if call["error"]:
        line += f" [{style}]{escape(shorten(str(call['error']), _OUTPUT_CHARS))}[/]"
    elif call["result_preview"] is not None:
        line += f" [dim]→[/] {escape(shorten(str(call['result_preview']), _OUTPUT_CHARS))}"
    return line


def _approvals(run_id: str, pending: list[ApprovalRow]) -> RenderableType:
    from rich.markup import escape
    from rich.tree import Tree

    tree = Tree(f"[magenta bold]{_plural(len(pending), 'pending approval')}[/]")
    for row in pending:
        twice = sum(a.scope == row.scope for a in pending) > 1
        key = escape(row.approval_id if twice else row.step_id)
        node = tree.add(f"[cyan]{escape(row.step_id)}[/] [dim]({escape(row.scope)})[/] "
                        f"{escape(approval_subject(row))} [dim]· {escape(row.reason)}[/]")
        node.add(f"[dim]asked {_local(row.requested_at)} · {escape(row.approval_id)} · decide:[/] "
                 f"cadenza approve {run_id} {key}  [dim]or[/]  cadenza reject {run_id} {key}")
    return tree


def approval_subject(row: ApprovalRow) -> str:
    """What waits for the decision: ``writer wants to call send_email({...})`` or a whole step's start."""
    from .._port import STEP

    if row.tool != STEP:
        return f"{row.agent} wants to call {row.tool}({shorten(row.arguments_json, 80)})"
    arguments = _loads(row.arguments_json, f"the arguments of approval {row.approval_id}")
    instruction = arguments.get("instruction") if isinstance(arguments, dict) else None
    return f"{row.agent} waits to start" + (f": {shorten(str(instruction), 80)}" if instruction else "")


# --------------------------------------------------------------------------- cadenza export


Row = (
    RunRow | PlanRow | StepRow | MessageRow | SpawnRow | UsageRow | ToolCallRow | ApprovalRow | WorkspaceEntry
    | AuditRecord
)


def _row_json(row: Row, *, keep_run_id: bool = False) -> dict[str, Any]:
    """A row as JSON: ``*_json`` columns decoded under their name without the suffix, times as ISO text."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(row):
        value = getattr(row, f.name)
        if f.name == "run_id" and not keep_run_id:
            continue
        if f.name.endswith("_json"):
            out[f.name.removesuffix("_json")] = _loads(value, f"{type(row).__name__}.{f.name}")
        elif isinstance(value, datetime):
            out[f.name] = value.isoformat()
        else:
            out[f.name] = value
    return out


def export_json(snapshot: RunSnapshot, messages: Sequence[MessageRow],
                workspace: Sequence[tuple[WorkspaceEntry, Sequence[WorkspaceEntry]]], *,
                exported_at: datetime, version: str, audit: Sequence[AuditRecord] = (),
                audit_head: AuditHead | None = None) -> dict[str, Any]:
    """The whole run as one JSON document: every row the store holds for it, JSON columns decoded.

    ``workspace`` pairs each key's latest entry with its every version, oldest first; ``audit``
    is the run's audit log with its stored head, so an export can be verified on its own.
    ``tool_calls`` lists every tool call (from the audit log) with what came of it; ``recorded_calls`` the
    idempotency records of calls to tools with side effects.
    """
    return {
        "cadenza_export": EXPORT_FORMAT,
        "exported_at": exported_at.isoformat(),
        "exported_by": f"cadenza {version}",
        "run": _row_json(snapshot.run, keep_run_id=True),
        "plans": [_row_json(p) for p in snapshot.plans],
        "steps": [_row_json(s) for s in snapshot.steps],
        "messages": [_row_json(m) for m in messages],
        "spawned": [_row_json(s) for s in snapshot.spawned],
        "usage": [_row_json(u) for u in snapshot.usage],
        "tool_calls": tool_calls(audit),
        "recorded_calls": [_row_json(c) for c in snapshot.tool_calls],
        "approvals": [_row_json(a) for a in snapshot.approvals],
        "workspace": [{**_row_json(latest), "history": [_row_json(e) for e in history]}
                      for latest, history in workspace],
        "audit": [_row_json(r) for r in audit],
        "audit_head": None if audit_head is None else {"seq": audit_head.seq, "hash": audit_head.hash},
    }

