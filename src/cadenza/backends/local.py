"""The default backend: run the worker in this process, on the running event loop."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._messages import Result, Task
    from .._port import RunPort
    from .._step_context import StepContext
    from .base import Worker

__all__ = ("LocalBackend",)


class LocalBackend:
    """In-process asyncio execution: no serialisation, no copies."""

    async def execute(self, worker: Worker, task: Task, ctx: StepContext, port: RunPort) -> Result:
        """Await the worker directly; cancelling the caller cancels the work."""
        return await worker.execute(task, ctx, port)
