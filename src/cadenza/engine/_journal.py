"""Recording a run in a store as it happens, with group commit.

The executor must not dispatch a step before the results it depends on are durable,
yet one commit per step would make persistence the bottleneck of a wide fan-out.
`RunJournal` keeps a buffer of writes: `record` adds to it without waiting, and
`commit` adds to it and waits until the batch holding those writes is durable. One
background flush writes everything buffered in one transaction, so steps finishing
together share a commit and a chain pays one small commit per step.

The journal also holds what an earlier process of the same run left behind (`Prior`),
so a resumed run reads finished steps back instead of executing them again.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from .._errors import ResumeError, StoreError
from .._events import (
    ApprovalRequested,
    BudgetReserved,
    BudgetSettled,
    PeerMessageHandled,
    PeerMessageSent,
    PlanReady,
    StepCancelled,
    StepFailed,
    StepFinished,
    StepSkipped,
    StepStarted,
    StepWaiting,
    ToolCallRecorded,
    UsageRecorded,
)
from .._ids import ScopePath, split_path
from .._messages import PeerMessage, Result
from .._plan import Plan
from .._status import FINISHED_STEP
from .._step_context import PriorCall
from .._usage import Usage
from ..stores.base import (
    AddMessage,
    AddSpawn,
    ApprovalRow,
    MessageRow,
    PlanRow,
    PutApproval,
    PutPlan,
    PutReservation,
    PutStep,
    PutToolCall,
    PutUsage,
    ReservationRow,
    SpawnRow,
    StepRow,
    ToolCallRow,
    UsageRow,
)
from ._fingerprint import digest

if TYPE_CHECKING:
    from datetime import datetime

    from .._events import Event
    from .._messages import ErrorInfo
    from ..stores.base import RunSnapshot, Store, Write

__all__ = ("Handled", "JournalSink", "PeerRecord", "Prior", "RunJournal")


@dataclass(slots=True)
class Prior:
    """What the run has recorded so far, indexed: read back from the store when a process resumes it, and kept
    up to date by this process where a later step or attempt must see what an earlier one did (its approvals and
    guarded tool calls)."""

    plans: dict[ScopePath, PlanRow] = field(default_factory=dict)
    """By team scope."""
    results: dict[tuple[ScopePath, str], tuple[Result, int, Usage]] = field(default_factory=dict)
    """Final results (success, partial, failed) with their attempt counts and what earlier attempts that were
    retried spent, by (team scope, step id)."""
    planning: dict[ScopePath, Usage] = field(default_factory=dict)
    """What each team's planner spent, by scope: a stored plan is not paid for again, but it was paid for."""
    spawned: dict[ScopePath, list[SpawnRow]] = field(default_factory=dict)
    """By team scope."""
    tool_calls: dict[str, ToolCallRow] = field(default_factory=dict)
    """By idempotency key."""
    approvals: dict[str, ApprovalRow] = field(default_factory=dict)
    """By approval id."""
    conversations: dict[ScopePath, PeerRecord] = field(default_factory=dict)
    """What each peer group said and handled, by the group's path: where a resumed group takes up its talk."""
    calls_by_step: dict[ScopePath, dict[str, PriorCall]] = field(default_factory=dict)
    """The tool calls by key, by the path of the step that made them: what each attempt's context carries."""

    def result_of(self, path: ScopePath) -> tuple[Result, int, Usage] | None:
        """The final result, attempt count and retried usage an earlier process recorded for the step at
        ``path``, if any."""
        return self.results.get(split_path(path))

    def plan_of(self, scope: ScopePath, workers: Iterable[str]) -> tuple[Plan, Literal["planner", "static"]] | None:
        """The plan an earlier process of the run followed in the team at ``scope``, checked against the team's
        ``workers`` as they are now; None when it made none.

        Raises:
            ResumeError: the stored plan assigns a step to an agent the team no longer has.
        """
        row = self.plans.get(scope)
        if row is None:
            return None
        plan = Plan.model_validate_json(row.plan_json)
        problems = plan.problems([*workers, *(p.name for p in plan.new_agents)], max_steps=max(100_000, len(plan.steps)))
        if problems:
            raise ResumeError(f"the stored plan of team {scope!r} no longer fits the team: {'; '.join(problems)}",
                              changes=problems)
        return plan, row.source

    def calls_of(self, scope: ScopePath) -> tuple[PriorCall, ...]:
        """The tool calls the step at ``scope`` made in earlier attempts, in this process or an earlier one."""
        calls = self.calls_by_step.get(scope)
        return tuple(calls.values()) if calls else ()

    def read_messages(self, rows: Iterable[MessageRow]) -> None:
        """Take in the peer groups' messages and handled notes among a run's stored ``rows``."""
        for row in rows:
            if row.kind not in ("message", "handled"):
                continue
            record = self.conversations.setdefault(row.scope, PeerRecord())
            if row.kind == "message":
                record.said.append(PeerMessage.model_validate_json(row.body_json))
            else:
                note = json.loads(row.body_json)
                record.handled[note["message_id"]] = Handled(note["agent"], note.get("answer"),
                                                             Usage.model_validate(note.get("usage", {})))

    def remember_call(self, scope: ScopePath, call: PriorCall) -> None:
        """Keep the latest state of a call, so that a retry of its step answers a finished call from its record."""
        self.calls_by_step.setdefault(scope, {})[call.key] = call

    @classmethod
    def from_snapshot(cls, snapshot: RunSnapshot) -> Prior:
        prior = cls()
        for plan in snapshot.plans:
            prior.plans[plan.scope] = plan
        for step in snapshot.steps:
            if step.status in FINISHED_STEP and step.result_json is not None:
                result = Result.model_validate_json(step.result_json)
                retried = _difference(Usage.model_validate_json(step.usage_json), result.usage)
                prior.results[(step.scope, step.step_id)] = (result, step.attempts, retried)
        for usage in snapshot.usage:
            if usage.source == "planner":
                prior.planning[usage.scope] = Usage.model_validate_json(usage.usage_json)
        for spawn in snapshot.spawned:
            prior.spawned.setdefault(spawn.scope, []).append(spawn)
        for call in snapshot.tool_calls:
            prior.tool_calls[call.key] = call
            prior.remember_call(call.scope, PriorCall(call.key, call.status, call.result_json))
        for approval in snapshot.approvals:
            prior.approvals[approval.approval_id] = approval
        return prior


@dataclass(slots=True)
class PeerRecord:
    """One peer group's stored conversation: every message in the order it was recorded, and which were handled."""

    said: list[PeerMessage] = field(default_factory=list)
    handled: dict[str, Handled] = field(default_factory=dict)
    """By message id."""


class Handled(NamedTuple):
    """A member's turn on one message, as its note recorded it."""

    agent: str
    answer: str | None
    """The final answer it gave in the turn, if any."""
    usage: Usage
    """What the turn spent: a resumed group counts it without handling the message again."""


def _difference(total: Usage, part: Usage) -> Usage:
    """``total`` less ``part``, field by field (never below zero)."""
    return Usage(**{name: max(0, getattr(total, name) - getattr(part, name)) for name in Usage.model_fields})


class RunJournal:
    """The single writer of one run's records; one per run per process."""

    __slots__ = ("_batch_done", "_flusher", "_pending", "approved_steps", "failure", "prior", "run_id", "store")

    def __init__(self, store: Store, run_id: str, *, prior: Prior | None = None) -> None:
        self.store = store
        self.run_id = run_id
        self.prior = prior or Prior()
        self.approved_steps: set[str] = set()
        """The keys of steps whose approval this process used: a retry of such a step runs on it."""
        self.failure: StoreError | None = None
        """The first failed flush: once the store fails, the run must stop, since nothing more is durable."""
        self._pending: list[Write] = []
        self._batch_done: asyncio.Future[None] | None = None
        self._flusher: asyncio.Task[None] | None = None

    def record(self, *writes: Write) -> None:
        """Buffer ``writes``; they become durable with the next flush, which nobody waits for here."""
        self._enqueue(writes)

    async def commit(self, *writes: Write) -> None:
        """Buffer ``writes`` and return once they (and everything buffered before them) are durable.

        Raises:
            StoreError: the store failed; the batch was not written.
        """
        await self._enqueue(writes)

    async def flush(self) -> None:
        """Make everything buffered so far durable."""
        if self._pending:
            await self._enqueue(())
        elif self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)
        if self.failure is not None:
            raise self.failure

    def _enqueue(self, writes: Iterable[Write]) -> asyncio.Future[None]:
        if self.failure is not None:
            failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            failed.set_exception(self.failure)
            return failed
        self._pending.extend(writes)
        done = self._batch_done
        if done is None:
            done = self._batch_done = asyncio.get_running_loop().create_future()
            if self._flusher is None or self._flusher.done():
                self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())
        return done

    async def _flush_loop(self) -> None:
        # Starts on the next turn of the event loop, so every write buffered in this turn joins the batch;
        # writes buffered while a (PostgreSQL) commit is in flight form the next batch.
        while self._batch_done is not None:
            batch, done = self._pending, self._batch_done
            self._pending, self._batch_done = [], None
            try:
                await self.store.apply(batch)
            except asyncio.CancelledError:
                if not done.done():
                    done.cancel()
                raise
            except Exception as exc:
                error = exc if isinstance(exc, StoreError) else StoreError(f"{self.store.url}: write failed: {exc}")
                self.failure = error
                _fail(done, error)
                if self._batch_done is not None:
                    _fail(self._batch_done, error)
                    self._batch_done = None
                    self._pending = []
                return
            if not done.done():
                done.set_result(None)


def _fail(future: asyncio.Future[None], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
        future.exception()  # a waiter may have gone (cancelled); the failure is kept on the journal


class JournalSink:
    """The store's sink of a run's events: the rows each event changes, buffered in the run's journal.

    The engine emits an event whose rows must be durable before it acts on them (a step's final result, a
    plan) through `EventStream.durable`, which waits for the batch holding them.
    """

    __slots__ = ("journal",)

    def __init__(self, journal: RunJournal) -> None:
        self.journal = journal

    def __call__(self, event: Event) -> None:
        kind = type(event)
        rows = _ROWS.get(kind)
        if rows is not None:
            writes = rows(event)
            if writes:
                self.journal.record(*writes)
            if kind is ApprovalRequested:  # the run's own view of its approvals: asked once per process
                request = writes[0].row
                self.journal.prior.approvals[request.approval_id] = request
            elif kind is ToolCallRecorded:  # a retried step must not repeat a call this process finished
                call = writes[0].row
                self.journal.prior.remember_call(call.scope, PriorCall(call.key, call.status, call.result_json))

    async def flush(self) -> None:
        """Make everything recorded so far durable.

        Raises:
            StoreError: the store failed.
        """
        await self.journal.flush()


def _step_row(run_id: str, scope: ScopePath, step_id: str, agent: str, status: str, attempts: int,
              started: datetime | None, finished: datetime | None = None, error: ErrorInfo | None = None, *, skip_reason: str | None = None,
              result_json: str | None = None, usage: Usage | None = None) -> StepRow:
    """The row of the step ``step_id`` of the team at ``scope`` (a step event's path, split at its last ``/``)."""
    return StepRow(
        run_id=run_id, scope=scope, step_id=step_id, agent=agent, status=status, attempts=attempts,
        started_at=started, finished_at=finished, result_json=result_json,
        error_json=error.model_dump_json() if error is not None else None, skip_reason=skip_reason,
        usage_json=usage.model_dump_json() if usage is not None else "{}",
    )


def _started(e: StepStarted) -> list[Write]:
    """An attempt was dispatched (a crash now means: run it again)."""
    scope, step_id = split_path(e.scope)
    return [PutStep(_step_row(e.run_id, scope, step_id, e.agent, "running", e.attempt, e.first_started)),
            AddMessage(MessageRow(e.run_id, scope, step_id, "task", e.task.model_dump_json(), e.at))]


def _ended(e: StepFinished | StepFailed | StepWaiting) -> list[Write]:
    """The step's final result (what a resumed run reads back instead of running it again)."""
    result = e.result
    body = result.model_dump_json()
    status = "failed" if result.status == "failure" else result.status
    scope, step_id = split_path(e.scope)
    return [PutStep(_step_row(e.run_id, scope, step_id, e.agent, status, e.attempt, e.first_started,
                              result.finished_at, result.error, result_json=body, usage=e.total)),
            AddMessage(MessageRow(e.run_id, scope, step_id, "result", body, result.finished_at))]


def _skipped(e: StepSkipped) -> list[Write]:
    scope, step_id = split_path(e.scope)
    return [PutStep(_step_row(e.run_id, scope, step_id, e.agent, "skipped", e.attempts, None, skip_reason=e.reason))]


def _cancelled(e: StepCancelled) -> list[Write]:
    scope, step_id = split_path(e.scope)
    return [PutStep(_step_row(e.run_id, scope, step_id, e.agent, "cancelled", e.attempt, e.first_started, e.at))]


def _plan(e: PlanReady) -> list[Write]:
    """A team's plan and the agents it spawned; a plan read back from the store is there already."""
    if e.restored:
        return []
    body = e.plan.model_dump_json()
    writes: list[Write] = [PutPlan(PlanRow(e.run_id, e.team, body, digest(json.loads(body)), e.source))]
    writes.extend(AddSpawn(SpawnRow(e.run_id, e.team, p.name, p.model_dump_json())) for p in e.plan.new_agents)
    return writes


def _usage(e: UsageRecorded) -> list[Write]:
    """What a team spent outside its steps (planning, synthesis): the run's totals count it."""
    if not e.usage.model_calls:
        return []
    return [PutUsage(UsageRow(e.run_id, e.team, e.source, e.usage.model_dump_json()))]


def _tool_call(e: ToolCallRecorded) -> list[Write]:
    """What a resumed run reads to keep an effect from happening twice."""
    return [PutToolCall(ToolCallRow(e.run_id, e.key, e.scope, split_path(e.scope)[1], e.agent, e.tool,
                                    e.side_effect, e.arguments_digest, e.status, e.at, e.result_json))]


def _peer_message(e: PeerMessageSent) -> list[Write]:
    """A peer group's conversation, kept with the run: what ``show`` and ``export`` read, and a resume restarts from."""
    return [AddMessage(MessageRow(e.run_id, e.group, None, "message", e.message.model_dump_json(), e.message.sent_at))]


def _peer_handled(e: PeerMessageHandled) -> list[Write]:
    """That a member handled a message: a resumed group does not hand it to the member again."""
    body = json.dumps({"message_id": e.message_id, "agent": e.agent, "answer": e.answer,
                       "usage": e.usage.model_dump()})
    return [AddMessage(MessageRow(e.run_id, e.group, None, "handled", body, e.at))]


def _approval(e: ApprovalRequested) -> list[PutApproval]:
    return [PutApproval(ApprovalRow(e.run_id, e.approval_id, e.scope, split_path(e.scope)[1], e.agent, e.tool,
                                    e.arguments_digest, e.arguments_json, e.reason, "pending", e.at))]


def _reserved(e: BudgetReserved) -> list[Write]:
    """Open until settled: a resumed run counts it at its worst case (see `_reservations`)."""
    return [PutReservation(ReservationRow(e.run_id, e.reservation_id, e.agent, e.tokens, e.usd, "open"))]


def _settled(e: BudgetSettled) -> list[Write]:
    return [PutReservation(ReservationRow(e.run_id, e.reservation_id, e.agent, e.tokens, e.usd, "settled",
                                          e.usage.total_tokens, e.usage.cost_usd))]


_ROWS: dict[type, Callable[[Any], list[Any]]] = {
    StepStarted: _started, StepFinished: _ended, StepFailed: _ended, StepWaiting: _ended, StepSkipped: _skipped,
    StepCancelled: _cancelled, PlanReady: _plan, UsageRecorded: _usage, ToolCallRecorded: _tool_call,
    ApprovalRequested: _approval, BudgetReserved: _reserved, BudgetSettled: _settled, PeerMessageSent: _peer_message,
    PeerMessageHandled: _peer_handled,
}
