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
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._errors import StoreError
from ._messages import Result, Usage, utcnow
from ._status import FINISHED_STEP
from ._step_context import PriorCall
from .stores.base import AddMessage, MessageRow, PutStep, StepRow

if TYPE_CHECKING:
    from ._messages import Task
    from ._outcomes import StepRecord
    from .stores.base import ApprovalRow, PlanRow, RunSnapshot, SpawnRow, Store, ToolCallRow, Write

__all__ = ("Prior", "RunJournal", "StepJournal")


@dataclass(slots=True)
class Prior:
    """What an earlier process recorded for this run, indexed for the resumed one."""

    plans: dict[str, PlanRow] = field(default_factory=dict)
    """By team scope."""
    results: dict[tuple[str, str], tuple[Result, int, Usage]] = field(default_factory=dict)
    """Final results (success, partial, failed) with their attempt counts and what earlier attempts that were
    retried spent, by (team scope, step id)."""
    planning: dict[str, Usage] = field(default_factory=dict)
    """What each team's planner spent, by scope: a stored plan is not paid for again, but it was paid for."""
    spawned: dict[str, list[SpawnRow]] = field(default_factory=dict)
    """By team scope."""
    tool_calls: dict[str, ToolCallRow] = field(default_factory=dict)
    """By idempotency key."""
    approvals: dict[str, ApprovalRow] = field(default_factory=dict)
    """By approval id."""
    calls_by_step: dict[str, tuple[PriorCall, ...]] = field(default_factory=dict)
    """The tool calls, by the path of the step that made them: what each step's context carries."""

    def calls_of(self, scope: str) -> tuple[PriorCall, ...]:
        """The tool calls the step at ``scope`` made in earlier processes."""
        return self.calls_by_step.get(scope, ())

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
        by_step: dict[str, list[PriorCall]] = {}
        for call in snapshot.tool_calls:
            prior.tool_calls[call.key] = call
            by_step.setdefault(call.scope, []).append(PriorCall(call.key, call.status, call.result_json))
        prior.calls_by_step = {scope: tuple(calls) for scope, calls in by_step.items()}
        for approval in snapshot.approvals:
            prior.approvals[approval.approval_id] = approval
        return prior


def _difference(total: Usage, part: Usage) -> Usage:
    """``total`` less ``part``, field by field (never below zero)."""
    return Usage(**{name: max(0, getattr(total, name) - getattr(part, name)) for name in Usage.model_fields})


class RunJournal:
    """The single writer of one run's records; one per run per process."""

    __slots__ = ("_batch_done", "_flusher", "_pending", "failure", "prior", "run_id", "store")

    def __init__(self, store: Store, run_id: str, *, prior: Prior | None = None) -> None:
        self.store = store
        self.run_id = run_id
        self.prior = prior or Prior()
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


class StepJournal:
    """One team's steps in the journal: what the executor records as each step moves on."""

    __slots__ = ("journal", "run_id", "scope")

    def __init__(self, journal: RunJournal, scope: str) -> None:
        self.journal = journal
        self.run_id = journal.run_id
        self.scope = scope

    def restored(self, step_id: str) -> tuple[Result, int, Usage] | None:
        """The final result and attempt count an earlier process recorded for the step, if any."""
        return self.journal.prior.results.get((self.scope, step_id))

    def prior_calls(self, step_id: str) -> tuple[PriorCall, ...]:
        """The tool calls the step made in earlier processes of the run."""
        return self.journal.prior.calls_of(f"{self.scope}/{step_id}")

    def started(self, record: StepRecord, task: Task) -> None:
        """An attempt was dispatched; recorded with the next batch (a crash now means: run it again)."""
        self.journal.record(
            PutStep(self._row(record, None, None)),
            AddMessage(MessageRow(self.run_id, self.scope, record.step.id, "task", task.model_dump_json(), utcnow())),
        )

    async def finished(self, record: StepRecord, result: Result, retried: list[Usage] | None) -> None:
        """The step's final result, durable before the executor acts on it."""
        body = result.model_dump_json()
        usage = result.usage if not retried else Usage.sum([result.usage, *retried])
        row = self._row(record, result, usage, body=body)
        await self.journal.commit(
            PutStep(row), AddMessage(MessageRow(self.run_id, self.scope, record.step.id, "result", body, result.finished_at))
        )

    def settled(self, record: StepRecord) -> None:
        """Skipped or cancelled: recorded with the next batch."""
        self.journal.record(PutStep(self._row(record, None, None)))

    def _row(self, record: StepRecord, result: Result | None, usage: Usage | None, *, body: str | None = None) -> StepRow:
        status: str = record.status
        if result is not None:
            status = "failed" if result.status == "failure" else result.status
        error = result.error if result is not None else record.error
        return StepRow(
            run_id=self.run_id, scope=self.scope, step_id=record.step.id, agent=record.step.agent, status=status,
            attempts=record.attempts, started_at=record.started_at,
            finished_at=result.finished_at if result is not None else record.finished_at,
            result_json=body, error_json=error.model_dump_json() if error is not None else None,
            skip_reason=record.skip_reason, usage_json=usage.model_dump_json() if usage is not None else "{}",
        )

