"""The default backend: run the worker in this process, on the running event loop."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..observability._tracing import attach_context

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from .._messages import Result, Task
    from .._port import RunPort
    from .._step_context import StepContext
    from .._worker import Worker
    from ..security._identity import Sealed, WorkerKey
    from ..security._security import TaskOpener

__all__ = ("LocalBackend",)


class LocalBackend:
    """In-process asyncio execution: no serialisation, no copies."""

    def problems(self, worker: Worker) -> list[str]:
        """None: any worker runs in the process that holds it."""
        return []

    def execute(self, worker: Worker, task: Task, ctx: StepContext, port: RunPort) -> Coroutine[Any, Any, Result]:
        """The worker's own coroutine, awaited by the caller: cancelling the caller cancels the work, and no frame
        of ours waits in between while it runs."""
        return worker.execute(task, ctx, port)

    async def deliver(self, worker: Worker, envelope: Sealed, opener: TaskOpener, key: WorkerKey,
                      ctx: StepContext, port: RunPort) -> Sealed:
        """Open the task, run it here (its spans joining the sender's trace), seal the Result as the worker: neither
        leaves the process, so neither is serialised (`LocalEnvelope`)."""
        task = opener.open(envelope)
        if envelope.trace is None:  # untraced: no context manager held by this frame while the worker runs
            result = await self.execute(worker, task, ctx, port)
        else:
            with attach_context(envelope.trace):
                result = await self.execute(worker, task, ctx, port)
        return key.seal_local(envelope.sender, result)
