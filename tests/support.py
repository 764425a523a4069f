"""Test support: a scriptable worker for driving the executor, and event helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from cadenza._events import Event
from cadenza._ids import AgentId
from cadenza._messages import ErrorInfo, Result, Task, utcnow
from cadenza._step_context import StepContext
from cadenza._usage import Usage
from cadenza._worker_spec import OtherSpec, reference

Behaviour = Callable[[Task], Awaitable[object]]


@dataclass
class ScriptedWorker:
    """A worker whose behaviour per task is a coroutine function; records what it saw.

    The behaviour's return value is the output; raising `Fail` gives a failure Result.
    """

    name: str
    behaviour: Behaviour | None = None
    description: str = "a scripted test worker"
    seen: list[Task] = field(default_factory=list)
    running: int = 0
    max_running: int = 0
    cancelled: int = 0

    def describe(self) -> OtherSpec:
        return OtherSpec(name=self.name, description=self.description, type=reference(type(self)))

    async def execute(self, task: Task, ctx: object = None, port: object = None) -> Result:
        self.seen.append(task)
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        started = utcnow()
        try:
            output = await self.behaviour(task) if self.behaviour else f"{self.name}:{task.step_id}"
        except Fail as exc:
            return Result(task_id=task.task_id, run_id=task.run_id, agent=AgentId(self.name), status="failure",
                          error=ErrorInfo(type="Fail", message=str(exc), retryable=exc.retryable),
                          usage=Usage(model_calls=1, input_tokens=1), started_at=started, finished_at=utcnow())
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.running -= 1
        return Result(task_id=task.task_id, run_id=task.run_id, agent=AgentId(self.name), status="success",
                      output=output, usage=Usage(model_calls=1, input_tokens=2, output_tokens=1),
                      started_at=started, finished_at=utcnow())


def step_context(*, run_id: str = "run_test", scope: str = "lead/s1", agent: str = "w",
                 ceiling: frozenset[str] | None = None, budgets: tuple[str, ...] = ()) -> StepContext:
    """The context of a first attempt of a step at ``scope``, as the executor makes one."""
    return StepContext(run_id=run_id, scope=scope, step_id=scope.rpartition("/")[2], agent=agent, attempt=1,
                       task_id="task_test", ceiling=ceiling, budgets=budgets, prior_calls=(), trace=(), turn=None)


class Fail(Exception):
    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable



def kinds(events: list[Event], step_id: str | None = None) -> list[str]:
    """Event class names, optionally only those of one step."""
    return [type(e).__name__ for e in events if step_id is None or getattr(e, "step_id", None) == step_id]


def other_tasks() -> list[asyncio.Task[object]]:
    """Tasks still alive besides the caller's: a finished run must leave none."""
    return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
