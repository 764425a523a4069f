"""Scripted members of peer groups, for the peer tests: each answers a function of the message its turn handles."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from cadenza import Agent, RunResult
from cadenza.models.base import ModelRequest, ToolCall, UserMessage
from cadenza.models.function import FunctionModel

Reply = str | list[ToolCall]


def send(to: str, content: str) -> ToolCall:
    return ToolCall(id=f"s-{to}", name="send_message", arguments={"to": to, "content": content})


def answer(text: str) -> list[ToolCall]:
    return [ToolCall(id="a", name="final_answer", arguments={"answer": text})]


def new_message(request: ModelRequest) -> str:
    """The content of the message this turn handles."""
    turn = next(m.content for m in request.messages if isinstance(m, UserMessage))
    found = re.search(r"<message>(.*)</message>", turn, re.S)
    assert found is not None, turn
    return found.group(1)


def peer(name: str, script: Callable[[str, ModelRequest], Reply | Any]) -> Agent[str]:
    """An agent whose every model call answers ``script(new message, request)``."""
    return Agent(name, f"You are {name}.", model=FunctionModel(lambda r: script(new_message(r), r), name=name))


def said(result: RunResult[str]) -> list[tuple[str, str, int, str]]:
    return [(m.sender, m.recipient, m.round, m.content) for m in result.messages]
