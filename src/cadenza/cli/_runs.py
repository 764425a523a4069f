"""Recorded runs as people and programs read them: ``cadenza runs``, ``show`` and ``export``.

Everything here works from store rows alone (no workflow file, no model), so a run
can be inspected on any machine that can reach its store. `cadenza.recorded` reads the
rows (``show --json`` is its `show_json`); this module draws them for a terminal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .._ids import ScopePath, child_path
from .._usage import Usage
from ..recorded import (
    StepState,
    TeamState,
    approval_subject,
    as_text,
    conversations,
    error_of,
    is_nested,
    result_of,
    shorten,
    spent,
    teams,
    tool_calls,
    tool_calls_by_step,
    usage_in,
)
from ..stores._summary import duration as _duration
from ..stores._summary import loads, run_summary
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
from ._conversations import add_conversation, conversation_tree
from ._display import _STYLES

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.tree import Tree

    from ..engine._journal import PeerRecord

__all__ = ("EXPORT_FORMAT", "export_json", "runs_json", "runs_table", "show_view")

EXPORT_FORMAT = 2
"""The version of the ``cadenza export`` document; raised when a field changes meaning or goes away."""

_OUTPUT_CHARS = 100



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
        usage = usage_in(row.usage_json, f"run {row.run_id}")
        glyph, style = _STYLES.get(row.status, ("•", ""))
        table.add_row(f"[cyan]{row.run_id}[/]", escape(row.workflow), f"[{style}]{glyph} {row.status}[/]",
                      _local(row.started_at), _duration(row.started_at, row.finished_at),
                      str(usage.total_tokens), f"${usage.cost_usd:.4f}")
    return Group(Text(f"runs in {where}", style="dim"), table)


def runs_json(rows: Sequence[RunRow]) -> list[dict[str, Any]]:
    """The runs as JSON-ready summaries, in the order given."""
    return [run_summary(row) for row in rows]


# --------------------------------------------------------------------------- cadenza show


def show_view(snapshot: RunSnapshot, audit: Sequence[AuditRecord] = (),
              messages: Sequence[MessageRow] = ()) -> RenderableType:
    """The run for a terminal: a header with totals, each team's plan as a tree (with each step's tool calls and
    what came of them, and the conversation of a step that is a peer group), a peer group that is the whole run
    as its own tree, pending approvals."""
    from rich.console import Group

    parts: list[RenderableType] = [_header(snapshot.run, spent(snapshot))]
    by_scope = {t.scope: t for t in teams(snapshot)}
    shown: set[ScopePath] = set()
    within = _Within(tool_calls_by_step(audit), conversations(messages))
    for team in by_scope.values():
        if team.scope not in shown and not is_nested(team.scope, by_scope):
            parts.append(_team_tree(team, by_scope, shown, within))
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
    output = loads(run.output_json, f"the output of run {run.run_id}")
    if output is not None:  # whole: it is what the run was for
        grid.add_row("output", escape(as_text(output).strip()))
    error = error_of(run.error_json, f"run {run.run_id}")
    if error is not None and run.status == "waiting":
        grid.add_row("waiting", f"[{style}]{escape(error.message)}[/]")
    elif error is not None:
        grid.add_row("error", f"[{style}]{escape(error.type)}: {escape(error.message)}[/]")
    return grid


@dataclasses.dataclass(slots=True)
class _Within:
    """What ``show`` draws under the steps: tool calls, and the conversations not drawn yet, by step path."""

    calls: dict[str, list[dict[str, Any]]]
    conversations: dict[ScopePath, PeerRecord]
    cut: bool = False
    """Whether a step's output was drawn cut to one line: the view then says where to read it whole."""


def _team_tree(team: TeamState, by_scope: dict[ScopePath, TeamState], shown: set[ScopePath], within: _Within) -> Tree:
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
        nested = by_scope.get(path)
        if nested is not None and nested.scope not in shown:
            node.add(_team_tree(nested, by_scope, shown, within))
    return tree


def _step_label(step: StepState) -> str:
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
    tokens = usage_in(row.usage_json, f"step {step.id!r}").total_tokens
    if tokens:
        label += f" [dim]· {tokens} tokens[/]"
    if step.plan_step is not None and step.plan_step.depends_on:
        label += f" [dim](after {escape(', '.join(step.plan_step.depends_on))})[/]"
    return label


def _add_step_detail(node: Tree, step: StepState) -> bool:
    """Adds the step's error or skip reason, its output and why a conversation stopped; True if the output was cut."""
    from rich.markup import escape

    row = step.row
    if row is None:
        return False
    error = error_of(row.error_json, f"step {step.id!r}")
    result = result_of(row)
    if error is not None and step.status != "waiting":  # what a waiting step waits for is listed at the end
        style = _STYLES.get(step.status, ("", "red"))[1]
        node.add(f"[{style}]{escape(error.type)}: {escape(shorten(error.message, _OUTPUT_CHARS))}[/]")
    elif row.skip_reason:
        node.add(f"[dim]skipped: {escape(shorten(row.skip_reason, _OUTPUT_CHARS))}[/]")
    cut = False
    if result is not None and result.output is not None:
        text = as_text(result.output)
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
            out[f.name.removesuffix("_json")] = loads(value, f"{type(row).__name__}.{f.name}")
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

