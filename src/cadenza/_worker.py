"""What a worker is: anything that takes a Task, where its `StepContext` says, and returns a Result.

An Agent, a Supervisor (a team) and a peer group are workers; the engine, plans, fingerprints and backends see
only this contract and what ``describe()`` says, never the class behind it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ._messages import Result, Task
    from ._port import RunPort
    from ._step_context import StepContext
    from ._worker_spec import WorkerSpec

__all__ = ("Worker",)


@runtime_checkable
class Worker(Protocol):
    """Anything that can take a Task and return a Result: an Agent, a Supervisor (a team), a peer group."""

    @property
    def name(self) -> str:
        """Unique within its team; plans assign steps by it."""
        ...

    @property
    def description(self) -> str:
        """What the worker is good for, as shown to the planner."""
        ...

    def describe(self) -> WorkerSpec:
        """What the worker is, as data (an `AgentSpec`, a `TeamSpec`, a `PeersSpec`, or an `OtherSpec` naming its
        class): read by fingerprints, depth checks and the plan view, and by backends that rebuild it in another
        process."""
        ...

    async def execute(self, task: Task, ctx: StepContext, port: RunPort) -> Result:
        """Do the task where ``ctx`` says, asking ``port`` for anything stateful (budgets, tool call records,
        approvals, the workspace, events). Failures come back as a failure Result, not as an exception."""
        ...
