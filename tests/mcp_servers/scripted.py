"""Scripted models for the MCP tests: call one tool, then say what it answered."""

from __future__ import annotations

from typing import Any

from cadenza import FunctionModel, ModelRequest
from cadenza.models.base import ToolCall, ToolResultMessage

__all__ = ("one_call", "results")


def results(request: ModelRequest) -> list[ToolResultMessage]:
    return [m for m in request.messages if isinstance(m, ToolResultMessage)]


def one_call(name: str, arguments: dict[str, Any]) -> FunctionModel:
    """A model that calls one tool, then answers with what the tool said (prefixed ERROR: when it failed)."""

    def reply(request: ModelRequest) -> str | list[ToolCall]:
        done = results(request)
        if not done:
            return [ToolCall(id="1", name=name, arguments=arguments)]
        return ("ERROR: " if done[-1].is_error else "") + done[-1].content

    return FunctionModel(reply)
