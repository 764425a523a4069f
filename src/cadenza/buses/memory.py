"""The in-process bus: inboxes in this process's memory, for peer groups whose agents all run in it.

Nothing here survives the process; a peer group's durability comes from its run's store (every
message is recorded before it is acted on), not from the bus. What the bus keeps is bounded by what
is in flight: an acknowledged message is dropped at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from dataclasses import dataclass, field

from .._errors import BusError
from .._ids import ScopePath
from .base import Bus, Delivery, Inbox, check_body, check_claim_after, check_ttl, check_wait

__all__ = ("InProcessBus",)


@dataclass(slots=True)
class _Held:
    """A delivered message that is not acknowledged yet."""

    body: str
    since: float
    attempt: int


@dataclass(slots=True)
class _Box:
    new: deque[tuple[str, str]] = field(default_factory=deque)
    """(entry id, body) not delivered yet, oldest first."""
    pending: dict[str, _Held] = field(default_factory=dict)
    """By entry id, in the order they were (last) delivered: the first is the first to be claimed."""
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)
    """Receivers waiting for a message, woken one per message published."""


class InProcessBus(Bus):
    """Inboxes in this process, with the redelivery and counting of the bus contract."""

    def __init__(self, *, claim_after: float = 30.0) -> None:
        self.url = "memory://"
        self.claim_after = check_claim_after(claim_after)
        self._boxes: dict[Inbox, _Box] = {}
        self._groups: dict[tuple[str, ScopePath], set[Inbox]] = {}
        self._ids = itertools.count(1)
        self._rolls: dict[str, dict[str, float]] = {}
        """By service: each enrolled worker and when its entry runs out (`time.monotonic`)."""
        self._closed = False

    def __repr__(self) -> str:
        return f"InProcessBus(claim_after={self.claim_after:g}, inboxes={len(self._boxes)})"

    async def publish(self, inbox: Inbox, body: str) -> str:
        self._check_open()
        check_body(inbox, body)
        box = self._box(inbox)
        entry_id = str(next(self._ids))
        box.new.append((entry_id, body))
        while box.waiters:
            waiter = box.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break
        return entry_id

    async def receive(self, inbox: Inbox, *, consumer: str, wait: float) -> Delivery | None:
        self._check_open()
        check_wait(inbox, wait)
        deadline = time.monotonic() + wait
        while True:
            box = self._box(inbox)
            delivery = self._take(inbox, box)
            if delivery is not None:
                return delivery
            now = time.monotonic()
            timeout = deadline - now
            if box.pending:
                oldest = next(iter(box.pending.values()))
                timeout = min(timeout, oldest.since + self.claim_after - now)
            if deadline <= now:
                return None
            waiter = asyncio.get_running_loop().create_future()
            box.waiters.append(waiter)
            try:
                async with asyncio.timeout(max(0.0, timeout)):
                    await waiter
            except TimeoutError:
                pass
            finally:
                if not waiter.done():
                    waiter.cancel()
                with contextlib.suppress(ValueError):  # a publish took it off already
                    box.waiters.remove(waiter)

    async def ack(self, delivery: Delivery) -> bool:
        self._check_open()
        box = self._boxes.get(delivery.inbox)
        return box is not None and box.pending.pop(delivery.entry_id, None) is not None

    async def unacknowledged(self, run_id: str, group: ScopePath) -> int:
        self._check_open()
        boxes = (self._boxes[inbox] for inbox in self._groups.get((run_id, group), ()))
        return sum(len(box.new) + len(box.pending) for box in boxes)

    async def enrol(self, service: str, worker: str, ttl: float) -> None:
        self._check_open()
        check_ttl(service, ttl)
        self._rolls.setdefault(service, {})[worker] = time.monotonic() + ttl

    async def roll(self, service: str) -> list[str]:
        self._check_open()
        now = time.monotonic()
        return sorted(worker for worker, until in self._rolls.get(service, {}).items() if until > now)

    async def unenrol(self, service: str, worker: str) -> None:
        self._check_open()
        self._rolls.get(service, {}).pop(worker, None)

    async def discard(self, run_id: str, group: ScopePath) -> None:
        self._check_open()
        for inbox in self._groups.pop((run_id, group), ()):
            box = self._boxes.pop(inbox)
            for waiter in box.waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        closed = BusError(f"the bus {self.url} was closed")
        for box in self._boxes.values():
            for waiter in box.waiters:
                if not waiter.done():
                    waiter.set_exception(closed)
        self._boxes.clear()
        self._groups.clear()

    def _check_open(self) -> None:
        if self._closed:
            raise BusError(f"the bus {self.url} is closed")

    def _box(self, inbox: Inbox) -> _Box:
        box = self._boxes.get(inbox)
        if box is None:
            box = self._boxes[inbox] = _Box()
            self._groups.setdefault((inbox.run_id, inbox.group), set()).add(inbox)
        return box

    def _take(self, inbox: Inbox, box: _Box) -> Delivery | None:
        """A message held unacknowledged past ``claim_after``, else the oldest new one; None if neither. In one
        process a consumer's name decides nothing: whoever asks next gets the message."""
        now = time.monotonic()
        if box.pending:
            entry_id, held = next(iter(box.pending.items()))
            if now - held.since >= self.claim_after:
                del box.pending[entry_id]
                box.pending[entry_id] = claimed = _Held(held.body, now, held.attempt + 1)
                return Delivery(inbox, entry_id, claimed.body, claimed.attempt)
        if box.new:
            entry_id, body = box.new.popleft()
            box.pending[entry_id] = _Held(body, now, 1)
            return Delivery(inbox, entry_id, body, 1)
        return None

