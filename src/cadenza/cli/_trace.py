"""``cadenza trace RUN_ID``: the tree of a recorded run with a timeline, built from what the run stored.

The lines are `cadenza.recorded.trace_lines`: each step of each team's plan (a nested team's steps under the
step that ran it), the model calls (``chat MODEL`` with their own duration, tokens and cost) and tool calls
(denied ones too) its agent made, and a peer group's messages (``✉ sender → recipient``, still ``·`` if no
member handled it) among its members' calls. A bar per line, scaled to the whole run, shows what ran in
parallel; steps on each team's critical path are marked ``*`` with a solid bar.
Works for finished, failed, waiting and resumed runs: only stored rows are read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import click

from .._usage import Usage
from ..recorded import offset, trace_lines
from ..stores.base import AuditRecord, MessageRow, RunSnapshot

__all__ = ("render_trace", "trace_command")

_GLYPHS = {"success": "✓", "partial": "◐", "failed": "✗", "skipped": "·", "cancelled": "⊘", "waiting": "⏸",
           "running": "▶", "pending": "·"}


def render_trace(snapshot: RunSnapshot, audit: list[AuditRecord], messages: Sequence[MessageRow] = (), *,
                 width: int = 40) -> str:
    """The trace as plain text: a header, then one line per step, call or peer message with its timeline bar."""
    run = snapshot.run
    usage = Usage.model_validate_json(run.usage_json)
    end = run.finished_at or max((r.finished_at for r in snapshot.steps if r.finished_at), default=run.started_at)
    total = max(offset(run.started_at, end), 1e-9)
    lines = trace_lines(snapshot, audit, messages)
    label_width = max((2 * ln.depth + len(ln.label) for ln in lines), default=10) + 2
    out = [f"run {run.run_id}  {run.workflow}  {_GLYPHS.get(run.status, '•')} {run.status}  {total:.2f}s · "
           f"{usage.total_tokens} tokens · ${usage.cost_usd:.4f} · {usage.model_calls} model call{'s' * (usage.model_calls != 1)}",
           f"{'':<{label_width + 2}}{'start':>7} {'took':>7} {'tokens':>7} {'cost':>8}  "
           f"0s{'':{width - 2 - len(f'{total:.2f}s')}}{total:.2f}s"]
    for ln in lines:
        mark = "*" if ln.critical else " "
        name = f"{'  ' * ln.depth}{_GLYPHS.get(ln.status, '•')} {ln.label}"
        start = f"{ln.start:6.2f}s" if ln.start is not None else f"{'':7}"
        took = f"{ln.duration:6.2f}s" if ln.duration is not None else f"{'':7}"
        money = f"${ln.cost:.4f}" if ln.tokens else ""
        tokens = str(ln.tokens) if ln.tokens else ""
        bar = _bar(ln.start, ln.duration, total, width, solid=ln.critical)
        detail = f"  {ln.detail}" if ln.detail else ""
        out.append(f"{mark} {name:<{label_width}}{start} {took} {tokens:>7} {money:>8}  {bar}{detail}".rstrip())
    out.append("* on the critical path of its team (the chain of dependencies that finished last)")
    return "\n".join(out)


def _bar(start: float | None, duration: float | None, total: float, width: int, *, solid: bool) -> str:
    if start is None:
        return " " * width
    left = min(width - 1, int(start / total * width))
    if duration is None:  # an instant (a tool call): a tick
        return " " * left + "╵" + " " * (width - left - 1)
    length = max(1, round(duration / total * width))
    length = min(length, width - left)
    return " " * left + ("█" if solid else "▒") * length + " " * (width - left - length)


async def _load(url: str, run_id: str) -> tuple[RunSnapshot, list[AuditRecord], list[MessageRow]]:
    from ._records import open_existing

    async with open_existing(url, run_id) as store:
        return await store.snapshot(run_id), await store.audit(run_id), await store.messages(run_id)


def trace_command(url: str, run_id: str, *, width: int) -> None:
    """``cadenza trace``: print the tree and timeline of a recorded run."""
    snapshot, audit, messages = asyncio.run(_load(url, run_id))
    click.echo(render_trace(snapshot, audit, messages, width=width))
