"""Durable runs: recording a team's run in a store, and resuming one a process left unfinished.

The guarantee, in plain words: a step runs at least once (one that was in flight when a
process died runs again on resume), and each step's completion is recorded exactly once
(a finished step is read back, never run or paid for again). Tools with side effects say
how they may be repeated (see `cadenza.Tool.side_effect`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from .._errors import ApprovalError, BusError, ConfigError, ErrorCode, ResumeError, RunNotFound
from .._ids import AgentId, RunId, child_path, new_task_id
from .._messages import ErrorInfo, Task, utcnow
from .._status import FINISHED_RUN
from .._usage import Usage
from .._version import __version__
from ..security._audit import AuditLog
from ..stores.base import (
    ApprovalRow,
    PutApproval,
    PutRun,
    PutToolCall,
    RunRow,
    ToolCallRow,
    Write,
)
from ._fingerprint import describe, diff, digest
from ._journal import Prior, RunJournal

if TYPE_CHECKING:
    from .._events import EventSink
    from .._result import RunResult
    from .._worker import Worker
    from ..stores.base import RunSnapshot, Store
    from ._run_state import LocalPort, RunState

__all__ = ("Engine", "approve", "open_for", "record_run", "recorded_usage", "resume_run")

R = TypeVar("R", RunRow, ToolCallRow)

Engine = Callable[[Task, "LocalPort"], Awaitable["RunResult[Any]"]]
"""A team's whole run from its first Task and the run's port (the supervisor's plan, execute, synthesise): what a
durable run wraps. Durability calls it; it knows nothing of the store the run is recorded in."""


@asynccontextmanager
async def open_for(store: Store | str | os.PathLike[str]) -> AsyncIterator[Store]:
    """``store`` itself if it is a `Store` (the caller opened it), else the store at that URL, open for the block."""
    from ..stores import open_store
    from ..stores.base import Store

    if isinstance(store, Store):
        yield store
        return
    async with open_store(store) as opened:
        yield opened


def fingerprint(team: Worker, options: dict[str, Any] | None) -> dict[str, Any]:
    """What the run row keeps of the team: its description, and how it was built (``options``)."""
    return {"team": describe(team), "options": options or {}}


async def record_run(team: Worker, engine: Engine, task: Task, store: Store, *, state: RunState, events: EventSink | None,
                     source: str | None, options: dict[str, Any] | None, workflow: str | None = None,
                     audit: bool = True) -> RunResult[Any]:
    """Run ``task`` through ``engine`` (``team``'s run) in ``state``, recording everything in ``store``; the run
    row is durable before any step.

    Raises:
        ConfigError: a run with this id is already in the store (it is left as it is).
    """
    try:
        existing = await store.get_run(task.run_id)
    except RunNotFound:
        existing = None
    if existing is not None:
        raise ConfigError(f"run {task.run_id!r} already exists in {store.url} ({existing.status}); "
                          "resume it, or start the new run under another id")
    print_ = fingerprint(team, options)
    row = RunRow(
        run_id=task.run_id, workflow=workflow or team.name, goal=task.instruction, status="running", started_at=utcnow(),
        source=source, input_json=json.dumps(task.input, default=str), fingerprint_json=json.dumps(print_),
        fingerprint_hash=digest(print_), cadenza_version=__version__,
    )
    journal = RunJournal(store, task.run_id)
    await journal.commit(PutRun(row))
    log = AuditLog(task.run_id, write=journal.record) if audit else None
    if log is not None:
        log.append("run.started", team.name, task.run_id, {"workflow": row.workflow, "goal": task.instruction})
    return await _drive(engine, task, state, journal, row, events, log)


async def resume_run(team: Worker, engine: Engine, run_id: RunId, store: Store, *, state: RunState,
                     events: EventSink | None, force: bool, audit: bool = True) -> RunResult[Any]:
    """Continue ``run_id`` through ``engine`` (``team``'s run): finished steps are read back, the rest run."""
    snapshot = await store.snapshot(run_id)
    row = snapshot.run
    if row.status in FINISHED_RUN:
        ended = f" at {row.finished_at:%Y-%m-%d %H:%M:%S} UTC" if row.finished_at else ""
        raise ResumeError(f"run {run_id!r} already finished ({row.status}{ended}); there is nothing to resume")
    stored = json.loads(row.fingerprint_json)
    changes = diff(stored.get("team", {}), describe(team))
    if changes and not force:
        detail = "\n".join(f"  - {c}" for c in changes[:20])
        more = f"\n  ... and {len(changes) - 20} more" if len(changes) > 20 else ""
        raise ResumeError(f"run {run_id!r} was started by a different team; its finished steps may not fit this one "
                          f"({len(changes)} change{'s' * (len(changes) > 1)}):\n{detail}{more}\n"
                          "resume anyway with --force (Python: force=True)", changes=changes)
    task = Task(task_id=new_task_id(), run_id=run_id, sender=AgentId("user"), recipient=AgentId(team.name),
                instruction=row.goal, input=json.loads(row.input_json))
    prior = Prior.from_snapshot(snapshot)
    prior.read_messages(await store.messages(run_id))
    journal = RunJournal(store, run_id, prior=prior)
    _charge_earlier_processes(state, snapshot)
    undecided = await _hold_uncertain_calls(journal, row)
    if undecided:
        return undecided
    running = _replace(row, status="running", finished_at=None, error_json=None)
    await journal.commit(PutRun(running))
    log = await AuditLog.resume(store, run_id, write=journal.record) if audit else None
    if log is not None:
        log.append("run.resumed", team.name, run_id, {"was": row.status, "forced": force, "changes": changes[:20]})
    return await _drive(engine, task, state, journal, running, events, log)


def recorded_usage(snapshot: RunSnapshot) -> Usage:
    """The sum of what the store holds as spent in the run: finished steps, planners and synthesizers.

    A team step's usage rolls up its nested team's steps, planner and synthesizer; where those are
    recorded, they are counted instead of the team step, so a nested team that is half done counts its
    finished half.

    Raises:
        ValueError: a stored usage that is not valid (pydantic's ValidationError).
    """
    recorded = {row.scope for row in snapshot.steps} | {row.scope for row in snapshot.usage}
    parts = [Usage.model_validate_json(row.usage_json) for row in snapshot.steps
             if child_path(row.scope, row.step_id) not in recorded]
    parts += [Usage.model_validate_json(row.usage_json) for row in snapshot.usage]
    return Usage.sum(parts)


def _charge_earlier_processes(state: RunState, snapshot: RunSnapshot) -> None:
    """A resumed run's budget covers the whole run: what earlier processes spent counts against it.

    That is the larger of what their finished work recorded and what their budget reservations stand for
    (a call still in flight when a process died counts at its worst case: it may have been billed).
    """
    from ._reservations import reserved_total

    account = state.budget
    if account is None:
        return
    earlier = recorded_usage(snapshot)
    reserved_tokens, reserved_usd = reserved_total(snapshot.reservations)
    account.spent_tokens += max(earlier.total_tokens, reserved_tokens)
    account.spent_usd += max(earlier.cost_usd, reserved_usd)


async def _hold_uncertain_calls(journal: RunJournal, row: RunRow) -> RunResult[Any] | None:
    """At-most-once calls that were in flight when the run stopped: the run waits for a human to decide each."""
    from .._result import RunResult
    from ._approvals import UNCERTAIN, current_decision

    prior = journal.prior
    in_flight = [c for c in prior.tool_calls.values()
                 if c.side_effect == "at_most_once" and c.status in ("started", "uncertain")]
    writes: list[Write] = []
    waiting: list[str] = []
    for call in in_flight:
        the_id, decided, _ = current_decision(prior.approvals, call.key, uncertain=True)
        if decided is not None and decided.status != "pending":
            continue
        waiting.append(f"tool {call.tool!r} in step {call.scope!r} ({the_id})")
        if call.status == "started":
            writes.append(PutToolCall(_replace(call, status="uncertain")))
        if decided is None:
            writes.append(PutApproval(ApprovalRow(row.run_id, the_id, call.scope, call.step_id, call.agent, call.tool,
                                                  call.arguments_digest, "null", UNCERTAIN, "pending", utcnow())))
    if not waiting:
        return None
    error = ErrorInfo(type="UncertainToolCalls", code=ErrorCode.UNCERTAIN_TOOL_CALLS, message=(
        f"{len(waiting)} at-most-once call{'s' * (len(waiting) > 1)} may have taken effect before the run stopped: "
        f"{'; '.join(waiting)}. Decide with: cadenza approve {row.run_id} STEP (run it again) or "
        f"cadenza reject {row.run_id} STEP (skip it)"))
    paused = _replace(row, status="waiting", error_json=error.model_dump_json())
    await journal.commit(*writes, PutRun(paused))
    now = utcnow()
    return RunResult(run_id=RunId(row.run_id), status="waiting", output=None,
                     usage=Usage.model_validate_json(row.usage_json), started_at=row.started_at, finished_at=now,
                     error=error)


async def _drive(engine: Engine, task: Task, state: RunState, journal: RunJournal, row: RunRow,
                 events: EventSink | None, log: AuditLog | None) -> RunResult[Any]:
    state.journal = journal
    state.audit_log = log
    try:
        result = await engine(task, state.port(events=events))
    except asyncio.CancelledError:
        await journal.flush()  # what finished before the cancellation is durable; its cost is the run's so far
        spent = await spent_so_far(journal.store, row.run_id)
        await _finish(journal, _replace(row, status="cancelled", finished_at=utcnow(),
                                        usage_json=spent.model_dump_json()))
        raise
    except BusError:  # the run's record is whole, the bus is not: the run stays unfinished, to resume once it is back
        await journal.flush()
        raise
    except Exception as exc:
        error = ErrorInfo.from_exception(exc)
        if journal.failure is None:  # the store still works: record why the run ended, and what it spent
            await _finish_failed(journal, row, error)
        raise
    result.started_at = row.started_at
    await _finish(journal, _replace(
        row, status=result.status, finished_at=None if result.status == "waiting" else result.finished_at,
        usage_json=result.usage.model_dump_json(),
        output_json=json.dumps(result.output, default=str) if result.output is not None else None,
        error_json=result.error.model_dump_json() if result.error is not None else None,
    ))
    return result


async def spent_so_far(store: Store, run_id: str) -> Usage:
    """What the run's recorded steps, plans and syntheses spent: the total of a run that did not finish."""
    snapshot = await store.snapshot(run_id)
    usages = [Usage.model_validate_json(s.usage_json) for s in snapshot.steps if s.scope.count("/") == 0]
    usages += [Usage.model_validate_json(u.usage_json) for u in snapshot.usage if u.scope.count("/") == 0]
    return Usage.sum(usages)


async def _finish_failed(journal: RunJournal, row: RunRow, error: ErrorInfo) -> None:
    """A run that raised (its planner gave up, say) is recorded as failed with what it had spent."""
    await journal.flush()
    spent = recorded_usage(await journal.store.snapshot(row.run_id))
    await _finish(journal, _replace(row, status="failure", finished_at=utcnow(), usage_json=spent.model_dump_json(),
                                    error_json=error.model_dump_json()))


async def _finish(journal: RunJournal, row: RunRow) -> None:
    await journal.commit(PutRun(row))


def _replace(row: R, **changes: Any) -> R:
    return dataclasses.replace(row, **changes)


async def approve(store: Store | str | os.PathLike[str], run_id: str, step: str, *, approved: bool = True,
                  by: str = "user", note: str | None = None) -> ApprovalRow:
    """Decide the pending approval of ``step`` (a step id, a step path, or an approval id) in ``run_id``.

    ``approved=False`` rejects it. The run continues with `Supervisor.resume` (``cadenza approve`` does both).

    Raises:
        RunNotFound: no such run.
        ApprovalError: nothing pending matches ``step``, or several do (name one by its approval id).
    """
    async with open_for(store) as opened:
        return await _decide(opened, run_id, step, approved=approved, by=by, note=note)


async def _decide(store: Store, run_id: str, step: str, *, approved: bool, by: str, note: str | None) -> ApprovalRow:
    snapshot = await store.snapshot(run_id)
    pending = [a for a in snapshot.approvals if a.status == "pending"]
    matches = [a for a in pending if step in (a.approval_id, a.step_id, a.scope)]
    if not matches:
        listed = ", ".join(f"{a.scope} ({a.approval_id}: {a.tool})" for a in pending) or "none"
        raise ApprovalError(f"run {run_id!r} has no pending approval for {step!r} (pending: {listed})")
    if len(matches) > 1:
        listed = ", ".join(f"{a.approval_id} ({a.tool} in {a.scope})" for a in matches)
        raise ApprovalError(f"run {run_id!r} has {len(matches)} pending approvals for {step!r}; name one: {listed}")
    decided = await store.decide_approval(run_id, matches[0].approval_id, approved=approved, by=by, note=note)
    writes: list[Write] = []
    log = await AuditLog.resume(store, run_id, write=lambda *w: writes.extend(w))
    log.append("approval.decided", by, decided.approval_id, {
        "decision": decided.status, "step": decided.scope, "tool": decided.tool,
        "arguments_digest": decided.arguments_digest, **({"note": note} if note else {}),
    })
    await store.apply(writes)
    return decided

