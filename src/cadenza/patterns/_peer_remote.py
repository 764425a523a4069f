"""The owner's side of the members of a conversation that workers in other processes serve.

When a conversation starts on a bus that other processes share, each member with a worker on its roll
(`_peer_wire.rolls_of`) is sent to one of them: the worker reads that member's inbox and, for each
message it is delivered, asks the conversation for the turn. The conversation opens the message, renders
the turn's Task and answers with it, the member's StepContext and the member's own key (no other); it
answers the worker's port requests as it would a worker process's (`PortServer`), and when the worker
sends the sealed Result back, records the turn, publishes its messages and acknowledges the delivery
before it tells the worker the turn is done. Every decision (limits, loops, answers, deadlock) stays with
the conversation, as does every write to the store.

A worker whose entry on the roll runs out is taken for dead: its turns in flight end unrecorded (their
messages stay pending on the bus), and its members go to another worker on the roll, or come back to the
conversation's own process; either way the pending messages are delivered again after ``claim_after``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import time
import zlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .._errors import BusError, ConfigError, WorkerLost
from .._ids import ScopePath
from ..backends import _wire
from ..backends._port_server import PortServer
from ..buses.base import Delivery, Inbox
from ._peer_wire import RENEW, TTL, owner_inbox, owner_roll, parse, send, wire_group, worker_inbox

if TYPE_CHECKING:
    from .._messages import Task
    from .._port import RunPort
    from .._step_context import StepContext
    from ..buses.base import Bus

__all__ = ("RemoteMembers", "RemoteTurn")


class RemoteTurn:
    """One turn a worker takes for the conversation: the request the worker waits on, and its reply once done."""

    def __init__(self, members: RemoteMembers, worker: str, request: int, number: int) -> None:
        self.members = members
        self.worker = worker
        self.number = number
        self.owed: int | None = request
        """The worker's request this side has not answered yet (the worker waits for it)."""
        self.reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.server: PortServer | None = None

    async def take(self, task: Task, ctx: StepContext, port: RunPort, key: Mapping[str, str] | None
                   ) -> dict[str, Any]:
        """Send the worker the turn and wait for its ``done``: the sealed Result (``envelope``), the plain one
        (``result``) when the run does not sign, or the ``error`` it failed with.

        Raises:
            WorkerLost: the worker was taken for dead before it replied.
        """
        self.server = PortServer(port, ctx)
        self.members.turns[self.number] = self
        await self._answer({"turn": self.number, "task": task.model_dump(mode="json"), "ctx": ctx.to_json().decode(),
                            "key": dict(key) if key is not None else None,
                            "workspace": port.workspace(ctx, ctx.agent) is not None,
                            "streaming": port.streaming})
        try:
            return await self.reply
        finally:
            self.members.turns.pop(self.number, None)
            if self.server.leases:
                await self.server.abandon()

    def replied(self, message: dict[str, Any]) -> None:
        self.owed = message.get("id")
        if not self.reply.done():
            self.reply.set_result(message)

    def lost(self) -> None:
        self.owed = None
        if not self.reply.done():
            why = f"worker {self.worker} stopped renewing its entry on the roll during turn {self.number}"
            self.reply.set_exception(self.server.lost(why) if self.server is not None else WorkerLost(why))

    async def end(self) -> None:
        """Answer what the worker still waits for (the turn it asked for, or its ``done``): nothing more to do."""
        await self._answer(None)

    async def _answer(self, value: Any) -> None:
        request, self.owed = self.owed, None
        if request is not None:
            await self.members.answer(self.worker, request, {"value": value})


class RemoteMembers:
    """The members of one conversation served by workers on the bus, and the conversation's inbox they write to.

    ``take(agent, delivery, turn)`` is called for each turn a worker asks for; ``reclaim(agent)`` for a member
    whose worker died and that no other worker on the roll can take.
    """

    def __init__(self, rolls: Mapping[str, str], bus: Bus, run_id: str, scope: ScopePath, assigned: dict[str, str],
                 take: Callable[[str, Delivery, RemoteTurn], None], reclaim: Callable[[str], None]) -> None:
        self.rolls = rolls
        """The roll of each member's workers (`_peer_wire.rolls_of`), agent -> roll."""
        self.bus = bus
        self.run_id = run_id
        self.scope = scope
        self.assigned = assigned
        """Who serves each remote member: agent -> worker."""
        self.turns: dict[int, RemoteTurn] = {}
        self._take = take
        self._reclaim = reclaim
        self._numbers = itertools.count(1)
        self._reader: asyncio.Task[None] | None = None
        self._answering: set[asyncio.Task[None]] = set()
        self._checked = time.monotonic()
        self.token = secrets.token_hex(8)
        """This process's entry on the conversation's roll (`owner_roll`), which its workers watch."""

    @staticmethod
    async def assign(rolls: Mapping[str, str], bus: Bus, run_id: str) -> dict[str, str]:
        """A worker on the roll for each member that has one (spread over them by run), agent -> worker."""
        assigned = {}
        for name, roll in rolls.items():
            workers = await bus.roll(roll)
            if workers:
                assigned[name] = workers[zlib.crc32(run_id.encode()) % len(workers)]
        return assigned

    async def open(self) -> None:
        """Start reading the conversation's inbox, then send each member to its worker."""
        await self.bus.enrol(owner_roll(self.run_id, self.scope), self.token, TTL)
        self._reader = asyncio.create_task(self._read(), name=f"cadenza-peers-{self.run_id}-{self.scope}")
        for agent, worker in self.assigned.items():
            await self._join(agent, worker)

    async def close(self) -> None:
        """Tell the workers the conversation has ended, stop reading, and drop the conversation's inbox."""
        for turn in list(self.turns.values()):
            turn.lost()
        for worker in sorted(set(self.assigned.values())):
            with contextlib.suppress(BusError):
                await send(self.bus, worker_inbox(worker), {"op": "leave", "run": self.run_id, "scope": self.scope})
        if self._reader is not None:  # told to stop rather than cancelled: a blocking Redis read cancelled midway
            with contextlib.suppress(BusError):  # can leave its connection unusable
                await send(self.bus, owner_inbox(self.run_id, self.scope), {"op": "close"})
            try:
                async with asyncio.timeout(RENEW * 2):
                    await asyncio.shield(self._reader)
            except (TimeoutError, BusError):
                self._reader.cancel()
        await asyncio.gather(*self._answering, return_exceptions=True)
        with contextlib.suppress(BusError):
            await self.bus.discard(self.run_id, wire_group(self.scope))
            await self.bus.unenrol(owner_roll(self.run_id, self.scope), self.token)

    async def check(self) -> None:
        """Every `TTL` / 2 seconds at most: a worker that has fallen off its member's roll is taken for dead."""
        if time.monotonic() - self._checked < TTL / 2:
            return
        self._checked = time.monotonic()
        await self.bus.enrol(owner_roll(self.run_id, self.scope), self.token, TTL)
        for agent, worker in list(self.assigned.items()):
            workers = await self.bus.roll(self.rolls[agent])
            if worker in workers:
                continue
            for turn in list(self.turns.values()):
                if turn.worker == worker:
                    turn.lost()
            if workers:
                self.assigned[agent] = workers[0]
                await self._join(agent, workers[0])
            else:
                del self.assigned[agent]
                self._reclaim(agent)

    async def answer(self, worker: str, request: int, reply: dict[str, Any]) -> None:
        await send(self.bus, worker_inbox(worker), {"op": "answer", "id": request, **reply})

    async def _join(self, agent: str, worker: str) -> None:
        await send(self.bus, worker_inbox(worker), {"op": "join", "run": self.run_id, "scope": self.scope,
                                                    "agent": agent, "owner": self.token})

    async def _read(self) -> None:
        inbox = owner_inbox(self.run_id, self.scope)
        while True:
            delivery = await self.bus.receive(inbox, consumer="owner", wait=RENEW)
            if delivery is None:
                continue
            self._serve(self.bus.ack(delivery))  # acted on at once (a lost one is the worker's to time out), so
            message = parse(delivery.body)  # the acknowledgement need not hold up the next read
            if message.get("op") == "close":
                return
            self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        op, worker = message.get("op"), str(message.get("worker", ""))
        if op == "turn":
            agent = str(message.get("agent"))
            asked = RemoteTurn(self, worker, int(message["id"]), next(self._numbers))
            if self.assigned.get(agent) != worker:  # a worker taken for dead, asking late: the new one has it
                self._serve(asked.end())
                return
            delivery = Delivery(Inbox(self.run_id, self.scope, agent), str(message["entry"]), str(message["body"]),
                                int(message["attempt"]))
            self._take(agent, delivery, asked)
            return
        turn = self.turns.get(int(message.get("turn", 0)))
        if op == "done":
            if turn is not None:
                turn.replied(message)
            else:  # a turn this side gave up on: the worker need not wait
                self._serve(self.answer(worker, int(message["id"]), {"value": None}))
        elif op == "ask":
            self._serve(self._ask(worker, turn, message))
        elif op == "tell" and turn is not None and turn.server is not None:
            turn.server.tell(str(message["method"]), message.get("args", {}))

    async def _ask(self, worker: str, turn: RemoteTurn | None, message: dict[str, Any]) -> None:
        if turn is None or turn.server is None:
            reply = {"error": _wire.error_of(ConfigError("the turn has ended"))}
        else:
            reply = await turn.server.reply(str(message["method"]), message.get("args", {}))
        await self.answer(worker, int(message["id"]), reply)

    def _serve(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)
