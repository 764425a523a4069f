"""A peer group whose messages travel over the Redis bus: it ends as on the in-process bus, catches a deadlock at
once (nothing in flight in Redis), and leaves no key behind. Against the Redis server on 127.0.0.1:6379."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from cadenza import ErrorCode, PeerGroup
from cadenza.buses.redis import RedisBus
from cadenza.models.base import ModelRequest
from peer_support import Reply, answer, peer, said, send

REDIS = "redis://127.0.0.1:6379/0"
DEADLINE = 10.0


@pytest.fixture
async def bus() -> AsyncIterator[RedisBus]:
    prefix = f"cadenza-test-{uuid.uuid4().hex[:12]}"
    async with RedisBus(REDIS, prefix=prefix, claim_after=5) as made:
        yield made
    async with aioredis.Redis.from_url(REDIS) as raw:
        left = [key async for key in raw.scan_iter(match=f"{prefix}:*")]
    assert left == []  # the group discarded its inboxes when it ended


def author(message: str, _: ModelRequest) -> Reply:
    return [send("critic", "draft: old pond")] if message == "Write a haiku" else answer(f"old pond ({message})")


async def test_a_conversation_over_redis_ends_with_the_final_answer(bus: RedisBus) -> None:
    def critic(message: str, _: ModelRequest) -> Reply:
        return [send("author", "add a frog")]

    group = PeerGroup("review", [peer("author", author), peer("critic", critic)], entry="author", bus=bus)
    async with asyncio.timeout(DEADLINE):
        result = await group.run("Write a haiku")

    assert result.status == "success", result.error
    assert (result.output, result.stop_reason) == ("old pond (add a frog)", "answer: final answer from author")
    assert said(result) == [("review", "author", 0, "Write a haiku"), ("author", "critic", 1, "draft: old pond"),
                            ("critic", "author", 2, "add a frog")]


async def test_a_deadlock_over_redis_is_caught_at_once(bus: RedisBus) -> None:
    def critic(message: str, _: ModelRequest) -> Reply:
        return "I have nothing to say."

    group = PeerGroup("review", [peer("author", author), peer("critic", critic)], entry="author", bus=bus)
    async with asyncio.timeout(DEADLINE):
        result = await group.run("Write a haiku")

    assert result.error is not None and result.error.code is ErrorCode.PEER_DEADLOCK
    assert "critic handled author's message of round 1 and sent nothing" in result.error.message
    assert result.duration < 3  # detected, not timed out
