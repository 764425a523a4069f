"""The default backend: run the worker in this process, on the running event loop."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._events import EventSink
    from .._messages import Result, Task
    from .base import Worker

__all__ = ("LocalBackend",)


class LocalBackend:
    """In-process asyncio execution: no serialisation, no copies."""

    async def execute(self, worker: Worker, task: Task, *, events: EventSink | None = None) -> Result:
        """Await the worker directly; cancelling the caller cancels the work."""
        return await worker.execute(task, events=events)
