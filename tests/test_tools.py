"""Typed tools: schema from the signature and docstring, validation before the call, errors as ToolError."""

from __future__ import annotations

import asyncio
from typing import Literal

import pytest

from cadenza import ConfigError, ToolError, tool


@tool(scopes={"read"}, timeout=5)
def search(query: str, limit: int = 3, mode: Literal["fast", "deep"] = "fast") -> list[str]:
    """Search the notes.

    Args:
        query: words to look for.
        limit: how many hits at most.
    """
    return [f"{query}:{i}:{mode}" for i in range(limit)]


def test_schema_comes_from_signature_and_docstring() -> None:
    spec = search.spec
    assert spec.name == "search" and spec.description == "Search the notes."
    props = spec.parameters["properties"]
    assert props["query"] == {"type": "string", "title": "Query", "description": "words to look for."}
    assert props["limit"]["default"] == 3 and props["limit"]["description"] == "how many hits at most."
    assert props["mode"]["enum"] == ["fast", "deep"]
    assert spec.parameters["required"] == ["query"]
    assert spec.parameters["additionalProperties"] is False
    assert search.scopes == frozenset({"read"})


async def test_sync_tools_run_with_validated_arguments() -> None:
    assert await search.run({"query": "x", "limit": "2"}) == ["x:0:fast", "x:1:fast"]


async def test_invalid_arguments_never_execute() -> None:
    with pytest.raises(ToolError, match=r"invalid arguments for tool 'search': limit: .*integer"):
        await search.run({"query": "x", "limit": "many"})
    with pytest.raises(ToolError, match="rm: Extra inputs are not permitted"):
        await search.run({"query": "x", "rm": True})
    with pytest.raises(ToolError, match="query: Field required"):
        await search.run({})


async def test_async_tool_timeout_and_exceptions_are_tool_errors() -> None:
    @tool(timeout=0.01)
    async def slow() -> None:
        """Never finishes in time."""
        await asyncio.Event().wait()

    @tool
    async def broken() -> None:
        """Raises."""
        raise ValueError("bad state")

    with pytest.raises(ToolError, match=r"timed out after 0\.01s"):
        await slow.run({})
    with pytest.raises(ToolError, match="ValueError: bad state"):
        await broken.run({})


def test_untyped_or_variadic_functions_are_refused() -> None:
    def untyped(x):  # type: ignore[no-untyped-def]
        return x

    def variadic(*args: int) -> None:
        return None

    with pytest.raises(ConfigError, match="needs a type hint"):
        tool(untyped)
    with pytest.raises(ConfigError, match=r"\*args"):
        tool(variadic)
