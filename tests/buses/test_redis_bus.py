"""What only the Redis bus does: inboxes shared by separate connections and processes, streams that keep only what
is in flight, a consumer killed mid-message, and a server that cannot be reached. Against the Redis server on
127.0.0.1:6379, each test under its own key prefix."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from cadenza import BusError, ConfigError
from cadenza._ids import ScopePath
from cadenza.buses import Inbox
from cadenza.buses.redis import RedisBus

REDIS = "redis://127.0.0.1:6379/0"
DEADLINE = 10.0
AUTHOR = Inbox("run_redis", ScopePath("lead/review"), "author")


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    name = f"cadenza-test-{uuid.uuid4().hex[:12]}"
    yield name
    client = aioredis.Redis.from_url(REDIS)
    try:
        keys = [key async for key in client.scan_iter(match=f"{name}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def test_a_stream_keeps_only_what_is_in_flight(prefix: str) -> None:
    async with RedisBus(REDIS, prefix=prefix) as bus, aioredis.Redis.from_url(REDIS) as raw, \
            asyncio.timeout(DEADLINE):
        for i in range(100):
            await bus.publish(AUTHOR, f"m{i}")
        stream = f"{prefix}:run_redis:lead/review:inbox:author"
        assert await raw.xlen(stream) == 100
        assert await raw.smembers(f"{prefix}:run_redis:lead/review:inboxes") == {stream.encode()}
        for _ in range(100):
            delivery = await bus.receive(AUTHOR, consumer="c1", wait=1)
            assert delivery is not None and await bus.ack(delivery)
        assert await raw.xlen(stream) == 0  # acknowledged entries are gone: a long talk does not grow Redis
        await bus.discard("run_redis", ScopePath("lead/review"))
        assert await raw.exists(stream) == 0


async def test_two_connections_share_an_inbox_and_claim_each_others_stale_messages(prefix: str) -> None:
    async with RedisBus(REDIS, prefix=prefix, claim_after=0.2) as first, \
            RedisBus(REDIS, prefix=prefix, claim_after=0.2) as second, asyncio.timeout(DEADLINE):
        await first.publish(AUTHOR, "draft")
        held = await second.receive(AUTHOR, consumer="second", wait=1)
        assert held is not None and held.attempt == 1
        assert await first.unacknowledged("run_redis", ScopePath("lead/review")) == 1
        again = await first.receive(AUTHOR, consumer="first", wait=DEADLINE)
        assert again is not None and (again.entry_id, again.body, again.attempt) == (held.entry_id, "draft", 2)
        assert await first.ack(again) and not await second.ack(held)
        assert await second.unacknowledged("run_redis", ScopePath("lead/review")) == 0


CONSUMER = textwrap.dedent("""
    import asyncio, sys
    from cadenza._ids import ScopePath
    from cadenza.buses import Inbox
    from cadenza.buses.redis import RedisBus

    async def main() -> None:
        async with RedisBus("redis://127.0.0.1:6379/0", prefix=sys.argv[1], claim_after=0.3) as bus:
            delivery = await bus.receive(Inbox("run_redis", ScopePath("lead/review"), "author"), consumer="doomed",
                                         wait=10)
            print("GOT", delivery.body if delivery else None, flush=True)
            await asyncio.sleep(60)  # killed here, before its ack

    asyncio.run(main())
""")


async def test_a_message_whose_consumer_was_killed_is_delivered_to_another(prefix: str) -> None:
    async with RedisBus(REDIS, prefix=prefix, claim_after=0.3) as bus, asyncio.timeout(30):
        await bus.publish(AUTHOR, "handle me")
        child = await asyncio.create_subprocess_exec(sys.executable, "-c", CONSUMER, prefix,
                                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert child.stdout is not None
        assert await child.stdout.readline() == b"GOT handle me\n"
        child.kill()  # SIGKILL mid-message
        await child.communicate()

        again = await bus.receive(AUTHOR, consumer="survivor", wait=DEADLINE)
        assert again is not None and (again.body, again.attempt) == ("handle me", 2)
        assert await bus.ack(again)
        assert await bus.unacknowledged("run_redis", ScopePath("lead/review")) == 0


async def test_an_unreachable_server_is_a_clear_error_within_a_deadline() -> None:
    bus = RedisBus("redis://:secret@127.0.0.1:1/0", connect_timeout=0.5)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(DEADLINE):
        with pytest.raises(BusError) as failed:
            await bus.publish(AUTHOR, "hello")
    assert loop.time() - started < 5
    message = str(failed.value)
    assert "could not open run_redis/lead/review:author on the bus redis://:***@127.0.0.1:1/0" in message
    assert "secret" not in message and "secret" not in repr(bus)
    await bus.aclose()


@pytest.mark.parametrize(("url", "options", "expected"), [
    ("http://127.0.0.1:6379", {}, "needs a redis:// or rediss:// URL"),
    ("memory://", {}, "needs a redis:// or rediss:// URL"),
    ("redis://:secret@127.0.0.1:99999/0", {}, r"port from 1 to 65535, not the one in 'redis://:\*\*\*@127"),
    ("redis://127.0.0.1:6379/first", {}, "with a host and a numbered db"),
    (REDIS, {"claim_after": 0}, "claim_after"),
    (REDIS, {"connect_timeout": -1}, "connect_timeout"),
])
def test_a_bus_that_cannot_work_is_refused_when_made(url: str, options: dict[str, float], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        RedisBus(url, **options)
