"""Peer groups: agents that message each other directly, with nobody in charge.

A group starts with one message, the goal, sent to its entry agent. An agent wakes when a message
arrives in its inbox and handles it in one turn: it sees the goal, the recent part of its own
conversation and the new message, and answers with ``send_message`` calls to the peers it may
address, a ``final_answer`` (if it is one that may give it), or nothing. Agents with messages waiting
run at the same time. Messages travel over a `Bus` (in-process by default), each published before the
message that caused it is acknowledged, so the bus always knows whether anything is in flight.

The group stops on the first of: final answers that meet its rule (its output), a limit (messages,
rounds, time), a loop (`LoopWatch`), a deadlock (every agent idle, nothing in flight, no answer: the
result says who waited on whom), or a turn that failed (a model error, an exhausted budget). Every
stop other than an answer is a failure Result whose error code names it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import html
import json
import logging
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal, Unpack

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._budget import Budget
from .._errors import (
    BusError,
    ConfigError,
    ErrorCode,
    MalformedMessage,
    Rejection,
    SecurityError,
    ToolError,
    WorkerLost,
)
from .._events import PeerMessageHandled, PeerMessageSent, RunFinished, RunStarted
from .._ids import AgentId, RunId, ScopePath, StepId, child_path, new_message_id, new_run_id, new_task_id, split_path
from .._messages import ErrorInfo, PeerMessage, Result, Task, utcnow
from .._names import name_problem
from .._result import RunResult
from .._step_context import StepContext
from .._sync import run_sync
from .._usage import Usage
from .._worker_spec import PeersSpec
from ..buses.base import Bus, Delivery, Inbox
from ..buses.memory import InProcessBus
from ..engine._journal import PeerRecord
from ..engine._run_state import LocalPort, RunState
from ..tools._tool_sources import ToolSources, require_approved
from ..tools._tools import Tool, ToolContext
from ._agent import render_task
from ._peer_remote import RemoteMembers, RemoteTurn
from ._peer_watch import LoopWatch, wait_for_graph
from ._peer_wire import RENEW, rolls_of
from ._streamed import RunOptions, streamed

log = logging.getLogger("cadenza.peers")

if TYPE_CHECKING:
    from .._events import Event, EventSink, FinalResult
    from .._port import RunPort
    from ..models.base import Model
    from ..models.pricing import Prices
    from ..stores.base import Store
    from ..tools._mcp import MCPServer
    from ._agent import Agent
    from ._override import Swaps

__all__ = ("PeerGroup", "StopPolicy", "Member")


@dataclass(frozen=True, slots=True)
class StopPolicy:
    """When a peer group stops: who answers, and the limits that end a conversation that does not."""

    answer_by: Sequence[str] = ()
    """The agents that may give the final answer (each gets a ``final_answer`` tool); empty: the entry agent."""
    quorum: int | Literal["all"] = 1
    """How many of them must answer before the group stops; the output is the answer that completed it."""
    max_messages: int = 50
    """Messages the agents may send in all; one more ends the group."""
    max_rounds: int | None = None
    """How deep a conversation may go (the opening message is round 0, each reply one more)."""
    timeout: float | None = None
    """Seconds the whole conversation may take."""
    repeats: int = 2
    """How often the same message (sender, recipient, words) may be sent again before it counts as a loop."""
    ping_pong: int = 10
    """How many messages two agents may exchange in a row, answering only each other, before it is a loop."""

    def __post_init__(self) -> None:
        if self.max_messages < 1:
            raise ConfigError(f"a peer group's max_messages must be at least 1, not {self.max_messages}")
        if self.max_rounds is not None and self.max_rounds < 1:
            raise ConfigError(f"a peer group's max_rounds must be at least 1, not {self.max_rounds}")
        if self.timeout is not None and not self.timeout > 0:
            raise ConfigError(f"a peer group's timeout must be a positive number of seconds, not {self.timeout}")
        if self.repeats < 0 or self.ping_pong < 1:
            raise ConfigError("a peer group's repeats must not be negative and its ping_pong must be at least 1")
        if self.quorum != "all" and (isinstance(self.quorum, bool) or not isinstance(self.quorum, int)
                                     or self.quorum < 1):
            raise ConfigError(f"a peer group's quorum must be 'all' or a number of at least 1, not {self.quorum!r}")


class PeerGroup:
    """Agents that message each other directly until an answer, a limit, a loop or a deadlock stops them.

    A worker like an agent or a team: run it alone (``await group.run(goal)``) or give it a step of a plan.
    """

    def __init__(
        self,
        name: str,
        agents: Sequence[Agent[Any]],
        *,
        entry: str,
        talks_to: Mapping[str, Sequence[str]] | None = None,
        stop: StopPolicy | None = None,
        history: int = 20,
        bus: Bus | None = None,
        description: str = "",
    ) -> None:
        """Create a peer group.

        Args:
            name: the group's name; its step id when it runs alone.
            agents: its members; names must differ.
            entry: the member the goal is sent to.
            talks_to: who may message whom, ``{agent: [peers]}``; an agent not named may message every other
                member. The runtime enforces it: a message to anyone else is refused and the model is told.
            stop: who answers and the limits; by default the entry agent answers, within 50 messages.
            history: how many of its earlier messages (received and sent) an agent is shown with each new one;
                older ones are summarised by their count, so a long conversation costs the same per turn.
            bus: where messages travel; a new in-process bus for each run when None.
            description: what the group is good for, as a planner sees it.
        """
        problem = name_problem(name)
        if problem:
            raise ConfigError(f"peer group name {problem}")
        members = {a.name: a for a in agents}
        if len(members) != len(agents):
            raise ConfigError(f"peer group {name!r}: two agents have the same name")
        if len(members) < 2:
            raise ConfigError(f"peer group {name!r} needs at least two agents, has {len(members)}")
        if entry not in members:
            raise ConfigError(f"peer group {name!r}: the entry agent {entry!r} is not a member "
                              f"(members: {', '.join(members)})")
        if history < 1:
            raise ConfigError(f"peer group {name!r}: history must be at least 1, not {history}")
        self.stop = stop or StopPolicy()
        self.graph = _talk_graph(name, list(members), talks_to or {})
        answer_by = tuple(self.stop.answer_by) or (entry,)
        unknown = [a for a in answer_by if a not in members]
        if unknown:
            raise ConfigError(f"peer group {name!r}: answer_by names agents that are not members: {', '.join(unknown)}")
        self.quorum = len(answer_by) if self.stop.quorum == "all" else self.stop.quorum
        if self.quorum > len(answer_by):
            raise ConfigError(f"peer group {name!r}: a quorum of {self.quorum} needs as many agents in answer_by, "
                              f"which names {len(answer_by)}")
        for agent in members.values():
            waits = [t.name for t in agent.tools.values() if t.requires_approval]
            if agent.requires_approval or waits:
                raise ConfigError(f"peer group {name!r}: agent {agent.name!r} requires approval"
                                  f"{' for ' + ', '.join(waits) if waits else ''}, which a peer group cannot wait for")
        self._name = name
        self._description = description or f"a peer group of {', '.join(members)}"
        self.members = members
        self.entry = entry
        self.answer_by = answer_by
        self.history = history
        self.bus = bus
        self._live: dict[tuple[str, str], dict[str, Member]] = {}
        """The members of the conversations this process takes turns for now, by (run id, the group's path): where
        the members' tools put what a turn says (`_turn_of`)."""
        self.tools: dict[str, list[Tool]] = {name: self._tools_of(name) for name in members}
        """Each member's tools for the occasion, built once: ``send_message`` to its peers, ``final_answer``."""

    @property
    def name(self) -> str:
        return self._name

    @property
    def description(self) -> str:
        return self._description

    def __repr__(self) -> str:
        return f"PeerGroup({self._name!r}, agents={list(self.members)}, entry={self.entry!r})"

    def override(self, *, model: str | Model | Sequence[str | Model]) -> AbstractContextManager[None]:
        """Inside ``with group.override(model=FunctionModel(reply)):``, every member's model is ``model``; after the block,
        what it was. An application's own tests run offline this way."""
        from ._override import override_models

        return override_models(self, model)

    def _override_into(self, swaps: Swaps) -> None:
        for member in self.members.values():
            swaps.worker(member)

    def describe(self) -> PeersSpec:
        """What the group is, as data: its members' specs, its talk graph, who answers and its limits."""
        stop = self.stop
        return PeersSpec(name=self._name, description=self._description,
                         members=tuple(m.describe() for m in self.members.values()), entry=self.entry,
                         talks_to=dict(self.graph),
                         answer_by=self.answer_by, quorum=self.quorum, history=self.history,
                         max_messages=stop.max_messages, max_rounds=stop.max_rounds, timeout=stop.timeout,
                         repeats=stop.repeats, ping_pong=stop.ping_pong)

    @property
    def mcp_servers(self) -> tuple[MCPServer, ...]:
        """Every MCP server a member draws tools from, each once: the run opens and reviews them first."""
        found = {id(server): server for agent in self.members.values() for server in agent.mcp_servers}
        return tuple(found.values())

    async def run(self, goal: str, *, input: Any = None, run_id: RunId | None = None,
                  events: EventSink | None = None, store: Store | str | os.PathLike[str] | None = None,
                  source: str | None = None, options: dict[str, Any] | None = None, workflow: str | None = None,
                  budget: Budget | None = None, prices: Prices | None = None, sign_messages: bool = True,
                  audit: bool = True, tool_sources: ToolSources | None = None) -> RunResult[str]:
        """Hold the conversation on ``goal`` as a run of its own; the arguments are `Supervisor.run`'s.

        With a ``store``, every message and every handled turn is recorded as it happens, so a killed run resumes
        (`resume`) without handling a message twice. ``budget`` caps what the whole group may spend, and each
        message travels signed by its sender unless ``sign_messages`` is false.

        Raises:
            ConfigError: a member's MCP server offers tools that wait for approval (nothing was executed).
            StoreError: the store failed; what was recorded before stays, and the run can be resumed.
        """
        task = Task(task_id=new_task_id(), run_id=run_id or new_run_id(), sender=AgentId("user"),
                    recipient=AgentId(self._name), instruction=goal, input=input)
        state = RunState.begin(task.run_id, budget=budget, prices=prices, sign_messages=sign_messages,
                               sources=tool_sources)
        async with nullcontext() if tool_sources is not None else state.sources:
            await require_approved(self.mcp_servers, state.sources, workflow=source)
            if store is None:
                return await self._top(task, state.port(events=events))
            from ..engine._durable import open_for, record_run

            async with open_for(store) as opened:
                return await record_run(self, self._top, task, opened, state=state, events=events, source=source,
                                        options=options, workflow=workflow, audit=audit)

    def stream(self, goal: str, **options: Unpack[RunOptions]) -> AsyncIterator[Event | FinalResult[str]]:
        """`run`, read as it happens, as `Supervisor.stream` reads a team's run: every event, then the result."""
        return streamed(lambda sink: self.run(goal, events=sink, **options))

    async def resume(self, run_id: RunId | str, *, store: Store | str | os.PathLike[str],
                     events: EventSink | None = None, force: bool = False, budget: Budget | None = None,
                     prices: Prices | None = None, sign_messages: bool = True, audit: bool = True,
                     tool_sources: ToolSources | None = None) -> RunResult[str]:
        """Continue a conversation an earlier process left unfinished: handled messages are not handled again,
        messages sent and not handled are delivered; the arguments are `Supervisor.resume`'s.

        Raises:
            RunNotFound: no such run in ``store``.
            ResumeError: the run has finished, or this group differs from the one that started it.
        """
        from ..engine._durable import open_for, resume_run

        state = RunState.begin(str(run_id), budget=budget, prices=prices, sign_messages=sign_messages,
                               sources=tool_sources)
        async with nullcontext() if tool_sources is not None else state.sources, open_for(store) as opened:
            await require_approved(self.mcp_servers, state.sources)
            return await resume_run(self, self._top, RunId(run_id), opened, state=state, events=events, force=force,
                                    audit=audit)

    def run_sync(self, goal: str, *, input: Any = None, store: str | os.PathLike[str] | None = None,
                 budget: Budget | None = None, sign_messages: bool = True) -> RunResult[str]:
        """`run` for code that is not async (``store`` is a URL or path here: it is opened inside the run's loop)."""
        return run_sync(self.run(goal, input=input, store=store, budget=budget, sign_messages=sign_messages))

    async def _top(self, task: Task, port: LocalPort) -> RunResult[Any]:
        """The conversation as the whole of its run: what a durable run wraps (`_durable.Engine`)."""
        events = port.events
        scope = ScopePath(self._name)
        if events.active:
            events.emit(RunStarted(task.run_id, scope, task.instruction))
        ctx = StepContext.alone(task.run_id, self._name, task.task_id, port.budgets)
        try:
            result, transcript = await self._converse(task, ctx, port)
        except asyncio.CancelledError:
            if events.active:
                events.emit(RunFinished(task.run_id, scope, "cancelled", Usage()))
            raise
        if events.active:
            events.emit(RunFinished(task.run_id, scope, result.status, result.usage, result.finished_at))
        return RunResult(run_id=task.run_id, status=result.status, output=result.output, usage=result.usage,
                         started_at=result.started_at, finished_at=result.finished_at, error=result.error,
                         messages=transcript, stop_reason=result.stop_reason)

    async def execute(self, task: Task, ctx: StepContext, port: RunPort) -> Result:
        """Hold the conversation on ``task`` where ``ctx`` places the group; its output is the final answer."""
        if not isinstance(port, LocalPort):  # it seals and opens its members' messages with the run's keyring
            return _failed(task, self._name, f"peer group {ctx.scope!r} can run only in the process of its run; "
                                             f"its port is a {type(port).__name__}")
        result, _ = await self._converse(task, ctx, port)
        return result

    async def _converse(self, task: Task, ctx: StepContext, port: LocalPort) -> tuple[Result, list[PeerMessage]]:
        owned = self.bus is None
        bus = self.bus or InProcessBus()
        conversation = _Conversation(self, task, ctx, port, bus)
        self._live[(ctx.run_id, ctx.scope)] = conversation.members
        try:
            result = await conversation.hold()
        finally:
            del self._live[(ctx.run_id, ctx.scope)]
            if owned:
                await bus.aclose()
            else:
                try:
                    await bus.discard(ctx.run_id, ctx.scope)
                except BusError as failed:  # the conversation is over and recorded: what is left is the bus's
                    log.warning("peer group %s could not drop its inboxes from the bus: %s", ctx.scope, failed,
                                extra={"run_id": ctx.run_id})
        return result, conversation.transcript

    def host(self, run_id: str, scope: ScopePath, agent: str) -> Member:
        """``agent`` of the conversation at ``scope``, which another process holds, taking its turns in this one
        (``cadenza peer serve``): where its tools note what it says, until `unhost`."""
        member = Member(self.members[agent], Inbox(run_id, scope, agent))
        self._live.setdefault((run_id, scope), {})[agent] = member
        return member

    def unhost(self, run_id: str, scope: ScopePath) -> None:
        """The conversation at ``scope`` has ended: its turns are no longer taken here."""
        self._live.pop((run_id, scope), None)

    def _turn_of(self, context: ToolContext) -> Member:
        """The member whose turn made a tool call: its tools know it by the call's run, step path and agent."""
        if context.run_id is None or context.step is None or context.agent is None:
            raise ToolError("send_message and final_answer work only inside a peer group's conversation")
        group_path = split_path(ScopePath(context.step))[0]
        members = self._live.get((context.run_id, group_path))
        if members is None or context.agent not in members:
            raise ToolError(f"no conversation of peer group {self._name!r} is running at {group_path!r}")
        return members[context.agent]

    def _tools_of(self, name: str) -> list[Tool]:
        tools = []
        peers = self.graph[name]
        if peers:
            tools.append(_send_tool(self, peers))
        if name in self.answer_by:
            tools.append(_answer_tool(self))
        return tools


def _talk_graph(group: str, names: list[str], talks_to: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """Who may message whom, checked: every name a member, nobody messaging itself; everyone else by default."""
    problems = [f"{who!r} is not a member" for who in talks_to if who not in names]
    graph: dict[str, tuple[str, ...]] = {}
    for name in names:
        peers = tuple(talks_to.get(name, [n for n in names if n != name]))
        problems += [f"{name!r} may not message itself" for p in peers if p == name]
        problems += [f"{name!r} talks to {p!r}, who is not a member" for p in peers if p not in names]
        graph[name] = peers
    if problems:
        raise ConfigError(f"peer group {group!r}: talks_to: {'; '.join(problems)} (members: {', '.join(names)})")
    return graph


@dataclass(slots=True)
class Member:
    """One agent of a running group: its inbox, its conversation so far, and what its current turn said."""

    agent: Agent[Any]
    inbox: Inbox
    history: list[PeerMessage] = field(default_factory=list)
    outbox: list[tuple[str, str]] = field(default_factory=list)
    """(recipient, content) sent in the current turn."""
    answer: str | None = None
    """The final answer given in the current turn, if any."""


class _Conversation:
    """One run of a peer group: its members, the bus, what was said, and why it stopped."""

    def __init__(self, group: PeerGroup, task: Task, ctx: StepContext, port: LocalPort, bus: Bus) -> None:
        self.group = group
        self.security = port.state.security
        """The run's keyring when it signs its messages: each member seals what it sends and opens what it gets."""
        self.events = port.events
        self.task = task
        self.ctx = ctx
        self.port = port
        self.bus = bus
        self.started = utcnow()
        self.transcript: list[PeerMessage] = []
        self.sent = 0
        self.usage = Usage()
        self.answers: dict[str, str] = {}
        self.watch = LoopWatch(group.stop.repeats, group.stop.ping_pong)
        self.members = {name: self._member(agent) for name, agent in group.members.items()}
        self.busy: dict[asyncio.Task[None], Member] = {}
        """The turns being taken, here or by a worker."""
        self.remote: RemoteMembers | None = None
        """The members that workers in other processes serve, when any do."""
        self.woken = asyncio.Event()
        """Set when a worker asks for a turn, or a member comes back: the conversation looks again."""
        self.unacknowledged = 0
        """Messages this process published to its members' inboxes and has not acknowledged yet."""
        self.handled: set[str] = set()
        """The ids of the messages whose turn is recorded: one delivered again is acknowledged, not handled again."""
        self.opened: dict[tuple[str, str], PeerMessage] = {}
        """Messages opened for a turn not recorded yet, by (member, entry id): a delivery of one again (its turn's
        worker died) is not opened twice, which the keyring would refuse as a replay."""
        self.waiting: dict[str, None] = {}
        """Members whose inbox may hold a message: every one a message was delivered to, until found empty; in the
        order of delivery (a dict, not a set), so that the same conversation dispatches its turns in the same order."""
        self.stopped: tuple[ErrorCode | None, str] | None = None
        """Why it stopped: (None for an answer, else the error code; the stop reason, which names its kind first)."""
        self.output: str | None = None
        """The answer that completed the quorum."""

    def _member(self, agent: Agent[Any]) -> Member:
        return Member(agent, Inbox(self.ctx.run_id, self.ctx.scope, agent.name))

    async def hold(self) -> Result:
        journal = self.port.state.journal
        record = journal.prior.conversations.get(self.ctx.scope) if journal is not None else None
        if record is not None and not record.said:
            record = None
        if record is not None:  # the store is the record: what an earlier process left on the bus
            await self.bus.discard(self.ctx.run_id, self.ctx.scope)  # goes (a Redis bus outlives it), or it would
            #                                                          arrive twice, as sealed then and as delivered now
        if self.group.bus is not None:  # a bus other processes may share: members with a worker on its roll go there
            rolls = rolls_of(self.group, self.members)
            assigned = await RemoteMembers.assign(rolls, self.bus, self.ctx.run_id)
            if assigned:
                self.remote = RemoteMembers(rolls, self.bus, self.ctx.run_id, self.ctx.scope, assigned,
                                            self._take_remote, self._reclaim)
                await self.remote.open()
        try:
            if record is not None:
                await self._take_up(record)
            else:
                opening = PeerMessage(message_id=new_message_id(), run_id=RunId(self.ctx.run_id),
                                      group=self.ctx.scope, sender=AgentId(split_path(self.ctx.scope)[1]),
                                      recipient=AgentId(self.group.entry), round=0, content=_goal(self.task),
                                      sent_at=utcnow())
                self.watch.remember(opening)
                await self._record(opening, durable=True)
                await self._deliver(opening)
            await self._until_stopped()
        finally:
            for running in self.busy:
                running.cancel()
            await asyncio.gather(*self.busy, return_exceptions=True)
            if self.remote is not None:
                await self.remote.close()
        return self._result()

    async def _until_stopped(self) -> None:
        """Take the turns of the messages delivered, here and on the workers, until the conversation stops."""
        loop = asyncio.get_running_loop()
        timeout = self.group.stop.timeout
        deadline = None if timeout is None else loop.time() + timeout
        busy = self.busy
        while self.stopped is None:
            await self._start_turns()
            if not busy and not self._in_flight():
                waits = wait_for_graph(list(self.members), self.transcript, self.answers)
                self._stop(ErrorCode.PEER_DEADLOCK, "deadlock: every agent is idle and no message is in flight, "
                           f"with {len(self.answers)} of the {self.group.quorum} final answers needed: {waits}")
                break
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            waiting_for: set[asyncio.Future[Any]] = set(busy)
            if self.remote is not None:  # a worker may ask for a turn, or stop renewing its entry, at any time
                self.woken.clear()
                waiting_for.add(woken := asyncio.ensure_future(self.woken.wait()))
                remaining = RENEW if remaining is None else min(remaining, RENEW)
            await asyncio.wait(waiting_for, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            if self.remote is not None:
                woken.cancel()
            if deadline is not None and loop.time() >= deadline:
                self._stop(ErrorCode.PEER_LIMIT, f"timeout: no final answer within {timeout:g}s "
                           f"({self.sent} messages sent)")
            self._end_turns()
            if self.remote is not None and self.stopped is None:
                await self.remote.check()

    async def _start_turns(self) -> None:
        """A turn for each member here with a message waiting and no turn in flight."""
        for name in list(self.waiting):  # only inboxes something was delivered to since they were last empty
            member = self.members[name]
            if member in self.busy.values():
                continue
            delivery = await self.bus.receive(member.inbox, consumer=name, wait=0)
            if delivery is None:
                del self.waiting[name]
            else:
                self.busy[asyncio.create_task(self._turn(member, delivery))] = member

    def _end_turns(self) -> None:
        """Forget the turns that ended, in the order they started; one that broke stops the conversation.

        Raises:
            BusError: a turn could not reach the bus: the conversation cannot go on (its run resumes once it is back).
        """
        for finished in [turn for turn in self.busy if turn.done()]:
            member = self.busy.pop(finished)
            failed = finished.exception()
            if isinstance(failed, BusError):
                raise failed
            if failed is not None:  # the group broke: a failure Result, not a crash
                self._stop(ErrorCode.INTERNAL, f"failure: {member.agent.name}'s turn broke: "
                           f"{type(failed).__name__}: {failed}")

    def _in_flight(self) -> bool:
        """Whether a message is on its way to or with a member served elsewhere: published and not acknowledged.
        This process publishes every message of its members' inboxes and acknowledges every one, so its own count
        is the bus's (`Bus.unacknowledged`), without asking the bus on every pause."""
        return self.remote is not None and self.unacknowledged > 0

    def _take_remote(self, agent: str, delivery: Delivery, turn: RemoteTurn) -> None:
        """A worker asks for the turn on ``delivery``: it runs here as a local turn does, the agent there."""
        member = self.members[agent]
        self.busy[asyncio.create_task(self._turn(member, delivery, turn))] = member
        self.woken.set()

    def _reclaim(self, agent: str) -> None:
        """``agent``'s worker died and no other serves it: its turns are taken here again."""
        self.waiting[agent] = None
        self.woken.set()

    async def _take_up(self, record: PeerRecord) -> None:
        """Continue the conversation an earlier process of the run recorded: what was said and handled is known as
        it was (histories, counts, answers, loop watch); what was said and not handled is delivered again."""
        self.handled.update(record.handled)
        for message in record.said:
            self.transcript.append(message)
            if message.round == 0:
                self.watch.remember(message)
            else:
                self.sent += 1
                self.watch.check(message)
                self.members[message.sender].history.append(message)
            handled = record.handled.get(message.message_id)
            if handled is not None:
                self.usage = self.usage + handled.usage
                self.members[handled.agent].history.append(message)
                if handled.answer is not None:
                    self._answered(handled.agent, handled.answer)
        if self.stopped is None:
            for message in record.said:
                if message.message_id not in record.handled:
                    await self._deliver(message)

    async def _turn(self, member: Member, delivery: Delivery, remote: RemoteTurn | None = None) -> None:
        """Handle one message: the agent's turn (here, or by the worker ``remote`` stands for), then its messages
        out, then the acknowledgement."""
        try:
            await self._take_turn(member, delivery, remote)
        except WorkerLost:  # its message stays pending, and is delivered again to whoever takes the member on
            pass
        finally:
            if remote is not None:
                await remote.end()

    async def _take_turn(self, member: Member, delivery: Delivery, remote: RemoteTurn | None) -> None:
        name = member.agent.name
        try:
            message = self._received(delivery, name)
        except SecurityError as refused:
            self._stop(refused.code, f"refused: a message to {name} was refused: {refused}")
            return
        if message.message_id in self.handled:  # delivered again after its turn was recorded: done with it
            self.opened.pop((name, delivery.entry_id), None)
            await self._ack(delivery)
            return
        task = Task(task_id=new_task_id(), run_id=self.task.run_id, parent_task_id=self.task.task_id,
                    step_id=StepId(self.ctx.step_id), sender=message.sender, recipient=AgentId(name),
                    instruction=self._render(member, message), depth=self.task.depth + 1)
        path = child_path(self.ctx.scope, name)
        journal = self.port.state.journal
        ctx = dataclasses.replace(self.ctx, scope=path, agent=name, task_id=task.task_id, turn=message.message_id,
                                  prior_calls=journal.prior.calls_of(path) if journal is not None else ())
        if remote is None:
            member.outbox, member.answer = [], None
            result = await member.agent.converse(task, ctx, self.port, self.group.tools[name])
        else:
            try:
                result = await self._taken_by(remote, member, task, ctx)
            except SecurityError as refused:
                self._stop(refused.code, f"refused: {name}'s turn from worker {remote.worker} was refused: {refused}")
                return
        self.usage = self.usage + result.usage
        member.history.append(message)
        if result.status != "success":
            error = result.error
            code = error.code if error is not None else ErrorCode.INTERNAL
            detail = error.message if error is not None else result.status
            kind = "budget" if code is ErrorCode.BUDGET_EXCEEDED else "failure"
            self._stop(code, f"{kind}: {name} failed while handling {message.sender}'s message of round "
                       f"{message.round}: {detail}")
            return
        replies = []
        for recipient, content in member.outbox:
            reply = PeerMessage(message_id=new_message_id(), run_id=message.run_id, group=message.group,
                                sender=AgentId(name), recipient=AgentId(recipient), round=message.round + 1,
                                in_reply_to=message.message_id, content=content, sent_at=utcnow())
            if self.stopped is not None or self._over_limit(reply):
                return
            member.history.append(reply)
            replies.append(reply)
            await self._record(reply, durable=False)
        if member.answer is not None:
            self._answered(name, member.answer)
        if self.events.active:  # one commit with the replies: a resumed group finds the turn whole or not at all
            await self.events.keep_durable(PeerMessageHandled(self.ctx.run_id, self.ctx.scope, name,
                                                              message.message_id, utcnow(), member.answer,
                                                              result.usage))
        self.handled.add(message.message_id)
        self.opened.pop((name, delivery.entry_id), None)
        for reply in replies:
            await self._deliver(reply)
        await self._ack(delivery)

    async def _ack(self, delivery: Delivery) -> None:
        if await self.bus.ack(delivery):
            self.unacknowledged -= 1

    def _received(self, delivery: Delivery, recipient: str) -> PeerMessage:
        """The message ``delivery`` brings ``recipient``: opened (`_open`) the first time it is delivered.

        Raises:
            SecurityError: the envelope was refused.
        """
        found = self.opened.get((recipient, delivery.entry_id))
        if found is None:
            found = self.opened[(recipient, delivery.entry_id)] = self._open(delivery.body, recipient)
        return found

    async def _taken_by(self, remote: RemoteTurn, member: Member, task: Task, ctx: StepContext) -> Result:
        """The turn as the worker ``remote`` stands for takes it: its Result, opened as sealed by the member when
        the run signs; what the member said in it becomes its outbox and answer, checked as its tools would.

        Raises:
            WorkerLost: the worker died before it replied.
            SecurityError: the Result was not sealed by the member, or says what the member may not.
        """
        name = member.agent.name
        key = None
        if self.security is not None:
            key = self.security.keyring.worker_key(self.security.identity(self._path(name))).to_json()
        reply = await remote.take(task, ctx, self.port, key)
        error = reply.get("error")
        if isinstance(error, dict):
            raise ConfigError(f"worker {remote.worker} could not take {name}'s turn: {error.get('type')}: "
                              f"{error.get('message')}")
        if self.security is not None:
            result = self.security.keyring.open(json.dumps(reply.get("envelope")), recipient=self.ctx.scope,
                                                expected_kind="result", model=Result)
        else:
            result = Result.model_validate(reply.get("result"))
        said = _said(result, name, self.group)
        member.outbox, member.answer = list(said.said), said.answer
        return result

    def _over_limit(self, reply: PeerMessage) -> bool:
        """Stop instead of sending ``reply`` when it would pass a limit or make a loop."""
        stop = self.group.stop
        if self.sent >= stop.max_messages:
            self._stop(ErrorCode.PEER_LIMIT, f"message limit: {stop.max_messages} messages sent without a final answer")
        elif stop.max_rounds is not None and reply.round > stop.max_rounds:
            self._stop(ErrorCode.PEER_LIMIT, f"round limit: {reply.sender} would answer in round {reply.round}, "
                                             f"past the limit of {stop.max_rounds}, without a final answer")
        elif (loop := self.watch.check(reply)) is not None:
            self._stop(ErrorCode.PEER_LOOP, f"loop: {loop}")
        return self.stopped is not None

    async def _record(self, message: PeerMessage, *, durable: bool) -> None:
        """Count ``message`` as said: the transcript and, when the run keeps records, a transition (``durable``:
        committed before this returns; otherwise with the turn's own commit)."""
        if message.round > 0:
            self.sent += 1
        self.transcript.append(message)
        if self.events.active:
            sent = PeerMessageSent(self.ctx.run_id, self.ctx.scope, message, self.security is not None)
            if durable:
                await self.events.keep_durable(sent)
            else:
                self.events.keep(sent)

    async def _deliver(self, message: PeerMessage) -> None:
        """Put a recorded message in its recipient's inbox, sealed by its sender when the run signs its messages."""
        body = message.model_dump_json()
        if self.security is not None:
            sender = self._path(message.sender if message.round > 0 else None)
            envelope = self.security.keyring.seal(self.security.identity(sender), self._path(message.recipient),
                                                  message)
            body = envelope.model_dump_json()
        await self.bus.publish(Inbox(self.ctx.run_id, self.ctx.scope, message.recipient), body)
        self.unacknowledged += 1
        if self.remote is None or message.recipient not in self.remote.assigned:  # a worker reads its members' own
            self.waiting[message.recipient] = None

    def _open(self, body: str, recipient: str) -> PeerMessage:
        """The message in ``body``, verified as sealed by its sender for ``recipient`` when the run signs.

        Raises:
            SecurityError: the envelope was refused (forged, tampered with, replayed...; the run audits it).
        """
        if self.security is None:
            return PeerMessage.model_validate_json(body)
        return self.security.keyring.open(body, recipient=self._path(recipient), expected_kind="message",
                                          model=PeerMessage)

    def _path(self, member: str | None) -> str:
        """The identity of a member (the group's path, then its name), or of the group itself for None."""
        return self.ctx.scope if member is None else child_path(self.ctx.scope, member)

    def _answered(self, agent: str, answer: str) -> None:
        """Count ``agent``'s final answer; the one that completes the quorum ends the group as its output."""
        self.answers[agent] = answer
        if len(self.answers) >= self.group.quorum and self.stopped is None:
            who = " and ".join(self.answers)
            rule = f"final answers from {who} (quorum {self.group.quorum})" if self.group.quorum > 1 else \
                f"final answer from {who}"
            self.stopped, self.output = (None, f"answer: {rule}"), answer

    def _stop(self, code: ErrorCode, diagnosis: str) -> None:
        if self.stopped is None:
            self.stopped = (code, diagnosis)

    def _result(self) -> Result:
        assert self.stopped is not None
        code, reason = self.stopped
        error = None if code is None else ErrorInfo(
            type="PeerGroupStopped", code=code, message=f"peer group {self.group.name!r} stopped after {self.sent} "
                                                        f"messages: {reason}")
        return Result(task_id=self.task.task_id, run_id=self.task.run_id, agent=AgentId(self.group.name),
                      status="success" if error is None else "failure", output=self.output if error is None else None,
                      error=error, usage=self.usage, started_at=self.started, finished_at=utcnow(),
                      stop_reason=reason, transcript=self.ctx.scope)

    def _render(self, member: Member, message: PeerMessage) -> str:
        """What an agent sees in one turn: the goal, its peers, its recent conversation and the new message."""
        group = self.group
        name = member.agent.name
        peers = group.graph[name]
        others = [n for n in group.members if n != name]
        lines = [f"You are {name}, one of the agents of the peer group {group.name!r}: {', '.join(others)}.",
                 f"The group's goal:\n<goal>{_escape(_goal(self.task))}</goal>"]
        shown = member.history[-group.history:]
        if len(member.history) > len(shown):
            lines.append(f"({len(member.history) - len(shown)} earlier messages of your conversation are not shown.)")
        if shown:
            lines.append("Your conversation so far:")
            lines += [_line(m, name) for m in shown]
        lines.append(f"New message from {message.sender} (round {message.round}):\n"
                     f"<message>{_escape(message.content)}</message>")
        ways = []
        if peers:
            ways.append(f"send_message to the peers who should hear from you ({', '.join(peers)})")
        if name in group.answer_by:
            ways.append("final_answer once the group's goal is met")
        lines.append("Answer with " + ", or ".join(ways) + "; send nothing if you have nothing to add.")
        return "\n".join(lines)


class _Said(BaseModel):
    """What a member said in a turn a worker took for it, as the worker's Result carries it (its output)."""

    model_config = ConfigDict(extra="forbid")

    said: list[tuple[str, _Text]] = []
    """(recipient, content) of each message it sent."""
    answer: _Text | None = None


def _said(result: Result, name: str, group: PeerGroup) -> _Said:
    """What ``name`` said in ``result``, if its tools could have let it say that.

    Raises:
        MalformedMessage: it could not: an output that is not one, a message to a member it may not message, an
            answer from a member that may not give one. A worker does not send those unless it was tampered with.
    """
    if result.status != "success":
        return _Said()
    try:
        said = _Said.model_validate(result.output)
    except ValidationError as exc:
        raise MalformedMessage(Rejection("malformed", f"{name}'s turn says what a turn cannot: {exc.errors()[0]}",
                                         sender=name)) from None
    refused = [to for to, _ in said.said if to not in group.graph[name]]
    if refused or (said.answer is not None and name not in group.answer_by):
        what = f"messages to {', '.join(refused)}" if refused else "a final answer"
        raise MalformedMessage(Rejection("malformed", f"{name} may not send {what}", sender=name))
    return said


def _goal(task: Task) -> str:
    """What the group is asked: the instruction, then its input and the results of the steps it depends on, as
    delimited data (as an agent given the step would see them)."""
    return render_task(task)


def _escape(text: str) -> str:
    """Another agent's words as data: they cannot close the block they are shown in."""
    return html.escape(text, quote=False)


def _line(message: PeerMessage, me: str) -> str:
    said = _escape(message.content)
    if message.sender == me:
        return f"- you → {message.recipient} (round {message.round}): {said}"
    return f"- {message.sender} → you (round {message.round}): {said}"


_Text = Annotated[str, Field(min_length=1)]
"""What a message or an answer says: never nothing (the tool's schema says so, so a model is told)."""


def _send_tool(group: PeerGroup, peers: tuple[str, ...]) -> Tool:
    """``send_message``, whose ``to`` lists only the peers a member may address: a message to anyone else does not
    fit the tool's schema, so it is refused and the model is told which peers it may message."""

    async def send_message(to: str, content: str, context: ToolContext) -> str:
        """Send a message to one of your peers; your turn ends once your messages are sent.

        Args:
            to: the peer the message is for.
            content: what you have to say.
        """
        group._turn_of(context).outbox.append((to, content))
        return f"sent to {to}"

    send_message.__annotations__ = {"to": Literal[peers], "content": _Text, "context": ToolContext, "return": str}
    return Tool(send_message, ends_turn=True)


def _answer_tool(group: PeerGroup) -> Tool:
    async def final_answer(answer: str, context: ToolContext) -> str:
        """Give the group's final answer; your turn ends with it.

        Args:
            answer: the answer to the group's goal.
        """
        group._turn_of(context).answer = answer
        return "answer recorded"

    final_answer.__annotations__ = {"answer": _Text, "context": ToolContext, "return": str}
    return Tool(final_answer, ends_turn=True)


def _failed(task: Task, group: str, message: str) -> Result:
    now = utcnow()
    return Result(task_id=task.task_id, run_id=task.run_id, agent=AgentId(group), status="failure",
                  error=ErrorInfo(type="ConfigError", code=ErrorCode.CONFIG, message=message), started_at=now,
                  finished_at=now)
