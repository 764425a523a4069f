"""A worker that takes the turns of some members of a peer group in its own process (``cadenza peer serve``).

It enrols on the bus's roll of each member it serves and renews its entry every `RENEW` seconds for as
long as it runs. A conversation that starts on that bus sends it the members it is to serve (``join``);
from then on it reads their inboxes itself and, for each message delivered, asks the conversation for
the turn, takes it with the member's agent (its model calls and tool calls reaching the run through a
`RemotePort`), seals the Result with the member's own key, and sends it back; the conversation records
the turn and acknowledges the message. It holds no state of the run between turns and no key but those
of the members whose turns it is taking. See `_peer_wire` for what crosses the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._errors import BusError, ConfigError
from .._ids import ScopePath
from .._messages import Task
from .._step_context import StepContext
from ..backends import _wire
from ..buses.base import Inbox
from ..observability._tracing import attach_context
from ..security._identity import WorkerKey
from ._peer_wire import RENEW, TTL, new_worker_id, owner_inbox, owner_roll, parse, rolls_of, send, worker_inbox
from ._remote_port import RemotePort

if TYPE_CHECKING:
    from ..buses.base import Bus, Delivery
    from ._peers import Member, PeerGroup

__all__ = ("PeerServer",)

log = logging.getLogger("cadenza.peers")


class PeerServer:
    """Serves ``agents`` of ``group`` over ``bus``, for every conversation that sends it work, until stopped.

    Raises:
        ConfigError: an agent named is not a member of the group.
    """

    def __init__(self, group: PeerGroup, agents: Sequence[str], bus: Bus, *, worker: str | None = None) -> None:
        unknown = [a for a in agents if a not in group.members]
        if unknown or not agents:
            raise ConfigError(f"peer group {group.name!r} has no member {', '.join(map(repr, unknown)) or '(none named)'}"
                              f" to serve (members: {', '.join(group.members)})")
        self.group = group
        self.agents = tuple(dict.fromkeys(agents))
        self._rolls = rolls_of(group, self.agents)
        """Where this server enrols (and renews its entry every `RENEW` seconds) for each agent it serves."""
        self.bus = bus
        self.worker = worker or new_worker_id()
        self.turns_taken = 0
        self._joined: dict[tuple[str, str], _Joined] = {}
        """The conversations this server takes turns for, by (run id, group path)."""
        self._asked: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._outgoing: asyncio.Queue[tuple[Inbox, dict[str, Any]] | None] = asyncio.Queue()
        self.ready = asyncio.Event()
        """Set once the server is on its members' rolls: conversations that start from then on send it their turns."""
        self._stopping = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()
        """Acknowledgements and departures under way, which the read of this worker's inbox does not wait for."""
        self._failed: BaseException | None = None
        """The error a member's loop broke with (the bus failed): the server stops with it."""

    def __repr__(self) -> str:
        return f"PeerServer({self.group.name!r}, agents={list(self.agents)}, worker={self.worker!r})"

    async def serve(self, stop: asyncio.Event) -> None:
        """Take turns until ``stop`` is set; then leave the roll (turns in flight are given up: their messages are
        delivered again to another worker, or to the conversation's own process).

        No read of the bus is ever cancelled (a blocking Redis read cancelled midway can leave its connection
        unusable): every loop reads for at most `RENEW` seconds at a time and looks at ``_stopping`` in between.

        Raises:
            BusError: the bus failed (a Redis that cannot be reached, say).
        """
        await self._enrol()
        self.ready.set()
        loops = [asyncio.create_task(self._renew(), name=f"cadenza-serve-renew-{self.worker}"),
                 asyncio.create_task(self._send(), name=f"cadenza-serve-send-{self.worker}"),
                 asyncio.create_task(self._read(), name=f"cadenza-serve-read-{self.worker}")]
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait([stopped, asyncio.ensure_future(self._stopping.wait()), *loops],
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            self._stopping.set()
            with contextlib.suppress(BusError):  # wake the read of this worker's inbox, rather than cancel it
                await send(self.bus, worker_inbox(self.worker), {"op": "stop"})
            for run_id, scope in list(self._joined):
                await self._leave(run_id, scope, ended=False)
            self._outgoing.put_nowait(None)
            await asyncio.gather(*loops, *self._background, return_exceptions=True)
            with contextlib.suppress(BusError):  # the bus failed: the roll forgets this worker by itself
                for roll in self._rolls.values():
                    await self.bus.unenrol(roll, self.worker)
                inbox = worker_inbox(self.worker)
                await self.bus.discard(inbox.run_id, inbox.group)
        for loop in loops:
            if self._failed is None and not loop.cancelled():
                self._failed = loop.exception()
        if self._failed is not None:
            raise self._failed

    async def _enrol(self) -> None:
        for roll in self._rolls.values():
            await self.bus.enrol(roll, self.worker, TTL)

    async def _renew(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), RENEW)
            if not self._stopping.is_set():
                await self._enrol()

    async def _send(self) -> None:
        """Publish what this worker sends, one at a time, in the order it was sent (a tell before a later ask)."""
        while (outgoing := await self._outgoing.get()) is not None:
            inbox, message = outgoing
            await send(self.bus, inbox, {**message, "worker": self.worker})

    async def _read(self) -> None:
        inbox = worker_inbox(self.worker)
        while not self._stopping.is_set():
            delivery = await self.bus.receive(inbox, consumer=self.worker, wait=RENEW)
            if delivery is None:
                continue
            self._aside(self.bus.ack(delivery))
            message = parse(delivery.body)
            op = message.get("op")
            if op == "answer":
                _wire.answered(self._asked, message)
            elif op == "join":
                await self._join(str(message["run"]), ScopePath(str(message["scope"])), str(message["agent"]),
                                 str(message.get("owner", "")))
            elif op == "leave":  # while the members' loops finish their last read, this one reads on
                self._aside(self._leave(str(message["run"]), str(message["scope"]), ended=True))

    def _aside(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _join(self, run_id: str, scope: ScopePath, agent: str, owner: str) -> None:
        """Take ``agent``'s turns in the conversation at ``scope`` held by ``owner`` (a token of the process holding
        it: a resumed run's conversation has a new one, and replaces what this server kept of the old)."""
        if agent not in self.agents:
            return
        joined = self._joined.get((run_id, scope))
        if joined is not None and joined.owner != owner:
            await self._leave(run_id, scope, ended=False)
            joined = None
        if joined is None:
            joined = self._joined[(run_id, scope)] = _Joined(run_id, scope, owner)
        if agent in joined.loops:
            return
        loop = asyncio.create_task(self._member(joined, self.group.host(run_id, scope, agent)),
                                   name=f"cadenza-serve-{run_id}-{scope}-{agent}")
        loop.add_done_callback(self._ended)
        joined.loops[agent] = loop

    async def _leave(self, run_id: str, scope: str, *, ended: bool) -> None:
        """Stop serving the conversation at ``scope``: it ``ended``, or this server stops (and what its members were
        delivered stays pending for whoever takes them on)."""
        joined = self._joined.pop((run_id, scope), None)
        if joined is None:
            return
        joined.left = True
        for turn in joined.turns.values():
            turn.cancel()
        await asyncio.gather(*joined.loops.values(), return_exceptions=True)
        self.group.unhost(run_id, ScopePath(scope))
        if ended:  # a read waiting when the conversation dropped its inboxes may have made one again
            await self.bus.discard(run_id, ScopePath(scope))

    def _ended(self, loop: asyncio.Task[None]) -> None:
        if not loop.cancelled() and loop.exception() is not None and self._failed is None:
            self._failed = loop.exception()
            self._stopping.set()

    async def _member(self, joined: _Joined, member: Member) -> None:
        """Take ``member``'s turns, one message at a time, until its conversation ends, its process is gone (off its
        roll: killed), or this server stops."""
        agent = member.agent.name
        looked = time.monotonic()
        while not joined.left and not self._stopping.is_set():
            delivery = await self.bus.receive(member.inbox, consumer=self.worker, wait=RENEW)
            if delivery is None:
                if time.monotonic() - looked >= TTL:
                    looked = time.monotonic()
                    if not await self._present(joined):
                        break
                continue
            if joined.left:
                continue
            turn = joined.turns[agent] = asyncio.create_task(self._take(joined, member, delivery))
            await asyncio.wait([turn])  # cancelled when the conversation ends or the server stops
            del joined.turns[agent]
            if not turn.cancelled() and isinstance(turn.exception(), _Gone):
                break
            if not turn.cancelled() and turn.exception() is not None:
                raise turn.exception()  # type: ignore[misc]
        if not joined.left and self._joined.get((joined.run_id, joined.scope)) is joined:  # its process is gone
            joined.left = True
            del self._joined[(joined.run_id, joined.scope)]
            self.group.unhost(joined.run_id, joined.scope)
            log.info("%s of %s: the run's process is gone; waiting for a resumed one", agent, joined.scope,
                     extra={"run_id": joined.run_id, "agent": agent})

    async def _present(self, joined: _Joined) -> bool:
        """Whether the process holding ``joined``'s conversation is alive (on its roll)."""
        return joined.owner in await self.bus.roll(owner_roll(joined.run_id, joined.scope))

    async def _take(self, joined: _Joined, member: Member, delivery: Delivery) -> None:
        agent = member.agent.name
        turn = await self._request(joined, {"op": "turn", "agent": agent, "entry": delivery.entry_id,
                                            "body": delivery.body, "attempt": delivery.attempt})
        if not isinstance(turn, dict):  # nothing to do: handled already, or the conversation stopped
            return
        number = int(turn["turn"])
        where = f"{agent} of {member.inbox.group}"
        ids = {"run_id": member.inbox.run_id, "agent": agent}
        log.info("%s takes a turn: message %s, delivery %d", where, delivery.entry_id, delivery.attempt, extra=ids)
        try:
            reply = await self._run(joined, member, number, turn)
        except (asyncio.CancelledError, _Gone):
            log.info("%s gave up its turn", where, extra=ids)
            raise
        except Exception as exc:  # the turn broke here: the conversation decides what that means
            reply = {"error": _wire.error_of(exc)}
        self.turns_taken += 1
        await self._request(joined, {"op": "done", "turn": number, **reply})
        outcome = f"failed: {reply['error']['message']}" if "error" in reply else "recorded"
        log.info("%s: turn %s", where, outcome, extra=ids)

    async def _run(self, joined: _Joined, member: Member, number: int, turn: Mapping[str, Any]) -> dict[str, Any]:
        """Take the turn: the member's Result, sealed with its key (when the run signs), saying what it said."""
        agent = member.agent.name
        task = Task.model_validate(turn["task"])
        ctx = StepContext.from_json(str(turn["ctx"]))
        member.outbox, member.answer = [], None
        port = RemotePort(_Channel(self, joined), number, workspace=bool(turn["workspace"]),
                          streaming=bool(turn.get("streaming")))
        with attach_context(dict(ctx.trace) or None):  # its spans join the run's trace
            result = await member.agent.converse(task, ctx, port, self.group.tools[agent])
        if result.status == "success":
            result = result.model_copy(update={"output": {"said": member.outbox, "answer": member.answer}})
        key = turn.get("key")
        if key is None:
            return {"result": result.model_dump(mode="json")}
        group = member.inbox.group
        return {"envelope": WorkerKey.from_json(key).seal(group, result).model_dump(mode="json")}

    async def _request(self, joined: _Joined, message: dict[str, Any]) -> Any:
        """Send ``message`` to the conversation and wait for its answer.

        Raises:
            _Gone: the conversation's process went off its roll before it answered (it was killed).
        """
        number = next(self._ids)
        answer = self._asked[number] = asyncio.get_running_loop().create_future()
        try:
            self._outgoing.put_nowait((joined.inbox, {**message, "id": number}))
            while True:
                try:
                    return await asyncio.wait_for(asyncio.shield(answer), TTL)
                except TimeoutError:
                    if not await self._present(joined):
                        raise _Gone(joined.scope) from None
        finally:
            self._asked.pop(number, None)
            answer.cancel()

    def _tell(self, joined: _Joined, message: dict[str, Any]) -> None:
        self._outgoing.put_nowait((joined.inbox, message))


class _Channel:
    """A turn's port requests, sent to the conversation that gave the turn (a `PortChannel`)."""

    def __init__(self, server: PeerServer, joined: _Joined) -> None:
        self._server = server
        self._joined = joined

    async def ask(self, step: int, method: str, args: Mapping[str, Any]) -> Any:
        return await self._server._request(self._joined, {"op": "ask", "turn": step, "method": method,
                                                           "args": dict(args)})

    def tell(self, step: int, method: str, args: Mapping[str, Any]) -> None:
        self._server._tell(self._joined, {"op": "tell", "turn": step, "method": method, "args": dict(args)})


class _Joined:
    """A conversation this server takes turns for: where it is, who holds it, its members' loops, their turns in
    flight, and whether it left."""

    def __init__(self, run_id: str, scope: ScopePath, owner: str) -> None:
        self.run_id = run_id
        self.scope = scope
        self.owner = owner
        """The token of the process holding the conversation (its entry on the conversation's roll)."""
        self.inbox = owner_inbox(run_id, scope)
        self.loops: dict[str, asyncio.Task[None]] = {}
        self.turns: dict[str, asyncio.Task[None]] = {}
        self.left = False


class _Gone(Exception):
    """The process holding a conversation went off its roll while this server waited for it: it was killed."""
