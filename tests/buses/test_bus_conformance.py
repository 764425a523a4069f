"""One behaviour on every bus: order, waiting, acknowledgement, redelivery, counting, bad input, closing.

Every test runs on the in-process bus and on the Redis bus (the Redis server on 127.0.0.1:6379, each test
under its own key prefix, removed after it). Every wait is bounded: a bus that hangs fails the test at its
deadline.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from cadenza import BusError, ConfigError
from cadenza._ids import ScopePath
from cadenza.buses import Bus, Inbox, InProcessBus
from cadenza.buses.redis import RedisBus

CLAIM = 0.2
"""Seconds before an unacknowledged message is delivered again, in these tests."""
DEADLINE = 10.0
REDIS = "redis://127.0.0.1:6379/0"

MakeBus = Callable[..., Bus]


@pytest.fixture(params=["memory", "redis"])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[MakeBus]:
    made: list[Bus] = []
    prefix = f"cadenza-test-{uuid.uuid4().hex[:12]}"

    def build(**options: Any) -> Bus:
        options.setdefault("claim_after", CLAIM)
        bus = InProcessBus(**options) if request.param == "memory" else RedisBus(REDIS, prefix=prefix, **options)
        made.append(bus)
        return bus

    yield build
    for bus in made:
        await bus.aclose()
    if request.param == "redis":
        await forget(prefix)


async def forget(prefix: str) -> None:
    """Delete every key a test's Redis buses wrote."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS)
    try:
        async with asyncio.timeout(DEADLINE):
            keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
            if keys:
                await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
def bus(make: MakeBus) -> Bus:
    return make()


def inbox(agent: str, group: str = "review", run: str = "run_bus") -> Inbox:
    return Inbox(run, ScopePath(group), agent)


async def drain(bus: Bus, box: Inbox, consumer: str = "c1") -> list[str]:
    """Every message waiting in ``box`` now, each acknowledged."""
    bodies = []
    async with asyncio.timeout(DEADLINE):
        while (delivery := await bus.receive(box, consumer=consumer, wait=0)) is not None:
            bodies.append(delivery.body)
            assert await bus.ack(delivery)
    return bodies


async def test_an_inbox_delivers_in_publish_order_once_each(bus: Bus) -> None:
    ids = [await bus.publish(inbox("author"), f"m{i}") for i in range(5)]
    assert len(set(ids)) == 5

    got = []
    async with asyncio.timeout(DEADLINE):
        for _ in range(5):
            delivery = await bus.receive(inbox("author"), consumer="c1", wait=1)
            assert delivery is not None and delivery.attempt == 1 and delivery.inbox == inbox("author")
            got.append((delivery.entry_id, delivery.body))
            await bus.ack(delivery)
        assert await bus.receive(inbox("author"), consumer="c1", wait=0) is None
    assert got == list(zip(ids, [f"m{i}" for i in range(5)], strict=True))


async def test_a_waiting_receiver_gets_a_message_published_while_it_waits(bus: Bus) -> None:
    async def later() -> None:
        await asyncio.sleep(0.05)
        await bus.publish(inbox("author"), "hello")

    async with asyncio.timeout(DEADLINE):
        sender = asyncio.create_task(later())
        delivery = await bus.receive(inbox("author"), consumer="c1", wait=DEADLINE)
        await sender
    assert delivery is not None and delivery.body == "hello"


async def test_a_receive_with_nothing_to_deliver_returns_none_after_its_wait(bus: Bus) -> None:
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(DEADLINE):
        started = loop.time()
        assert await bus.receive(inbox("author"), consumer="c1", wait=0.1) is None
        waited = loop.time() - started
        assert await bus.receive(inbox("author"), consumer="c1", wait=0) is None
    assert waited >= 0.09


async def test_inboxes_groups_and_runs_are_apart(bus: Bus) -> None:
    await bus.publish(inbox("author"), "to the author")
    await bus.publish(inbox("critic"), "to the critic")
    await bus.publish(inbox("author", group="debate"), "another group")
    await bus.publish(inbox("author", run="run_other"), "another run")

    assert await bus.unacknowledged("run_bus", ScopePath("review")) == 2
    assert await bus.unacknowledged("run_bus", ScopePath("debate")) == 1
    assert await bus.unacknowledged("run_other", ScopePath("review")) == 1
    assert await bus.unacknowledged("run_bus", ScopePath("nobody")) == 0
    assert await drain(bus, inbox("author")) == ["to the author"]
    assert await drain(bus, inbox("critic")) == ["to the critic"]


async def test_a_message_counts_as_unacknowledged_until_its_ack(bus: Bus) -> None:
    group = ScopePath("review")
    await bus.publish(inbox("author"), "draft")
    assert await bus.unacknowledged("run_bus", group) == 1

    delivery = await bus.receive(inbox("author"), consumer="c1", wait=1)
    assert delivery is not None
    assert await bus.unacknowledged("run_bus", group) == 1  # delivered, still in flight
    await bus.publish(inbox("critic"), "reply")  # replies go out before the ack: the count never touches zero
    assert await bus.ack(delivery)
    assert await bus.unacknowledged("run_bus", group) == 1
    assert not await bus.ack(delivery)  # a second ack is harmless
    assert await drain(bus, inbox("critic")) == ["reply"]
    assert await bus.unacknowledged("run_bus", group) == 0


async def test_an_unacknowledged_message_is_delivered_again_after_claim_after(bus: Bus) -> None:
    await bus.publish(inbox("author"), "draft")
    first = await bus.receive(inbox("author"), consumer="dies", wait=1)
    assert first is not None

    async with asyncio.timeout(DEADLINE):
        assert await bus.receive(inbox("author"), consumer="c2", wait=0) is None  # not before claim_after
        again = await bus.receive(inbox("author"), consumer="c2", wait=DEADLINE)  # woken when it becomes claimable
    assert again is not None and (again.entry_id, again.body, again.attempt) == (first.entry_id, "draft", 2)

    assert await bus.ack(again)
    assert not await bus.ack(first)  # the consumer taken for dead acknowledges late: nothing happens
    assert await bus.unacknowledged("run_bus", ScopePath("review")) == 0


async def test_a_redelivered_message_comes_before_new_ones(bus: Bus) -> None:
    await bus.publish(inbox("author"), "old")
    held = await bus.receive(inbox("author"), consumer="dies", wait=1)
    assert held is not None
    await bus.publish(inbox("author"), "new")
    await asyncio.sleep(CLAIM * 1.5)
    assert await drain(bus, inbox("author"), consumer="c2") == ["old", "new"]


async def test_concurrent_consumers_of_one_inbox_never_get_the_same_message(bus: Bus) -> None:
    for i in range(30):
        await bus.publish(inbox("author"), f"m{i}")

    async def consume(name: str) -> list[str]:
        got = []
        while (delivery := await bus.receive(inbox("author"), consumer=name, wait=0.05)) is not None:
            got.append(delivery.body)
            await asyncio.sleep(0)
            await bus.ack(delivery)
        return got

    async with asyncio.timeout(DEADLINE):
        shares = await asyncio.gather(*(consume(f"c{i}") for i in range(3)))
    every = [body for share in shares for body in share]
    assert sorted(every) == sorted(f"m{i}" for i in range(30))


async def test_discard_forgets_a_group_and_only_that_group(bus: Bus) -> None:
    await bus.publish(inbox("author"), "draft")
    await bus.publish(inbox("author", group="debate"), "kept")
    await bus.discard("run_bus", ScopePath("review"))

    assert await bus.unacknowledged("run_bus", ScopePath("review")) == 0
    assert await bus.receive(inbox("author"), consumer="c1", wait=0) is None
    assert await drain(bus, inbox("author", group="debate")) == ["kept"]


async def test_bad_input_is_refused_with_the_inbox_named(bus: Bus) -> None:
    with pytest.raises(BusError, match=r"run_bus/review:author.*non-empty"):
        await bus.publish(inbox("author"), "")
    with pytest.raises(BusError, match=r"run_bus/review:author.*-1"):
        await bus.receive(inbox("author"), consumer="c1", wait=-1)
    assert await bus.unacknowledged("run_bus", ScopePath("review")) == 0


async def test_claim_after_must_be_positive(make: MakeBus) -> None:
    with pytest.raises(ConfigError, match="claim_after"):
        make(claim_after=0)


async def test_a_closed_bus_refuses_everything_and_wakes_its_waiters(make: MakeBus) -> None:
    bus = make()
    async with asyncio.timeout(DEADLINE):
        waiting = asyncio.create_task(bus.receive(inbox("author"), consumer="c1", wait=DEADLINE))
        await asyncio.sleep(0.05)
        await bus.aclose()
        with pytest.raises(BusError, match="closed"):
            await waiting
    await bus.aclose()  # twice is harmless
    with pytest.raises(BusError, match="closed"):
        await bus.publish(inbox("author"), "late")
    with pytest.raises(BusError, match="closed"):
        await bus.receive(inbox("author"), consumer="c1", wait=0)
    with pytest.raises(BusError, match="closed"):
        await bus.unacknowledged("run_bus", ScopePath("review"))


async def test_a_roll_lists_its_enrolled_workers_until_their_entries_run_out(bus: Bus) -> None:
    async with asyncio.timeout(DEADLINE):
        await bus.enrol("debate", "w2", ttl=30)
        await bus.enrol("debate", "w1", ttl=0.2)
        await bus.enrol("other", "w3", ttl=30)
        assert await bus.roll("debate") == ["w1", "w2"]
        assert await bus.roll("nobody") == []
        await asyncio.sleep(0.3)
        assert await bus.roll("debate") == ["w2"]  # w1 did not renew
        await bus.enrol("debate", "w1", ttl=30)
        await bus.unenrol("debate", "w2")
        await bus.unenrol("debate", "never-enrolled")
        assert await bus.roll("debate") == ["w1"]
        assert await bus.roll("other") == ["w3"]


async def test_an_entry_that_would_run_out_at_once_is_refused(bus: Bus) -> None:
    with pytest.raises(BusError, match="'debate' needs a positive ttl"):
        await bus.enrol("debate", "w1", ttl=0)
