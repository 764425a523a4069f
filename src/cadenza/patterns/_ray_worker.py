"""A Ray actor of the Ray backend: rebuilds agents from their specs and runs steps on them, many at once.

Why an actor rather than a task per step: an actor keeps the agents it rebuilt (their model SDK clients, their
connection pools) warm between steps, as a worker process of the process backend does, and a step is not one
call and one return: while it runs, it asks its run for budget, tool call records, approvals and the workspace.

How a step talks to its run: ``step`` is an async generator (a Ray streaming generator) that yields the step's
requests (``ask``, ``tell``) as they are made and its reply (``done``) last; the run answers each request with
``answer``. Answers and cancellations are called in a concurrency group of their own (the backend declares it),
so that they are never queued behind the steps they unblock; they run on that group's thread and hand their
message to the steps' event loop.

It lives beside the patterns rather than in ``backends/`` because it builds them, and imports nothing of Ray:
the Ray backend makes it an actor by name, so the backends stay below the patterns.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

from ..observability._tracing import export_configured, export_to
from ._worker_host import WorkerHost

__all__ = ("RayWorker",)

_ENDED: dict[str, Any] = {"op": "ended"}
"""Put on a cancelled step's queue: its generator ends without a reply (the run stopped waiting for it)."""


class RayWorker:
    """The steps one Ray actor runs, each streamed back to its run; the backend wraps it with ``ray.remote``."""

    def __init__(self) -> None:
        self.host = WorkerHost(self)
        self.queues: dict[int, asyncio.Queue[dict[str, Any]]] = {}
        """What each running step sends its run, in order."""
        self.loop: asyncio.AbstractEventLoop | None = None
        """The event loop the steps run on (answers arrive on another thread)."""
        self.flush: Callable[[], None] | None = export_to(None) if export_configured() else None

    async def ready(self) -> int:
        """Answers once the actor is up (its process started and imported cadenza): its process id."""
        return os.getpid()

    async def step(self, spec: dict[str, Any] | None,
                   message: dict[str, Any]) -> AsyncIterator[list[dict[str, Any]]]:
        """Run one step (rebuilding its agent from ``spec`` first, when given) and yield what it sends its run: as
        soon as there is something, everything there is by then, in order (each item streamed costs a Ray object,
        and a step's last report and its reply mostly come together)."""
        self.loop = asyncio.get_running_loop()
        step = int(message["id"])
        queue = self.queues[step] = asyncio.Queue()
        try:
            if spec is not None:
                self.host.handle(spec)
            self.host.handle(message)
            while True:
                batch = [await queue.get()]
                while not queue.empty():
                    batch.append(queue.get_nowait())
                if any(out is _ENDED for out in batch):
                    return
                yield batch
                if batch[-1]["op"] == "done":
                    return
        finally:
            self.queues.pop(step, None)

    async def answer(self, message: dict[str, Any]) -> None:
        """The run's answer to a step's request."""
        self._on_steps(self.host.handle, message)

    async def cancel(self, step: int) -> None:
        """The run stopped waiting for ``step``: stop it, and end its stream."""
        self._on_steps(self._cancel, step)

    async def stop(self) -> None:
        """The backend is closing: stop every step and export what spans remain."""
        self._on_steps(self.host.cancel_all)
        if self.flush is not None:
            self.flush()

    def send(self, message: dict[str, Any]) -> None:
        """Queue ``message`` on the stream of the step it belongs to (dropped once that step has ended)."""
        queue = self.queues.get(int(message["id"] if message["op"] == "done" else message["step"]))
        if queue is not None:
            queue.put_nowait(message)

    async def drain(self) -> None:
        """Nothing to wait for: a step's stream takes what it is sent."""

    def _cancel(self, step: int) -> None:
        self.host.handle({"op": "cancel", "id": step})
        queue = self.queues.get(step)
        if queue is not None:
            queue.put_nowait(_ENDED)

    def _on_steps(self, call: Callable[..., None], *args: Any) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(call, *args)
