"""A run's event stream: every event told once, the run's records first, then its observers, each isolated.

The events themselves are values (`cadenza._events`), which a worker in another process builds too; the stream
is the engine's, and only the engine emits to it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._events import Event, EventSink, Kept, Progress, Report
    from ._journal import JournalSink

__all__ = ("EventStream", "isolated")


_log = logging.getLogger("cadenza.events")


class _Isolated:
    """A sink whose first exception is logged and detaches it: the run it watches goes on unharmed."""

    __slots__ = ("broken", "sink", "wants_progress", "wants_reports")

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink
        self.broken = False
        self.wants_reports: bool = getattr(sink, "wants_reports", False)
        self.wants_progress: bool = getattr(sink, "wants_progress", False)

    def __call__(self, event: Event) -> None:
        if self.broken:
            return
        try:
            self.sink(event)
        except Exception as exc:
            self.broken = True
            _log.warning("event sink %r raised %s on %s and was detached; the run goes on without it",
                         self.sink, type(exc).__name__, type(event).__name__, exc_info=True,
                         extra={"run_id": event.run_id, "team": getattr(event, "team", None)})


def isolated(sink: EventSink | None) -> EventSink | None:
    """``sink`` guarded so that nothing it raises reaches the run.

    Events are emitted from inside step tasks and the scheduler; an exception there would kill the
    task that a run waits on. A sink that raises is logged once (a warning with its traceback) and
    receives no more events; the run's outcome does not depend on its observers.
    """
    if sink is None or isinstance(sink, _Isolated):
        return sink
    return _Isolated(sink)


class EventStream:
    """One run's events, each told once to every sink, in the order they happen.

    The run's records come first: the store's journal and the audit log. They are never detached (a run whose
    records stopped would go on unrecorded); a store that fails stops the run through the journal instead.
    The observers come after them (the live display, metrics, log lines, a caller's sink), each isolated: one
    that raises is detached and the run goes on.
    """

    __slots__ = ("active", "journal", "observed", "observers", "readers", "records", "reporters", "streaming",
                 "watchers")

    def __init__(self, *, journal: JournalSink | None = None, audit: EventSink | None = None,
                 observers: Iterable[EventSink | None] = ()) -> None:
        self.journal = journal
        self.records: tuple[EventSink, ...] = tuple(s for s in (journal, audit) if s is not None)
        self.observers: tuple[EventSink, ...] = tuple(isolated(s) for s in observers if s is not None)  # type: ignore[misc]
        self.watchers = tuple(s for s in self.observers if getattr(s, "wants_reports", False))
        """The observers that want what happens inside steps (metrics, a caller's sink that asks)."""
        self.reporters = (*(s for s in self.records if getattr(s, "wants_reports", False)), *self.watchers)
        self.readers = tuple(s for s in self.observers if getattr(s, "wants_progress", False))
        """The observers that want each step's progress as it happens (a stream's reader)."""
        self.streaming = bool(self.readers)
        """Whether any sink wants each step's progress: workers stream their models' answers only then."""
        self.observed = bool(self.reporters)
        """Whether any sink wants the reports of each message and call: the engine and workers build them only then."""
        self.active = bool(self.records or self.observers)
        """Whether any sink listens at all: the engine builds no event otherwise."""

    def report(self, event: Report) -> None:
        """Tell the sinks that want reports of each message and call (the audit log, metrics)."""
        for sink in self.reporters:
            sink(event)

    def progress(self, event: Progress) -> None:
        """Tell the sinks that want each step's progress (a stream's reader); the records keep none of it."""
        for sink in self.readers:
            sink(event)

    def keep(self, event: Kept) -> None:
        """Tell the records, then the observers that want reports; what the journal records becomes durable with
        its next batch."""
        self._tell(event, self.watchers)

    async def keep_durable(self, event: Kept) -> None:
        """`keep`, returning once what the journal records of ``event`` is durable.

        Raises:
            StoreError: the store failed; the observers were not told.
        """
        await self._tell_durably(event, self.watchers)

    def emit(self, event: Event) -> None:
        """Tell every sink; what the journal records becomes durable with its next batch."""
        self._tell(event, self.observers)

    async def durable(self, event: Event) -> None:
        """Tell every sink, once what the journal records of ``event`` is durable (the observers after that).

        Raises:
            StoreError: the store failed; the observers were not told.
        """
        await self._tell_durably(event, self.observers)

    def _tell(self, event: Event, observers: tuple[EventSink, ...]) -> None:
        for sink in self.records:
            sink(event)
        for sink in observers:
            sink(event)

    async def _tell_durably(self, event: Event, observers: tuple[EventSink, ...]) -> None:
        for sink in self.records:
            sink(event)
        if self.journal is not None:
            await self.journal.flush()
        for sink in observers:
            sink(event)
