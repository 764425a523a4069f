"""A run as the events it makes, read as they happen: what ``team.stream`` and ``agent.stream`` return.

The run goes on in a task of its own and tells a queue every event (the reports of each call and the progress
of each step too: its model's answer piece by piece); the reader takes them in order and, last, the result. The
queue has no bound: a sink cannot wait, and a run must not slow down for its reader. Leaving the loop early cancels
the run as Ctrl-C does (a recorded run can be resumed): at once when the stream is closed (``aclosing``), else when
the event loop finalises the abandoned stream, on its next turn.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from .._events import Event, EventSink, FinalResult
from .._result import RunResult

if TYPE_CHECKING:
    from .._budget import Budget
    from .._ids import RunId
    from ..models.pricing import Prices
    from ..stores.base import Store
    from ..tools._tool_sources import ToolSources

__all__ = ("RunOptions", "streamed")

OutputT = TypeVar("OutputT")


class _Reader:
    """The sink of a streamed run: every event it makes, queued for the loop that reads them."""

    __slots__ = ("queue",)
    wants_reports = True
    wants_progress = True

    def __init__(self, queue: asyncio.Queue[Event | None]) -> None:
        self.queue = queue

    def __call__(self, event: Event) -> None:
        self.queue.put_nowait(event)


async def streamed(run: Callable[[EventSink], Coroutine[Any, Any, RunResult[OutputT]]]
                   ) -> AsyncIterator[Event | FinalResult[OutputT]]:
    """The events of ``run(sink)`` as they happen, then its `FinalResult`; an exception of the run is raised once
    the events before it are read."""
    queue: asyncio.Queue[Event | None] = asyncio.Queue()
    running = asyncio.create_task(run(_Reader(queue)))
    running.add_done_callback(lambda _: queue.put_nowait(None))
    try:
        while (event := await queue.get()) is not None:
            yield event
        result = running.result()
        yield FinalResult(result.run_id, result)
    finally:
        if not running.done():
            running.cancel()
        await asyncio.wait((running,))
        if not running.cancelled():
            running.exception()  # the reader left before it: nobody else will ask for it


class RunOptions(TypedDict, total=False):
    """The keyword arguments of `Supervisor.run` and `PeerGroup.run` that their ``stream`` takes too (all but
    ``events``: the stream is the run's sink)."""

    input: Any
    run_id: RunId | None
    store: Store | str | os.PathLike[str] | None
    source: str | None
    options: dict[str, Any] | None
    workflow: str | None
    budget: Budget | None
    prices: Prices | None
    sign_messages: bool
    audit: bool
    tool_sources: ToolSources | None
