"""Peer messages travel sealed by their sender: a message changed or replayed on the bus is refused.

The bus here is the real in-process bus with one hook on what is published: what an attacker on the
bus (or a broken one) could do to a message in flight. A sender forged with a real key is refused by the
envelope's bindings (``tests/security/test_envelopes.py``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from cadenza import Agent, ErrorCode, PeerGroup, RunResult
from cadenza.buses import Inbox, InProcessBus
from cadenza.models.base import ModelRequest, ToolCall, UserMessage
from cadenza.models.function import FunctionModel

DEADLINE = 10.0


class MeddlingBus(InProcessBus):
    """Publishes what ``meddle`` makes of each body sent to ``target``'s inbox (once)."""

    def __init__(self, target: str, meddle: Callable[[str], list[str]]) -> None:
        super().__init__()
        self.target, self.meddle, self.done = target, meddle, False

    async def publish(self, inbox: Inbox, body: str) -> str:
        if inbox.agent != self.target or self.done:
            return await super().publish(inbox, body)
        self.done = True
        published = ""
        for changed in self.meddle(body):
            published = await super().publish(inbox, changed)
        return published


def agents() -> list[Agent[str]]:
    def author(request: ModelRequest) -> list[ToolCall]:
        turn = next(m.content for m in request.messages if isinstance(m, UserMessage))
        if "approved" in turn:
            return [ToolCall(id="a", name="final_answer", arguments={"answer": "done"})]
        return [ToolCall(id="s", name="send_message", arguments={"to": "critic", "content": "draft"})]

    def critic(request: ModelRequest) -> list[ToolCall]:
        return [ToolCall(id="s", name="send_message", arguments={"to": "author", "content": "approved"})]

    return [Agent("author", model=FunctionModel(author)), Agent("critic", model=FunctionModel(critic))]


async def converse(bus: InProcessBus, *, sign: bool = True) -> RunResult[str]:
    async with asyncio.timeout(DEADLINE):
        return await PeerGroup("review", agents(), entry="author", bus=bus).run("Write", sign_messages=sign)


def change_payload(body: str) -> list[str]:
    envelope = json.loads(body)
    payload = json.loads(envelope["payload"])
    payload["content"] = "rejected, start over"
    envelope["payload"] = json.dumps(payload)
    return [json.dumps(envelope)]


async def test_signed_messages_reach_their_peers() -> None:
    result = await converse(InProcessBus())
    assert result.status == "success" and result.output == "done"


async def test_a_message_changed_on_the_bus_is_refused() -> None:
    result = await converse(MeddlingBus("critic", change_payload))

    assert result.error is not None and result.error.code is ErrorCode.TAMPERED_MESSAGE
    assert "a message to critic was refused" in result.error.message


async def test_a_message_sent_twice_is_refused_as_a_replay() -> None:
    result = await converse(MeddlingBus("critic", lambda body: [body, body]))

    assert result.error is not None and result.error.code is ErrorCode.REPLAYED_MESSAGE


async def test_without_signing_messages_travel_as_plain_json() -> None:
    seen: list[str] = []

    def keep(body: str) -> list[str]:
        seen.append(body)
        return [body]

    result = await converse(MeddlingBus("critic", keep), sign=False)

    assert result.status == "success" and json.loads(seen[0])["kind"] == "message"
