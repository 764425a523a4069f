"""Where a step actually runs: the executor hands each (worker, task) to a backend.

Workers must be runnable from (worker, task) alone, with no other state of the
orchestrator, so that a backend can move them to another process or machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .._events import EventSink
    from .._messages import Result, Task

__all__ = ("Backend", "Worker")


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

    async def execute(self, task: Task, *, events: EventSink | None = None) -> Result:
        """Do the task. Failures come back as a failure Result, not as an exception."""
        ...


class Backend(Protocol):
    """Runs one task on one worker, somewhere."""

    async def execute(self, worker: Worker, task: Task, *, events: EventSink | None = None) -> Result:
        """Run ``task`` on ``worker`` and return its Result; cancellation must stop the work."""
        ...
