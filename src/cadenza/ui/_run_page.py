"""The run page: one run as its store holds it, drawn on the server from `cadenza.recorded`'s reading of its rows.

The page's main part is rendered whole each time the run changes and swapped in by ``static/live.js``, which keeps
the sections a reader opened open. Only what the store holds is shown: the audit log keeps no prompt and no reply,
so neither does the page.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from .._ids import ScopePath, child_path, split_path
from .._messages import Task
from .._usage import Usage
from ..engine._journal import PeerRecord
from ..recorded import (
    StepState,
    TeamState,
    TraceLine,
    approval_subject,
    as_text,
    calls_by_step,
    conversations,
    error_of,
    is_nested,
    not_handled,
    result_of,
    rounds,
    shorten,
    spent,
    teams,
    trace_lines,
    usage_in,
)
from ..security._audit import AuditTrail, load_trail, verify
from ..stores import Store
from ..stores._summary import decode, duration, loads
from ..stores.base import AuditRecord, MessageRow, RunSnapshot
from ._actions import resumable

__all__ = ("StoredRun", "read_run", "refusal_page", "run_body", "run_page")

_DETAIL_CHARS = 120
_AUDIT_SHOWN = 2000
"""The most audit records the page lists (the newest); ``cadenza audit show`` lists them all."""


@dataclass(frozen=True, slots=True)
class StoredRun:
    """What the run page reads of one run: its rows, its messages and its audit log with the stored head."""

    snapshot: RunSnapshot
    messages: list[MessageRow]
    trail: AuditTrail


async def read_run(store: Store, run_id: str) -> StoredRun:
    """The run as the store holds it now (`RunNotFound` for an unknown id)."""
    snapshot = await store.snapshot(run_id)
    return StoredRun(snapshot, await store.messages(run_id), await load_trail(store, run_id))


def run_page(body: str, *, run_id: str, where: str, live: str) -> str:
    """The page around `run_body`, with the URL of its live updates."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cadenza run {escape(run_id)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/static/style.css"></head>
<body data-live="{escape(live)}" data-parts="run">
<header><h1><a href="/">cadenza</a></h1><span class="where">run <code>{escape(run_id)}</code> in {escape(where)}</span>
<span id="connection" class="connection">connecting</span></header>
<main id="run">{body}</main>
<script src="/static/live.js"></script>
</body></html>"""


def refusal_page(run_id: str, reason: str) -> str:
    """What the page says when a decision or a resume it sent was refused: why, and the way back."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cadenza: refused</title>
<link rel="stylesheet" href="/static/style.css"></head>
<body><header><h1><a href="/">cadenza</a></h1></header>
<p class="refused" id="refused">{escape(reason)}</p>
<p><a href="/runs/{escape(run_id)}">Back to run {escape(run_id)}</a></p>
</body></html>"""


def run_body(run: StoredRun, *, resumed: str | None = None) -> str:
    """The run's sections: its summary, pending approvals, plan graphs, timeline, steps, conversations, audit log.

    ``resumed`` says what became of a resume this viewer started, if it did.
    """
    snapshot = run.snapshot
    by_scope = {team.scope: team for team in teams(snapshot)}
    talks = conversations(run.messages)
    lines = trace_lines(snapshot, run.trail.records, run.messages)
    root = snapshot.plans[0].scope if snapshot.plans else None
    calls, own = calls_by_step(run.trail.records, root)
    parts = [_summary(snapshot, own, resumed), _pending(snapshot),
             _section("plan", "Plan", _plans(by_scope, {ln.path for ln in lines if ln.critical and ln.path}, talks)),
             _section("timeline", "Timeline", _timeline(snapshot, lines)),
             _section("steps", "Steps", _steps(by_scope, calls, _tasks(run.messages)))]
    if talks:
        parts.append(_section("conversations", "Conversations", "".join(
            _conversation(scope, record) for scope, record in talks.items())))
    parts.append(_section("audit", "Audit log", _audit(run)))
    return "\n".join(part for part in parts if part)


def _section(key: str, title: str, body: str) -> str:
    return f'<section id="{key}"><h2>{title}</h2>{body}</section>'


# --------------------------------------------------------------------------- summary


def _summary(snapshot: RunSnapshot, own: Sequence[AuditRecord], resumed: str | None) -> str:
    run = snapshot.run
    usage = spent(snapshot)
    facts = [("status", f'<span class="status {escape(run.status)}" id="run-status">{escape(run.status)}</span>'),
             ("workflow", escape(run.workflow) + (f" <span class=\"muted\">({escape(run.source)})</span>"
                                                  if run.source else "")),
             ("goal", f'<span class="text">{escape(run.goal)}</span>'),
             ("started", run.started_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
              + (f" · took {duration(run.started_at, run.finished_at)}" if run.finished_at else " · not finished")),
             ("usage", _usage_line(usage))]
    error = error_of(run.error_json, f"run {run.run_id}")
    if error is not None:
        label = "waiting for" if run.status == "waiting" else "error"
        facts.append((label, f'<span class="status {escape(run.status)}">{escape(error.type)}: '
                             f'{escape(error.message)}</span>'))
    output = loads(run.output_json, f"the output of run {run.run_id}")
    if output is not None:
        facts.append(("output", f'<pre class="output">{escape(as_text(output))}</pre>'))
    if own:
        facts.append(("own calls", _calls(own, "the team's own planning and synthesis")))
    if resumed is not None:
        facts.append(("resume", f'<span id="resumed">{escape(resumed)}</span>'))
    if resumable(run) is None and not any(a.status == "pending" for a in snapshot.approvals):  # else: decide first
        facts.append(("resume", f'<form class="resume" method="post" action="/runs/{escape(run.run_id)}/resume">'
                                '<button type="submit" id="resume">Resume the run</button> <span class="muted">'
                                "runs <code>cadenza resume</code> in a process of its own: what finished is kept"
                                "</span></form>"))
    rows = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in facts)
    return f'<section id="summary"><dl class="facts">{rows}</dl></section>'


def _usage_line(usage: Usage) -> str:
    calls = usage.model_calls
    return (f"{usage.total_tokens:,} tokens ({usage.input_tokens:,} in, {usage.output_tokens:,} out) · "
            f"${usage.cost_usd:.4f} · {calls} model call{'s' * (calls != 1)}")


def _pending(snapshot: RunSnapshot) -> str:
    """Each approval the run waits for, with the form that decides it (bound to the call's digest)."""
    waiting = [a for a in snapshot.approvals if a.status == "pending"]
    if not waiting:
        return ""
    run_id = escape(snapshot.run.run_id)
    why_not = resumable(snapshot.run)
    items = []
    for a in waiting:
        key = escape(a.approval_id)
        resume = (f'<label><input type="checkbox" name="resume" value="yes" id="resume-{key}" checked> resume the '
                  "run once decided</label>" if why_not is None
                  else f'<span class="muted">not resumed from here: {escape(why_not)}</span>')
        items.append(
            f'<li class="approval" data-approval="{key}"><code>{escape(a.scope)}</code> '
            f'{escape(approval_subject(a))} <span class="muted">· {escape(a.reason)} · asked '
            f'{a.requested_at.astimezone():%H:%M:%S} · {key}</span>'
            f'<form class="decision" method="post" action="/runs/{run_id}/approvals/{key}">'
            f'<input type="hidden" name="digest" value="{escape(a.arguments_digest)}">'
            f'<label>note <input type="text" name="note" id="note-{key}" maxlength="500" size="40"></label> '
            f'{resume} <button type="submit" name="decision" value="approve" class="approve">Approve</button> '
            '<button type="submit" name="decision" value="reject" class="reject">Reject</button></form></li>')
    return _section("approvals", "Waiting for a decision", f'<ul class="approvals">{"".join(items)}</ul>')


# --------------------------------------------------------------------------- plan graphs


def _plans(by_scope: Mapping[ScopePath, TeamState], critical: set[ScopePath | None],
           talks: Mapping[ScopePath, PeerRecord]) -> str:
    from ._graph import plan_graph

    shown: set[ScopePath] = set()

    def team_part(team: TeamState) -> str:
        shown.add(team.scope)
        on_path = {step.id for step in team.steps if child_path(team.scope, step.id) in critical}
        graph = plan_graph(team, critical=on_path, teams=by_scope.keys(), groups=talks.keys())
        inner = []
        for step in team.steps:
            path = child_path(team.scope, step.id)
            nested = by_scope.get(path)
            if nested is not None and path not in shown:
                inner.append(f'<details class="nested" id="team-{escape(path)}"><summary>{_team_title(nested)} '
                             f'<span class="muted">· the team that ran step {escape(step.id)}</span></summary>'
                             f'{team_part(nested)}</details>')
        return f'<div class="graph">{graph}</div>' + "".join(inner)

    parts = []
    for team in by_scope.values():
        if team.scope not in shown and not is_nested(team.scope, by_scope):
            parts.append(f'<div class="team"><h3>{_team_title(team)}</h3>{team_part(team)}</div>')
    return "".join(parts) or '<p class="empty">no plan recorded yet</p>'


def _team_title(team: TeamState) -> str:
    done = sum(step.status in ("success", "partial") for step in team.steps)
    plan = f"{team.source} plan" if team.source else "no stored plan"
    count = len(team.steps)
    return (f'<code>{escape(team.scope)}</code> <span class="muted">· {escape(plan)}, {count} step'
            f'{"s" * (count != 1)}, {done} done</span>')


# --------------------------------------------------------------------------- timeline


def _timeline(snapshot: RunSnapshot, lines: Sequence[TraceLine]) -> str:
    """Each step, call and peer message as a bar (or a tick) on the run's time; steps on their team's critical path
    solid."""
    if not lines:
        return '<p class="empty">nothing has run yet</p>'
    ends = [ln.start + (ln.duration or 0.0) for ln in lines if ln.start is not None]
    run = snapshot.run
    total = max([*ends, (run.finished_at - run.started_at).total_seconds() if run.finished_at else 0.0, 1e-6])
    rows = []
    for ln in lines:
        classes = " ".join(filter(None, ("line", escape(ln.status), "critical" if ln.critical else "",
                                         "step" if ln.path else "call")))
        start = "" if ln.start is None else f"{ln.start:.2f}s"
        took = "" if ln.duration is None else f"{ln.duration:.2f}s"
        label = escape(ln.label)
        if ln.path:
            label = f'<a href="#step-{escape(ln.path)}">{label}</a>'
        path = f' data-path="{escape(ln.path)}"' if ln.path else ""
        rows.append(
            f'<tr class="{classes}"{path}><td class="label" style="padding-left:{0.4 + 1.2 * ln.depth:.1f}em">'
            f'{label}</td><td class="num">{start}</td><td class="num">{took}</td>'
            f'<td class="num">{f"{ln.tokens:,}" if ln.tokens else ""}</td>'
            f'<td class="num">{f"${ln.cost:.4f}" if ln.tokens else ""}</td>'
            f'<td class="bar">{_bar(ln, total)}</td><td class="detail">{escape(shorten(ln.detail, _DETAIL_CHARS))}</td>'
            "</tr>")
    return (f'<table class="timeline"><thead><tr><th>step or call</th><th class="num">start</th>'
            f'<th class="num">took</th><th class="num">tokens</th><th class="num">cost</th>'
            f'<th class="bar">0s … {total:.2f}s</th><th></th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
            '<p class="muted">A solid bar is on its team\'s critical path: the chain of dependencies that finished '
            "last, so decided when the team could finish.</p>")


def _bar(line: TraceLine, total: float) -> str:
    if line.start is None:
        return ""
    left = min(100.0, line.start / total * 100)
    if line.duration is None:  # an instant: a tool call or a message
        return f'<span class="tick" style="left:{left:.2f}%"></span>'
    width = max(0.5, min(100.0 - left, line.duration / total * 100))
    return f'<span class="span" style="left:{left:.2f}%;width:{width:.2f}%"></span>'


# --------------------------------------------------------------------------- steps


def _tasks(messages: Sequence[MessageRow]) -> dict[str, Task]:
    """The last task each step was given (a retried step is given one per attempt), by the step's path."""
    found: dict[str, Task] = {}
    for row in messages:
        if row.kind == "task" and row.step_id is not None:
            found[child_path(row.scope, row.step_id)] = decode(Task, row.body_json, f"message {row.seq}")
    return found


def _steps(by_scope: Mapping[ScopePath, TeamState], calls: Mapping[str, Sequence[AuditRecord]],
           tasks: Mapping[str, Task]) -> str:
    parts = []
    for team, step in _depth_first(by_scope):
        path = child_path(team.scope, step.id)
        parts.append(_step(team, step, calls.get(path, ()), tasks.get(path)))
    return "".join(parts) or '<p class="empty">no steps recorded yet</p>'


def _depth_first(by_scope: Mapping[ScopePath, TeamState]) -> list[tuple[TeamState, StepState]]:
    """Every team's steps in plan order, a nested team's right after the step that ran it."""
    ordered: list[tuple[TeamState, StepState]] = []
    seen: set[ScopePath] = set()

    def add(team: TeamState) -> None:
        seen.add(team.scope)
        for step in team.steps:
            ordered.append((team, step))
            nested = by_scope.get(child_path(team.scope, step.id))
            if nested is not None and nested.scope not in seen:
                add(nested)

    for team in by_scope.values():
        if team.scope not in seen and not is_nested(team.scope, by_scope):
            add(team)
    for team in by_scope.values():  # a team whose parent step is not recorded
        if team.scope not in seen:
            add(team)
    return ordered


def _step(team: TeamState, step: StepState, calls: Sequence[AuditRecord], task: Task | None) -> str:
    path = child_path(team.scope, step.id)
    row = step.row
    usage = usage_in(row.usage_json, f"step {step.id!r}") if row else Usage()
    facts = [f'<span class="status {escape(step.status)}">{escape(step.status)}</span>',
             f"<code>{escape(path)}</code>", escape(step.agent)]
    if row is not None and row.attempts > 1:
        facts.append(f"{row.attempts} attempts")
    if row is not None and row.finished_at is not None:
        facts.append(duration(row.started_at, row.finished_at))
    if usage.total_tokens:
        facts.append(f"{usage.total_tokens:,} tokens · ${usage.cost_usd:.4f}")
    body = [_task(step, task)]
    if row is not None:
        result = result_of(row)
        error = error_of(row.error_json, f"step {step.id!r}")
        if error is not None:
            label = "waits for" if step.status == "waiting" else "error"
            body.append(f'<h4>{label}</h4><p class="status {escape(step.status)}">{escape(error.type)}: '
                        f'{escape(error.message)}</p>')
        if row.skip_reason:
            body.append(f'<h4>skipped</h4><p>{escape(row.skip_reason)}</p>')
        if result is not None:
            stop = f'<p class="muted">stopped on {escape(result.stop_reason)}</p>' if result.stop_reason else ""
            shown = "" if result.output is None else f'<pre class="output">{escape(as_text(result.output))}</pre>'
            body.append(f"<h4>result ({escape(result.status)})</h4>{shown}{stop}")
        body.append(f"<h4>usage</h4><p>{_usage_line(usage)}</p>")
    if calls:
        body.append(f"<h4>model and tool calls</h4>{_calls(calls)}")
    return (f'<details class="step {escape(step.status)}" id="step-{escape(path)}"><summary>'
            f'{" · ".join(facts)}</summary><div class="body">{"".join(body)}</div></details>')


def _task(step: StepState, task: Task | None) -> str:
    if task is None:
        instruction = step.plan_step.instruction if step.plan_step else None
        return "" if instruction is None else f'<h4>task</h4><pre class="text">{escape(instruction)}</pre>'
    given = (f'<h4>input</h4><pre class="output">{escape(as_text(task.input))}</pre>'
             if task.input is not None else "")
    return (f'<h4>task <span class="muted">({escape(task.sender)} → {escape(task.recipient)}, attempt '
            f'{task.attempt})</span></h4><pre class="text">{escape(task.instruction)}</pre>{given}')


def _calls(calls: Sequence[AuditRecord], caption: str = "") -> str:
    """Model calls (with their time, tokens and cost) and tool calls (with what came of them), in the order made."""
    rows = []
    for call in sorted(calls, key=lambda r: (r.at, r.seq)):
        detail = loads(call.detail_json, f"audit record {call.seq}")
        detail = detail if isinstance(detail, dict) else {}
        outcome = str(detail.get("outcome", "denied" if call.kind == "tool.denied" else ""))
        if call.kind == "model.called":
            what = f"chat {escape(call.subject)}"
            seconds, tokens, cost = detail.get("seconds"), detail.get("tokens"), detail.get("cost_usd")
            numbers = (f'<td class="num">{seconds:.2f}s</td>' if isinstance(seconds, int | float) else "<td></td>")
            numbers += f'<td class="num">{tokens:,}</td>' if isinstance(tokens, int) else "<td></td>"
            numbers += f'<td class="num">${cost:.4f}</td>' if isinstance(cost, int | float) else "<td></td>"
            said = str(detail.get("error") or "")
        else:
            what = f"↳ {escape(call.subject)}"
            numbers = "<td></td><td></td><td></td>"
            said = str(detail.get("detail") or detail.get("reason") or "")
            if not said and detail.get("result_preview"):
                said = f"→ {detail['result_preview']}"
        good = "success" if outcome == "ok" else "failed"
        rows.append(f'<tr class="call" data-kind="{escape(call.kind)}"><td>{what}</td>'
                    f'<td class="status {good}">{escape(outcome)}</td>{numbers}'
                    f'<td class="detail">{escape(shorten(said, _DETAIL_CHARS))}</td></tr>')
    title = f"<caption>{escape(caption)}</caption>" if caption else ""
    return (f'<table class="calls">{title}<thead><tr><th>call</th><th>outcome</th><th class="num">took</th>'
            f'<th class="num">tokens</th><th class="num">cost</th><th></th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


# --------------------------------------------------------------------------- conversations


def _conversation(scope: ScopePath, record: PeerRecord) -> str:
    """A peer group's messages as a sequence: who said what to whom, in each round, and who handled it."""
    count, waiting, deep = len(record.said), not_handled(record), rounds(record)
    summary = (f"<code>{escape(scope)}</code> <span class=\"muted\">· peer group · {count} message"
               f"{'s' * (count != 1)} in {deep} round{'s' * (deep != 1)}"
               + (f", {waiting} not handled" if waiting else "") + "</span>")
    items = []
    for said in record.said:
        handled = record.handled.get(said.message_id)
        answer = ""
        if handled is not None and handled.answer is not None:
            answer = (f'<div class="answer">✓ {escape(handled.agent)} answered: '
                      f'<span class="text">{escape(handled.answer)}</span></div>')
        state = "handled" if handled is not None else "not-handled"
        note = "" if handled is not None else ' <span class="status waiting">not handled</span>'
        items.append(f'<li class="message {state}" data-sender="{escape(said.sender)}" '
                     f'data-recipient="{escape(said.recipient)}"><span class="round">round {said.round}</span> '
                     f'<b>{escape(said.sender)}</b> → <b>{escape(said.recipient)}</b>{note}'
                     f'<div class="text">{escape(said.content)}</div>{answer}</li>')
    _, step_id = split_path(scope)
    return (f'<details class="group" id="group-{escape(scope)}" open><summary>{summary}</summary>'
            f'<ol class="sequence" data-group="{escape(step_id)}">{"".join(items)}</ol></details>')


# --------------------------------------------------------------------------- audit


def _audit(run: StoredRun) -> str:
    """Whether the chain holds (recomputed against the stored head), then the records."""
    records = run.trail.records
    verdict = verify(records, run_id=run.snapshot.run.run_id, head=run.trail.head)
    head = (f'<p class="muted">head: seq {verdict.head.seq}, sha256 <code>{verdict.head.hash}</code></p>'
            if verdict.ok and verdict.head is not None else "")
    shown = records[-_AUDIT_SHOWN:]
    cut = (f'<p class="muted">the newest {_AUDIT_SHOWN:,} of {len(records):,}; all of them: '
           f"<code>cadenza audit show {escape(run.snapshot.run.run_id)}</code></p>") if len(records) > len(shown) else ""
    rows = "".join(
        f'<tr><td class="num">{r.seq}</td><td>{r.at.astimezone():%H:%M:%S}.{r.at.microsecond // 1000:03d}</td>'
        f"<td>{escape(r.kind)}</td><td><code>{escape(r.actor)}</code></td><td>{escape(r.subject)}</td>"
        f'<td class="detail">{escape(shorten(_compact(r.detail_json), _DETAIL_CHARS))}</td></tr>' for r in shown)
    return (f'<p class="verdict {"ok" if verdict.ok else "broken"}" id="audit-verdict">{escape(verdict.message)}</p>'
            f'{head}<details id="audit-records"><summary>{len(records):,} record{"s" * (len(records) != 1)}'
            f'</summary>{cut}<table class="audit"><thead><tr><th class="num">seq</th><th>time</th><th>kind</th>'
            f"<th>actor</th><th>subject</th><th>detail</th></tr></thead><tbody>{rows}</tbody></table></details>")


def _compact(detail_json: str) -> str:
    try:
        return json.dumps(json.loads(detail_json), ensure_ascii=False, separators=(", ", ": "))
    except ValueError:
        return detail_json
