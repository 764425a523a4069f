"""The run page's account of its steps: a timeline of every step and call, and each step's task, result and calls.

Model calls and tool calls come from the audit log (which keeps their outcome, time, tokens and cost, never a
prompt or a reply); a step's task from its stored message, its result from its row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from .._ids import ScopePath, child_path
from .._messages import Task
from .._usage import Usage
from ..recorded import Call, StepState, TeamState, TraceLine, as_text, error_of, is_nested, result_of, shorten, usage_in
from ..stores._summary import decode, duration
from ..stores.base import MessageRow, RunSnapshot

__all__ = ("calls_table", "steps_section", "timeline", "usage_line")

DETAIL_CHARS = 120
"""How much of a call's or a line's detail is shown."""


def usage_line(usage: Usage) -> str:
    """Tokens (in and out), cost and model calls, on one line."""
    calls = usage.model_calls
    return (f"{usage.total_tokens:,} tokens ({usage.input_tokens:,} in, {usage.output_tokens:,} out) · "
            f"${usage.cost_usd:.4f} · {calls} model call{'s' * (calls != 1)}")


def timeline(snapshot: RunSnapshot, lines: Sequence[TraceLine]) -> str:
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
            f'<td class="bar">{_bar(ln, total)}</td><td class="detail">{escape(shorten(ln.detail, DETAIL_CHARS))}</td>'
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


def _tasks(messages: Sequence[MessageRow]) -> dict[str, Task]:
    """The last task each step was given (a retried step is given one per attempt), by the step's path."""
    found: dict[str, Task] = {}
    for row in messages:
        if row.kind == "task" and row.step_id is not None:
            found[child_path(row.scope, row.step_id)] = decode(Task, row.body_json, f"message {row.seq}")
    return found


def steps_section(by_scope: Mapping[ScopePath, TeamState], calls: Mapping[str, Sequence[Call]],
                  messages: Sequence[MessageRow]) -> str:
    """Each step, nested teams' after the step that ran them, folded to one line that opens to its details."""
    tasks = _tasks(messages)
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


def _step(team: TeamState, step: StepState, calls: Sequence[Call], task: Task | None) -> str:
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
        body.append(f"<h4>usage</h4><p>{usage_line(usage)}</p>")
    if calls:
        body.append(f"<h4>model and tool calls</h4>{calls_table(calls)}")
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


def calls_table(calls: Sequence[Call], caption: str = "") -> str:
    """Model calls (with their time, tokens and cost) and tool calls (with what came of them), in the order made."""
    rows = []
    for call in calls:
        if call.is_model:
            what = f"chat {escape(call.name)}"
            numbers = _cell(call.seconds, "{:.2f}s") + _cell(call.tokens, "{:,}") + _cell(call.cost, "${:.4f}")
            said = call.error
        else:
            what = f"↳ {escape(call.name)}"
            numbers = "<td></td><td></td><td></td>"
            said = call.error or (f"→ {call.preview}" if call.preview else "")
        good = "success" if call.outcome == "ok" else "failed"
        rows.append(f'<tr class="call" data-kind="{escape(call.kind)}"><td>{what}</td>'
                    f'<td class="status {good}">{escape(call.outcome)}</td>{numbers}'
                    f'<td class="detail">{escape(shorten(said, DETAIL_CHARS))}</td></tr>')
    title = f"<caption>{escape(caption)}</caption>" if caption else ""
    return (f'<table class="calls">{title}<thead><tr><th>call</th><th>outcome</th><th class="num">took</th>'
            f'<th class="num">tokens</th><th class="num">cost</th><th></th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _cell(value: float | None, shape: str) -> str:
    return "<td></td>" if value is None else f'<td class="num">{shape.format(value)}</td>'
