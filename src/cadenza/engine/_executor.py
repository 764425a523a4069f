"""The scheduler: runs a plan with maximal parallelism.

A step starts the moment its last dependency succeeds, from inside the
continuation of that dependency; there is no central loop and no layer barrier,
so wall time approaches the plan's critical path. Limits, timeouts, retries and
the failure policy are applied per step.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from .._errors import CadenzaError, ConfigError, ErrorCode, StepTimeout, StoreError
from .._events import (
    Event,
    EventSink,
    MessageSent,
    StepCancelled,
    StepFailed,
    StepFinished,
    StepRestored,
    StepRetrying,
    StepSkipped,
    StepStarted,
    StepWaiting,
)
from .._ids import RunId, ScopePath, TaskId, child_path, new_task_id
from .._messages import ErrorInfo, Result, Task, utcnow
from .._outcomes import PlanOutcome, StepRecord
from .._plan import DEFAULT_MAX_STEPS, Plan, Step
from .._status import Outcome
from .._step_context import StepContext
from .._trusted import TrustedBuilder
from .._usage import Usage
from .._worker import Worker
from ..backends.base import Backend
from ..backends.local import LocalBackend
from ..observability._tracing import carrier, record_outcome, span
from ..observability._tracing import enabled as tracing
from ._exchange import exchange
from ._run_state import LocalPort, RunState

__all__ = ("ExecutionPolicy", "Executor", "RetryPolicy")

_build_task = TrustedBuilder(Task)
_INLINE = 32
"""How many steps of a chain one task runs before the chain goes on in a new one (`_PlanRun._run_steps`)."""

FailurePolicy = Literal["continue", "fail_fast"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries of a step whose Result is a retryable failure (a timeout, a 5xx from a provider).

    The delay before attempt ``n + 1`` is ``min(max_delay, initial_delay * 2 ** (n - 1))``
    plus up to ``jitter`` of itself at random, so parallel retries do not stampede.
    """

    max_attempts: int = 3
    initial_delay: float = 0.1
    max_delay: float = 10.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"retry max_attempts must be at least 1, got {self.max_attempts}")
        if self.initial_delay < 0 or self.max_delay < 0 or self.jitter < 0:
            raise ConfigError("retry delays and jitter must not be negative")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base: float = min(self.max_delay, self.initial_delay * 2.0 ** (attempt - 1))
        return base + random.uniform(0, base * self.jitter)


@dataclass(frozen=True, slots=True)
class ExecutionPolicy:
    """How a plan is run: limits, timeouts, retries and what a failure does to the rest."""

    max_concurrency: int | None = None
    """Steps running at once across the whole plan; ``None`` means no limit."""
    per_agent_concurrency: int | Mapping[str, int] | None = None
    """Steps running at once per agent: one number for all, or per agent name."""
    step_timeout: float | None = None
    """Seconds one attempt of a step may take; a timeout is a retryable failure."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    failure_policy: FailurePolicy = "continue"
    """``continue``: independent branches finish, dependents of a failed step are skipped.
    ``fail_fast``: the first failure cancels every running step."""

    def __post_init__(self) -> None:
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be at least 1, got {self.max_concurrency}")
        per_agent = self.per_agent_concurrency
        limits = per_agent.values() if isinstance(per_agent, Mapping) else [per_agent]
        if any(v is not None and v < 1 for v in limits):
            raise ConfigError("per_agent_concurrency limits must be at least 1")
        if self.step_timeout is not None and self.step_timeout <= 0:
            raise ConfigError(f"step_timeout must be positive, got {self.step_timeout}")
        if self.failure_policy not in ("continue", "fail_fast"):
            raise ConfigError(f"failure_policy must be 'continue' or 'fail_fast', got {self.failure_policy!r}")


class _Limits:
    """The semaphores a step must hold while it runs."""

    __slots__ = ("_agent_default", "_agent_limits", "_per_agent", "global_sem")

    def __init__(self, policy: ExecutionPolicy) -> None:
        self.global_sem = asyncio.Semaphore(policy.max_concurrency) if policy.max_concurrency else None
        per_agent = policy.per_agent_concurrency
        self._agent_limits: Mapping[str, int] = per_agent if isinstance(per_agent, Mapping) else {}
        self._agent_default = per_agent if isinstance(per_agent, int) else None
        self._per_agent: dict[str, asyncio.Semaphore] = {}

    def for_agent(self, agent: str) -> asyncio.Semaphore | None:
        limit = self._agent_limits.get(agent, self._agent_default)
        if limit is None:
            return None
        sem = self._per_agent.get(agent)
        if sem is None:
            sem = self._per_agent[agent] = asyncio.Semaphore(limit)
        return sem


class Executor:
    """Runs plans on a backend under an `ExecutionPolicy`."""

    def __init__(self, policy: ExecutionPolicy | None = None, *, backend: Backend | None = None) -> None:
        self.policy = policy or ExecutionPolicy()
        self.backend: Backend = backend or LocalBackend()

    async def run(
        self,
        plan: Plan,
        workers: Mapping[str, Worker],
        *,
        run_id: RunId,
        team: ScopePath,
        parent_task_id: TaskId | None = None,
        depth: int = 0,
        events: EventSink | None = None,
        port: LocalPort | None = None,
        ceiling: frozenset[str] | None = None,
    ) -> PlanOutcome:
        """Run every step of a checked plan and return what happened to each.

        ``port`` is the run the plan belongs to, as its team reaches it (its budgets, its journal, its event
        sink); without one, the plan runs on its own, telling ``events`` what happens. ``ceiling`` is the most
        any agent of the plan may hold. ``team`` is the team's path in the run; when the run is recorded, every step
        is recorded under it, by its id: a step's result is durable before any dependent starts,
        and steps an earlier process finished are read back instead of run again.

        Cancelling this coroutine cancels every running step and waits for them
        before the cancellation propagates, so no task outlives the run.

        Raises:
            StoreError: the journal's store failed; running steps were cancelled first.
        """
        plan.check(workers.keys(), max_steps=max(DEFAULT_MAX_STEPS, len(plan.steps)))  # size is the planner's policy
        if port is None:
            port = RunState(run_id).port(events=events)
        run = _PlanRun(self, plan, workers, run_id, team, parent_task_id, depth, port, ceiling)
        return await run.execute()


class _PlanRun:
    """The state of one plan execution; lives only for one `Executor.run` call."""

    def __init__(
        self,
        executor: Executor,
        plan: Plan,
        workers: Mapping[str, Worker],
        run_id: RunId,
        team: ScopePath,
        parent_task_id: TaskId | None,
        depth: int,
        port: LocalPort,
        ceiling: frozenset[str] | None,
    ) -> None:
        self.policy = executor.policy
        self.backend = executor.backend
        self.workers = workers
        self.run_id = run_id
        self.team = team
        self.parent_task_id = parent_task_id
        self.depth = depth
        self.port = port
        self.state = port.state
        self.events = port.events
        """The run's one event stream: the journal, the audit log and the observers are its sinks."""
        self.ceiling = ceiling
        self.budgets = port.budgets
        """The budgets covering every step of the plan, as each step's context names them."""
        self.limits = _Limits(self.policy)
        self.records: dict[str, StepRecord] = {s.id: StepRecord(s) for s in plan.steps}
        self.waiting_on: dict[str, int] = {}
        self.dependents: dict[str, list[str]] = {s.id: [] for s in plan.steps}
        for s in plan.steps:
            unique = set(s.depends_on)
            self.waiting_on[s.id] = len(unique)
            for dep in unique:
                self.dependents[dep].append(s.id)
        self.unfinished = len(plan.steps)
        self.running: dict[str, asyncio.Task[None]] = {}
        """Step tasks not yet finished; each removes itself (cheaper than a done callback)."""
        self.done: asyncio.Future[None] | None = None
        self.stopping = False
        self.budget_stop: ErrorInfo | None = None
        self.retried_usage: dict[str, list[Usage]] = {}
        """Usage of attempts that failed and were retried, by step; the final attempt's is on the record."""
        journal = port.state.journal
        self.prior = journal.prior if journal is not None else None
        """What earlier processes of a resumed run recorded (None: the run is not recorded)."""
        self.fatal: Exception | None = None

    async def execute(self) -> PlanOutcome:
        self.done = asyncio.get_running_loop().create_future()
        for step_id, waiting in self.waiting_on.items():
            if waiting == 0:
                self._launch(self.records[step_id])
        try:
            if self.unfinished:
                await self.done
            if self.running:  # cancelled steps settle their records just before their tasks end
                await asyncio.gather(*self.running.values(), return_exceptions=True)
        except asyncio.CancelledError:
            await self._cancel_running("the run was cancelled")
            raise
        if self.fatal is not None:
            raise self.fatal
        spent = [r.result.usage for r in self.records.values() if r.result is not None]
        spent.extend(u for retried in self.retried_usage.values() for u in retried)
        return PlanOutcome(self.records, Usage.sum(spent), self._status(), self.budget_stop)

    def _status(self) -> Outcome:
        if self.budget_stop is not None:
            return "partial"
        statuses = [r.status for r in self.records.values()]
        if all(s == "success" for s in statuses):
            return "success"
        if "waiting" in statuses and not self.stopping:
            return "waiting"
        if self.stopping or not any(s in ("success", "partial") for s in statuses):
            return "failure"
        return "partial"

    def _launch(self, record: StepRecord) -> None:
        self.running[record.step.id] = asyncio.create_task(self._run_steps(record))

    async def _run_steps(self, record: StepRecord) -> None:
        """Run ``record``'s step, then in the same task a dependent it made ready (the others get tasks of their own),
        so a chain costs one task, not one a step; every `_INLINE` steps the chain goes on in a new task, which lets
        the rest of the loop run even when the steps never wait."""
        following: StepRecord | None = record
        for inline in range(_INLINE, -1, -1):
            if following is None:
                return
            following = await self._run_step(following, inline=inline > 0)

    async def _run_step(self, record: StepRecord, *, inline: bool) -> StepRecord | None:
        """One step, all its attempts; the dependent to run next in this task, when ``inline`` allows one."""
        step = record.step
        restored = self.prior.result_of(self._path(step)) if self.prior is not None else None
        if restored is not None:
            self.running.pop(step.id, None)
            return self._restore(record, *restored, inline=inline)
        worker = self.workers[step.agent]
        retry = self.policy.retry
        try:
            while True:
                record.attempts += 1
                result = await self._attempt(record, worker)
                error = result.error
                if result.status != "failure" or error is None or not error.retryable or record.attempts >= retry.max_attempts:
                    break
                delay = retry.delay(record.attempts)
                self.retried_usage.setdefault(step.id, []).append(result.usage)
                if self.events.active:
                    self.events.emit(StepRetrying(self.run_id, self.team, step.id, step.agent, record.attempts, error,
                                                  delay, result.usage))
                await asyncio.sleep(delay)
            if self.events.journal is not None:  # durable before any dependent is dispatched (or skipped)
                await self.events.durable(self._ended(record, result))
            elif self.events.active:
                self.events.emit(self._ended(record, result))
        except asyncio.CancelledError:
            # Steps that never got to run were settled as skipped by _stop; only a running one is cancelled here.
            if record.status == "running":
                record.status = "cancelled"
                record.finished_at = utcnow()
                if self.events.active:
                    self.events.emit(StepCancelled(self.run_id, self.team, step.id, step.agent, record.attempts,
                                                   self._path(step), record.started_at, record.finished_at))
                self._finish_one()
            raise
        except Exception as exc:  # the store failed, or a bug: stop the run rather than wait on a dead task
            self.running.pop(step.id, None)
            self._fatal(record, exc)
            return None
        finally:
            self.running.pop(step.id, None)
        return self._settle(record, result, inline=inline)

    def _ended(self, record: StepRecord, result: Result) -> Event:
        """How the step ended, with what its attempts spent together: what the journal keeps of it."""
        step = record.step
        retried = self.retried_usage.get(step.id)
        total = result.usage if not retried else Usage.sum([result.usage, *retried])
        first = record.started_at or result.started_at
        path = self._path(step)
        if result.status == "failure":
            return StepFailed(self.run_id, self.team, step.id, step.agent, record.attempts, _error_of(result),
                              result.usage, result.finished_at, path, result, total, first)
        if result.status == "waiting":
            return StepWaiting(self.run_id, self.team, step.id, step.agent, record.attempts, _reason_of(result),
                               result.usage, path, result, total, first)
        return StepFinished(self.run_id, self.team, step.id, step.agent, record.attempts, result.status, result.usage,
                            result.finished_at, path, result, total, first)

    def _path(self, step: Step) -> ScopePath:
        """The step's path in the run: its team's, then its id."""
        return child_path(self.team, step.id)

    def _restore(self, record: StepRecord, result: Result, attempts: int, retried: Usage, *,
                 inline: bool) -> StepRecord | None:
        """Settle a step an earlier process of this run finished, from its stored result: no work, no new cost."""
        record.attempts = attempts
        if retried.model_calls or retried.cost_usd:
            self.retried_usage[record.step.id] = [retried]
        record.started_at = result.started_at
        if self.events.active and result.status != "waiting":
            self.events.emit(StepRestored(self.run_id, self.team, record.step.id, record.step.agent, attempts,
                                          result.status, result.usage))
        return self._settle(record, result, inline=inline)

    def _fatal(self, record: StepRecord, exc: Exception) -> None:
        """The step's task broke (its result could not be made durable, or the runtime has a bug): stop the
        whole run, which raises ``exc`` and can be resumed later, instead of waiting for a task that is gone."""
        record.status = "cancelled"
        record.finished_at = utcnow()
        self._finish_one()
        if self.fatal is None:
            self.fatal = exc
            cause = f"the store failed: {exc}" if isinstance(exc, StoreError) else f"{type(exc).__name__}: {exc}"
            self._stop(f"the run stopped: {cause}")
            if self.done is not None and not self.done.done():
                self.done.set_result(None)

    async def _attempt(self, record: StepRecord, worker: Worker) -> Result:
        """One attempt under the step's concurrency limits and timeout; never raises but for cancellation."""
        step = record.step
        global_sem = self.limits.global_sem
        agent_sem = self.limits.for_agent(step.agent)
        if global_sem is not None:
            await global_sem.acquire()
        if agent_sem is not None:
            try:
                await agent_sem.acquire()
            except BaseException:
                if global_sem is not None:
                    global_sem.release()
                raise
        started = utcnow()
        if record.started_at is None:
            record.started_at = started
        record.status = "running"
        timeout = self.policy.step_timeout
        task = self._task_for(step, record.attempts, started, timeout)
        ctx = self._enter(record, task, started)
        try:
            send = self._traced(record, worker, task, ctx) if tracing() else self._send(worker, task, ctx)
            if timeout is None:
                return await send
            async with asyncio.timeout(timeout):
                return await send
        except TimeoutError:
            exc: BaseException = StepTimeout(f"step {step.id!r} ({step.agent}) timed out after {timeout}s")
        except Exception as raised:  # a worker broke its contract by raising; keep the run going
            exc = raised
        finally:
            if agent_sem is not None:
                agent_sem.release()
            if global_sem is not None:
                global_sem.release()
        spent = exc.spent if isinstance(exc, CadenzaError) else None  # a lost worker's calls were billed all the same
        return Result(
            task_id=task.task_id, run_id=self.run_id, agent=task.recipient, status="failure",
            error=ErrorInfo.from_exception(exc), started_at=started, finished_at=utcnow(), usage=spent or Usage(),
        )

    async def _traced(self, record: StepRecord, worker: Worker, task: Task, ctx: StepContext) -> Result:
        """`_send` inside the attempt's span (its trace context on ``ctx``), marked failed when the Result is a
        failure."""
        step = record.step
        attributes = {"cadenza.step_id": step.id, "cadenza.team": self.team, "cadenza.run_id": self.run_id,
                      "cadenza.task_id": task.task_id, "cadenza.attempt": record.attempts,
                      "gen_ai.agent.name": step.agent}
        with span(f"cadenza.step {step.id}", attributes) as current:
            result = await self._send(worker, task, replace(ctx, trace=tuple((carrier() or {}).items())))
            record_outcome(current, result)
            return result

    def _send(self, worker: Worker, task: Task, ctx: StepContext) -> Coroutine[Any, Any, Result]:
        """Through the backend; as signed envelopes when the run signs its messages. Unless a sink wants both ways
        told (`_reported`), this is the backend's or the exchange's own coroutine: no frame of ours waits on it."""
        if self.events.observed:
            return self._reported(worker, task, ctx)
        return self._carried(worker, task, ctx)

    def _carried(self, worker: Worker, task: Task, ctx: StepContext) -> Coroutine[Any, Any, Result]:
        """The backend's coroutine that runs ``task`` on ``worker``, through `exchange` when the run signs."""
        security = self.state.security
        if security is None:
            return self.backend.execute(worker, task, ctx, self.port)
        return exchange(security, self.backend, worker, task, ctx, self.port, team=self.team)

    async def _reported(self, worker: Worker, task: Task, ctx: StepContext) -> Result:
        """`_send`, with the Task and its Result told to the sinks that want reports (the audit log, metrics)."""
        events, signed = self.events, self.state.security is not None
        events.report(MessageSent(self.run_id, self.team, self.team, worker.name, "task", task.task_id, task.step_id,
                                  None, signed))
        result = await self._carried(worker, task, ctx)
        events.report(MessageSent(self.run_id, self.team, worker.name, self.team, "result", result.task_id, task.step_id,
                                  result.status, signed))
        return result

    def _enter(self, record: StepRecord, task: Task, started: datetime) -> StepContext:
        """Tell the run of the dispatch; the context of the attempt: where in the run it is, what it may do."""
        step = record.step
        scope = self._path(step)
        if self.events.active:
            assert record.started_at is not None
            self.events.emit(StepStarted(self.run_id, self.team, step.id, step.agent, record.attempts, started, scope,
                                         task, record.started_at))
        prior = self.prior.calls_of(scope) if self.prior is not None else ()
        return StepContext(run_id=self.run_id, scope=scope, step_id=step.id, agent=step.agent,
                           attempt=record.attempts, task_id=task.task_id, ceiling=self.ceiling, budgets=self.budgets,
                           prior_calls=prior, trace=(), turn=None)

    def _task_for(self, step: Step, attempt: int, now: datetime, timeout: float | None) -> Task:
        records = self.records
        context = {dep: records[dep].output for dep in step.depends_on}
        return _build_task(
            task_id=new_task_id(), run_id=self.run_id, parent_task_id=self.parent_task_id, step_id=step.id,
            sender=self.team, recipient=step.agent, instruction=step.instruction, input=step.input,
            context=context, attempt=attempt, depth=self.depth,
            deadline=None if timeout is None else now + timedelta(seconds=timeout),
        )

    def _settle(self, record: StepRecord, result: Result, *, inline: bool) -> StepRecord | None:
        """Keep a step's final result (the run was told already) and release, hold or skip its dependents.

        With ``inline``, the first dependent made ready is returned, to run in the current task, instead of launched.
        """
        step = record.step
        record.result = result
        record.error = result.error
        record.finished_at = result.finished_at
        if result.status == "failure":
            record.status = "failed"
            error = _error_of(result)
            self._finish_one()
            if error.code is ErrorCode.BUDGET_EXCEEDED and self.port.budget_spent():
                self._drain(error)
            elif self.policy.failure_policy == "fail_fast":
                self._stop(f"the run stopped: step {step.id!r} failed (fail_fast)")
            else:
                self._skip_dependents(step.id)
            return None
        if result.status == "waiting":
            record.status = "waiting"
            self._finish_one()
            self._hold_dependents(step.id)
            return None
        record.status = result.status
        following: StepRecord | None = None
        for child in self.dependents[step.id]:
            self.waiting_on[child] -= 1
            if self.waiting_on[child] == 0 and not self.stopping:
                if inline and following is None:
                    following = self.records[child]
                    self.running[child] = asyncio.current_task()  # type: ignore[assignment]  # a step task's
                else:
                    self._launch(self.records[child])
        self._finish_one()
        return following

    def _hold_dependents(self, waiting: str) -> None:
        """Dependents of a waiting step stay pending (they run on resume) but no longer count as unfinished."""
        stack = list(self.dependents[waiting])
        while stack:
            child = self.records[stack.pop()]
            if child.status != "pending" or child.skip_reason is not None:
                continue
            child.skip_reason = f"waiting for step {waiting!r}"
            self._finish_one()
            stack.extend(self.dependents[child.step.id])

    def _skip_dependents(self, failed: str) -> None:
        stack = [(child, f"dependency {failed!r} failed") for child in self.dependents[failed]]
        while stack:
            child_id, reason = stack.pop()
            child = self.records[child_id]
            if child.status != "pending":
                continue
            self._skip(child, reason)
            because = f"dependency {child_id!r} was skipped because step {failed!r} failed"
            stack.extend((grandchild, because) for grandchild in self.dependents[child_id])

    def _stop(self, reason: str) -> None:
        """Skip every step that has not started (launched or not), and cancel every step task.

        A task may be cancelled before its coroutine ever ran, so its record is settled here,
        once; running steps settle themselves as cancelled when the cancellation reaches them.
        """
        self.stopping = True
        for record in self.records.values():
            if record.status == "pending":
                self._skip(record, reason)
        for task in self.running.values():
            task.cancel()

    def _drain(self, error: ErrorInfo) -> None:
        """A budget of this team (or one enclosing it) is spent: skip every step not yet dispatched, let the
        running ones finish (their next model call is refused anyway)."""
        if self.budget_stop is None:
            self.budget_stop = error
        self.stopping = True
        for record in self.records.values():
            if record.status == "pending" and record.step.id not in self.running:
                self._skip(record, f"not started: {error.message}")

    def _skip(self, record: StepRecord, reason: str) -> None:
        held = record.skip_reason is not None  # held behind a waiting step, so already counted as finished
        record.status = "skipped"
        record.skip_reason = reason
        if self.events.active:
            self.events.emit(StepSkipped(self.run_id, self.team, record.step.id, record.step.agent, reason,
                                         self._path(record.step), record.attempts))
        if not held:
            self._finish_one()

    def _finish_one(self) -> None:
        self.unfinished -= 1
        if self.unfinished == 0 and self.done is not None and not self.done.done():
            self.done.set_result(None)

    async def _cancel_running(self, reason: str) -> None:
        tasks = list(self.running.values())
        self._stop(reason)
        await asyncio.gather(*tasks, return_exceptions=True)


def _error_of(result: Result) -> ErrorInfo:
    """Why a failed step failed (a worker that reported no error broke its contract; said so)."""
    return result.error or ErrorInfo(type="UnknownError", code=ErrorCode.UNREPORTED,
                                     message="the worker reported failure without an error")


def _reason_of(result: Result) -> ErrorInfo:
    return result.error or ErrorInfo(type="Waiting", code=ErrorCode.WAITING, message="the step waits for a decision")
