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
from ..engine._journal import PeerRecord
from ..recorded import (
    Call,
    TeamState,
    approval_subject,
    as_text,
    calls_by_step,
    conversations,
    error_of,
    is_nested,
    not_handled,
    rounds,
    shorten,
    spent,
    teams,
    trace_lines,
)
from ..security._audit import AuditTrail, load_trail, verify
from ..stores import Store
from ..stores._summary import duration, loads
from ..stores.base import MessageRow, RunSnapshot
from ._actions import resumable
from ._pages import page
from ._run_steps import DETAIL_CHARS, calls_table, steps_section, timeline, usage_line

__all__ = ("StoredRun", "read_run", "refusal_page", "run_body", "run_page")

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
    return page(f"cadenza run {run_id}", f'<main id="run">{body}</main>',
                where=f"run <code>{escape(run_id)}</code> in {escape(where)}", live=live, part="run")


def refusal_page(run_id: str, reason: str) -> str:
    """What the page says when a decision or a resume it sent was refused: why, and the way back."""
    return page("cadenza: refused", f'<p class="refused" id="refused">{escape(reason)}</p>'
                                    f'<p><a href="/runs/{escape(run_id)}">Back to run {escape(run_id)}</a></p>')


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
             _section("timeline", "Timeline", timeline(snapshot, lines)),
             _section("steps", "Steps", steps_section(by_scope, calls, run.messages))]
    if talks:
        parts.append(_section("conversations", "Conversations", "".join(
            _conversation(scope, record) for scope, record in talks.items())))
    parts.append(_section("audit", "Audit log", _audit(run)))
    return "\n".join(part for part in parts if part)


def _section(key: str, title: str, body: str) -> str:
    return f'<section id="{key}"><h2>{title}</h2>{body}</section>'


# --------------------------------------------------------------------------- summary


def _summary(snapshot: RunSnapshot, own: Sequence[Call], resumed: str | None) -> str:
    run = snapshot.run
    usage = spent(snapshot)
    facts = [("status", f'<span class="status {escape(run.status)}" id="run-status">{escape(run.status)}</span>'),
             ("workflow", escape(run.workflow) + (f" <span class=\"muted\">({escape(run.source)})</span>"
                                                  if run.source else "")),
             ("goal", f'<span class="text">{escape(run.goal)}</span>'),
             ("started", run.started_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
              + (f" · took {duration(run.started_at, run.finished_at)}" if run.finished_at else " · not finished")),
             ("usage", usage_line(usage))]
    error = error_of(run.error_json, f"run {run.run_id}")
    if error is not None:
        label = "waiting for" if run.status == "waiting" else "error"
        facts.append((label, f'<span class="status {escape(run.status)}">{escape(error.type)}: '
                             f'{escape(error.message)}</span>'))
    output = loads(run.output_json, f"the output of run {run.run_id}")
    if output is not None:
        facts.append(("output", f'<pre class="output">{escape(as_text(output))}</pre>'))
    if own:
        facts.append(("own calls", calls_table(own, "the team's own planning and synthesis")))
    if resumed is not None:
        facts.append(("resume", f'<span id="resumed">{escape(resumed)}</span>'))
    if resumable(run) is None and not any(a.status == "pending" for a in snapshot.approvals):  # else: decide first
        facts.append(("resume", f'<form class="resume" method="post" action="/runs/{escape(run.run_id)}/resume">'
                                '<button type="submit" id="resume">Resume the run</button> <span class="muted">'
                                "runs <code>cadenza resume</code> in a process of its own: what finished is kept"
                                "</span></form>"))
    rows = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in facts)
    return f'<section id="summary"><dl class="facts">{rows}</dl></section>'


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
        f'<td class="detail">{escape(shorten(_compact(r.detail_json), DETAIL_CHARS))}</td></tr>' for r in shown)
    return (f'<p class="verdict {"ok" if verdict.ok else "broken"}" id="audit-verdict">{escape(verdict.message)}</p>'
            f'{head}<details id="audit-records"><summary>{len(records):,} record{"s" * (len(records) != 1)}'
            f'</summary>{cut}<table class="audit"><thead><tr><th class="num">seq</th><th>time</th><th>kind</th>'
            f"<th>actor</th><th>subject</th><th>detail</th></tr></thead><tbody>{rows}</tbody></table></details>")


def _compact(detail_json: str) -> str:
    try:
        return json.dumps(json.loads(detail_json), ensure_ascii=False, separators=(", ", ": "))
    except ValueError:
        return detail_json
