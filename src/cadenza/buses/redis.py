"""The Redis bus: a peer group's inboxes as Redis Streams, so its agents can live in different processes.

Layout (keys under ``prefix``, ``cadenza`` by default):

- ``{prefix}:{run_id}:{group}:inbox:{agent}``: one stream per inbox, read through one consumer group
  (``cadenza``). One stream per inbox, rather than one per group, lets a consumer block on its own
  agent's messages alone, and keeps each inbox in publish order without filtering.
- ``{prefix}:{run_id}:{group}:inboxes``: a set of the group's stream keys, so that `unacknowledged`
  and `discard` find every inbox of a group without scanning the keyspace.
- ``{prefix}:roll:{service}``: a sorted set of the workers serving ``service``, each scored by when its entry
  runs out on the Redis server's clock (``TIME``), so workers on machines whose clocks differ agree.

A stream holds only what is in flight: an acknowledgement removes the entry (``XACK`` and ``XDEL`` in
one transaction). So `unacknowledged` is the sum of the group's stream lengths, and a long
conversation does not grow Redis: its streams stay as short as its backlog. Trimming by length
(``MAXLEN``) would instead drop messages nobody has handled.

A message left pending for ``claim_after`` seconds is claimed (``XAUTOCLAIM``) by the next receiver of
its inbox, and its attempt is Redis's own delivery count. A receive looks for such messages when this bus
last looked in that inbox ``claim_after / 2`` seconds ago or more (not on every receive: that would cost
each message a round trip), and a blocked receive wakes at least that often (and every second), so a
message whose consumer died is delivered again within one and a half ``claim_after`` of its last delivery.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from .._errors import BusError, ConfigError
from .._ids import ScopePath
from .base import Bus, Delivery, Inbox, bus_problem, check_body, check_claim_after, check_ttl, check_wait, redact

__all__ = ("RedisBus",)

GROUP = "cadenza"
"""The consumer group every inbox stream is read through."""
_FIELD = "body"
_LONGEST_BLOCK = 1.0
"""Seconds one blocking read may last: a receive looks again for claimable messages, and for a closed bus, at
least this often."""


class RedisBus(Bus):
    """Inboxes in Redis Streams, with the acknowledgement, redelivery and counting of the bus contract.

    Args:
        url: ``redis://[user:password@]host:port/db`` (or ``rediss://`` for TLS).
        claim_after: seconds a delivered message may stay unacknowledged before it is delivered again.
        prefix: the first part of every key this bus writes.
        connect_timeout: seconds to wait for a connection before the call fails with `BusError`.

    Raises:
        ConfigError: ``url`` is not a Redis URL, or ``claim_after`` or ``connect_timeout`` is not positive.
    """

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, claim_after: float = 30.0, prefix: str = "cadenza",
                 connect_timeout: float = 5.0) -> None:
        if not connect_timeout > 0:
            raise ConfigError(f"a bus's connect_timeout must be a positive number of seconds, not {connect_timeout!r}")
        if urlsplit(url).scheme not in ("redis", "rediss"):
            raise ConfigError(f"a Redis bus needs a redis:// or rediss:// URL with a host, not {redact(url)!r}")
        problem = bus_problem(url)
        if problem is not None:
            raise ConfigError(problem)
        self.url = redact(url)
        self.claim_after = check_claim_after(claim_after)
        self.prefix = prefix
        self._redis = aioredis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=connect_timeout,
                                              socket_timeout=connect_timeout + _LONGEST_BLOCK)
        self._ready: set[str] = set()
        """The streams this bus knows to have their consumer group."""
        self._looked: dict[str, float] = {}
        """When this bus last looked for claimable messages in each stream (`time.monotonic`)."""
        self._closed = False

    def __repr__(self) -> str:
        return f"RedisBus({self.url!r}, claim_after={self.claim_after:g})"

    async def publish(self, inbox: Inbox, body: str) -> str:
        self._check_open()
        check_body(inbox, body)
        key = self._stream(inbox)
        await self._prepare(inbox, key)
        return str(await self._call(f"publish to {inbox}", lambda: self._redis.xadd(key, {_FIELD: body})))

    async def receive(self, inbox: Inbox, *, consumer: str, wait: float) -> Delivery | None:
        self._check_open()
        check_wait(inbox, wait)
        key = self._stream(inbox)
        await self._prepare(inbox, key)
        deadline = time.monotonic() + wait
        while True:
            if time.monotonic() - self._looked.get(key, -self.claim_after) >= self.claim_after / 2:
                self._looked[key] = time.monotonic()
                delivery = await self._claim(inbox, key, consumer)
                if delivery is not None:
                    return delivery
            block = min(deadline - time.monotonic(), self.claim_after / 2, _LONGEST_BLOCK)
            delivery = await self._read(inbox, key, consumer, block)
            if delivery is not None:
                return delivery
            if time.monotonic() >= deadline:
                return None

    async def ack(self, delivery: Delivery) -> bool:
        self._check_open()
        key = self._stream(delivery.inbox)

        async def ack_and_drop() -> list[Any]:
            async with self._redis.pipeline(transaction=True) as both:
                both.xack(key, GROUP, delivery.entry_id)
                both.xdel(key, delivery.entry_id)
                done: list[Any] = await both.execute()
                return done

        acked, _ = await self._call(f"acknowledge a message of {delivery.inbox}", ack_and_drop)
        return bool(acked)

    async def unacknowledged(self, run_id: str, group: ScopePath) -> int:
        self._check_open()
        where = f"{run_id}/{group}"
        keys = set(await self._call(f"count the messages of {where}",
                                    lambda: self._redis.smembers(self._members(run_id, group))))
        if not keys:
            return 0

        async def lengths() -> list[int]:
            async with self._redis.pipeline(transaction=False) as each:
                for key in sorted(keys):
                    each.xlen(key)
                counted: list[int] = await each.execute()
                return counted

        return sum(await self._call(f"count the messages of {where}", lengths))

    async def enrol(self, service: str, worker: str, ttl: float) -> None:
        self._check_open()
        check_ttl(service, ttl)
        now = await self._now(f"enrol {worker} for {service}")
        await self._call(f"enrol {worker} for {service}",
                         lambda: self._redis.zadd(self._roll(service), {worker: now + ttl}))

    async def roll(self, service: str) -> list[str]:
        self._check_open()
        key = self._roll(service)
        now = await self._now(f"read the roll of {service}")

        async def current() -> list[str]:
            async with self._redis.pipeline(transaction=True) as both:
                both.zremrangebyscore(key, "-inf", now)  # entries that ran out: their workers stopped renewing
                both.zrange(key, 0, -1)
                _, workers = await both.execute()
                return sorted(str(w) for w in workers)

        workers: list[str] = await self._call(f"read the roll of {service}", current)
        return workers

    async def unenrol(self, service: str, worker: str) -> None:
        self._check_open()
        await self._call(f"unenrol {worker} from {service}", lambda: self._redis.zrem(self._roll(service), worker))

    async def discard(self, run_id: str, group: ScopePath) -> None:
        self._check_open()
        members = self._members(run_id, group)
        keys = set(await self._call(f"discard {run_id}/{group}", lambda: self._redis.smembers(members)))
        await self._call(f"discard {run_id}/{group}", lambda: self._redis.delete(members, *keys))
        self._ready -= keys
        for key in keys:
            self._looked.pop(key, None)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._redis.aclose()

    # ------------------------------------------------------------------------------------------- internals

    def _stream(self, inbox: Inbox) -> str:
        return f"{self.prefix}:{inbox.run_id}:{inbox.group}:inbox:{inbox.agent}"

    def _roll(self, service: str) -> str:
        return f"{self.prefix}:roll:{service}"

    async def _now(self, what: str) -> float:
        """The Redis server's clock, in seconds."""
        seconds, micros = await self._call(what, self._redis.time)
        return float(seconds) + float(micros) / 1e6

    def _members(self, run_id: str, group: ScopePath) -> str:
        return f"{self.prefix}:{run_id}:{group}:inboxes"

    async def _prepare(self, inbox: Inbox, key: str) -> None:
        """Make ``key``'s stream and consumer group, and list it among its group's inboxes (once per bus)."""
        if key in self._ready:
            return

        async def create() -> None:
            try:
                await self._redis.xgroup_create(key, GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            await self._redis.sadd(self._members(inbox.run_id, inbox.group), key)

        await self._call(f"open {inbox}", create)
        self._ready.add(key)

    async def _claim(self, inbox: Inbox, key: str, consumer: str) -> Delivery | None:
        """The oldest message held unacknowledged past ``claim_after``, now ``consumer``'s; None if there is none."""
        idle = int(self.claim_after * 1000)
        claimed = await self._grouped(inbox, key, lambda: self._redis.xautoclaim(key, GROUP, consumer, idle, count=1))
        entries = claimed[1] if claimed else []  # [next start, [(id, fields)], ids deleted meanwhile]
        if not entries:
            return None
        entry_id, body = _entry(entries[0])
        pending = await self._call(f"receive from {inbox}", lambda: self._redis.xpending_range(
            key, GROUP, min=entry_id, max=entry_id, count=1))
        attempt = int(pending[0]["times_delivered"]) if pending else 2
        return Delivery(inbox, entry_id, body, attempt)

    async def _read(self, inbox: Inbox, key: str, consumer: str, block: float) -> Delivery | None:
        """The oldest message never delivered, waiting up to ``block`` seconds for one."""
        millis = int(block * 1000)
        read = await self._grouped(inbox, key, lambda: self._redis.xreadgroup(
            GROUP, consumer, {key: ">"}, count=1, block=millis if millis > 0 else None))
        if not read:  # [[stream, [(id, fields)]]]
            return None
        _, entries = read[0]
        if not entries:
            return None
        entry_id, body = _entry(entries[0])
        return Delivery(inbox, entry_id, body, 1)

    async def _grouped(self, inbox: Inbox, key: str, command: Callable[[], Awaitable[Any]]) -> Any:
        """``command`` on ``key``'s consumer group, made again if another process discarded it before the command
        (``NOGROUP``); None, as for a read that found nothing, if it was discarded while the command was blocked
        reading (``UNBLOCKED``). So a receive from a discarded inbox goes on waiting in a new one, as on the
        in-process bus."""
        for attempt in (1, 2):
            try:
                return await self._call(f"receive from {inbox}", command)
            except BusError as failed:
                cause = str(failed.__cause__) if isinstance(failed.__cause__, ResponseError) else ""
                if cause.startswith("UNBLOCKED"):
                    return None
                if not cause.startswith("NOGROUP") or attempt == 2:
                    raise
            self._ready.discard(key)
            await self._prepare(inbox, key)
        raise AssertionError("unreachable")

    async def _call(self, what: str, command: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``command`` and return Redis's reply; a Redis failure, or a bus closed under it, becomes a `BusError`
        naming ``what``."""
        try:
            return await command()
        except (TimeoutError, RedisError, OSError) as exc:
            if self._closed:
                raise BusError(f"the bus {self.url} was closed") from exc
            raise BusError(f"could not {what} on the bus {self.url}: {type(exc).__name__}: {exc}") from exc

    def _check_open(self) -> None:
        if self._closed:
            raise BusError(f"the bus {self.url} is closed")


def _entry(entry: Any) -> tuple[str, str]:
    """``(entry id, body)`` of a stream entry as Redis replies it: ``(id, {"body": ...})``."""
    entry_id, fields = entry
    return str(entry_id), str(fields[_FIELD])
