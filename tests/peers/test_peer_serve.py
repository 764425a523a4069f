"""Members of a peer group served by a `PeerServer` (what ``cadenza peer serve`` runs) rather than by the
conversation's own process: the turns are taken there, recorded here, and the conversation ends as if every
member were local. On the in-process bus (server and conversation in one process) and on Redis.

The server is given its own copy of the group, built as a worker process builds it from the workflow file,
so that nothing but the bus connects the two.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from cadenza import ErrorCode, PeerGroup
from cadenza.buses import Bus, InProcessBus
from cadenza.buses.redis import RedisBus
from cadenza.models.base import ModelRequest
from cadenza.patterns._peer_serve import PeerServer
from cadenza.stores.sqlite import SQLiteStore
from peer_support import Reply, answer, peer, said, send

REDIS = "redis://127.0.0.1:6379/0"
DEADLINE = 20.0


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    if request.param == "memory":
        async with InProcessBus(claim_after=0.5) as memory:
            yield memory
        return
    prefix = f"cadenza-test-{uuid.uuid4().hex[:12]}"
    async with RedisBus(REDIS, prefix=prefix, claim_after=0.5) as made:
        yield made
    async with aioredis.Redis.from_url(REDIS) as raw:
        left = [key async for key in raw.scan_iter(match=f"{prefix}:*")]
    assert left == []  # the conversation and the server dropped what they wrote


def author(message: str, _: ModelRequest) -> Reply:
    return [send("critic", "draft: old pond")] if message == "Write a haiku" else answer(f"old pond ({message})")


class Critic:
    """The critic's model, counting the turns it takes in the process that holds it."""

    def __init__(self, reply: Callable[[str], Reply] = lambda _: [send("author", "add a frog")]) -> None:
        self.turns = 0
        self.reply = reply

    def __call__(self, message: str, _: ModelRequest) -> Reply:
        self.turns += 1
        return self.reply(message)


def review(bus: Bus, critic: Critic) -> PeerGroup:
    return PeerGroup("review", [peer("author", author), peer("critic", critic)], entry="author", bus=bus)


async def serving(server: PeerServer) -> tuple[asyncio.Task[None], asyncio.Event]:
    """``server`` running, once it is on the roll."""
    stop = asyncio.Event()
    task = asyncio.create_task(server.serve(stop))
    async with asyncio.timeout(DEADLINE):
        await server.ready.wait()
    return task, stop


async def stopped(task: asyncio.Task[None], stop: asyncio.Event) -> None:
    stop.set()
    async with asyncio.timeout(DEADLINE):
        await task


async def test_a_served_member_takes_its_turns_in_the_server_and_the_conversation_records_them(
        bus: Bus, tmp_path: Path) -> None:
    here, there = Critic(), Critic()
    server = PeerServer(review(bus, there), ["critic"], bus)
    task, stop = await serving(server)
    try:
        async with asyncio.timeout(DEADLINE):
            result = await review(bus, here).run("Write a haiku", store=tmp_path / "runs.db")
    finally:
        await stopped(task, stop)

    assert result.status == "success", result.error
    assert (result.output, result.stop_reason) == ("old pond (add a frog)", "answer: final answer from author")
    assert said(result) == [("review", "author", 0, "Write a haiku"), ("author", "critic", 1, "draft: old pond"),
                            ("critic", "author", 2, "add a frog")]
    assert (here.turns, there.turns, server.turns_taken) == (0, 1, 1)
    async with SQLiteStore(tmp_path / "runs.db") as store:
        assert (await store.get_run(result.run_id)).status == "success"
        audit = await store.audit(result.run_id)
    assert sorted(r.actor for r in audit if r.kind == "model.called") == ["author", "author",
                                                                         "critic"]  # the server reported its call
    assert [r.subject for r in audit if r.kind == "message.sent"] == ["review/author", "review/critic",
                                                                         "review/author"]


async def test_a_deadlock_with_a_served_member_is_caught_once_nothing_is_in_flight(bus: Bus) -> None:
    server = PeerServer(review(bus, Critic(lambda _: "I have nothing to say.")), ["critic"], bus)
    task, stop = await serving(server)
    try:
        async with asyncio.timeout(DEADLINE):
            result = await review(bus, Critic()).run("Write a haiku")
    finally:
        await stopped(task, stop)

    assert result.error is not None and result.error.code is ErrorCode.PEER_DEADLOCK, result.error
    assert "critic handled author's message of round 1 and sent nothing" in result.error.message
    assert server.turns_taken == 1


async def test_a_member_whose_server_stops_mid_turn_is_taken_back_and_its_message_handled_once(bus: Bus) -> None:
    started = asyncio.Event()

    async def stuck(message: str, _: ModelRequest) -> Reply:
        started.set()
        await asyncio.Event().wait()  # the turn never ends here: its server stops under it
        raise AssertionError("unreachable")

    server_group = PeerGroup("review", [peer("author", author), peer("critic", stuck)], entry="author", bus=bus)
    server = PeerServer(server_group, ["critic"], bus)
    task, stop = await serving(server)
    here = Critic()
    conversation = asyncio.create_task(review(bus, here).run("Write a haiku"))
    async with asyncio.timeout(DEADLINE):
        await started.wait()
    await stopped(task, stop)
    async with asyncio.timeout(DEADLINE):
        result = await conversation

    assert result.status == "success", result.error
    assert said(result) == [("review", "author", 0, "Write a haiku"), ("author", "critic", 1, "draft: old pond"),
                            ("critic", "author", 2, "add a frog")]
    assert (here.turns, server.turns_taken) == (1, 0)  # taken here, once, after the server gave it up
