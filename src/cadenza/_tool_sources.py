"""Tool sources an agent draws on at run time: MCP servers, opened on first use and closed with the run.

A workflow file is loaded before any event loop runs, but an MCP server's tools are known only
once its session is open. So an agent holds the servers, not their tools; each task lists the
servers' tools afresh (a description changed since approval disables that tool at once). The
servers a run opened are closed when the run ends, so no server process outlives it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._mcp import MCPServer
    from ._tools import Tool

__all__ = ("open_for_run", "source_tools")


class _OpenServers:
    """The servers one run opened, each opened once even when parallel steps ask at the same time."""

    def __init__(self) -> None:
        self.opened: list[MCPServer] = []
        self._locks: dict[int, asyncio.Lock] = {}

    async def ensure(self, server: MCPServer) -> None:
        lock = self._locks.setdefault(id(server), asyncio.Lock())
        async with lock:
            if server not in self.opened and not server.is_open:
                await server.__aenter__()
                self.opened.append(server)

    async def close(self) -> None:
        for server in reversed(self.opened):
            await server.__aexit__(None, None, None)
        self.opened.clear()


_current: ContextVar[_OpenServers | None] = ContextVar("cadenza_open_servers", default=None)


@asynccontextmanager
async def open_for_run() -> AsyncIterator[None]:
    """Close, when the body ends, every server the body opened (a nested run leaves them to its outer run)."""
    if _current.get() is not None:
        yield
        return
    servers = _OpenServers()
    token = _current.set(servers)
    try:
        yield
    finally:
        _current.reset(token)
        await servers.close()


async def source_tools(servers: Sequence[MCPServer]) -> list[Tool]:
    """The usable tools of ``servers``, opening any that is closed (names two servers share are namespaced).

    Outside a run (no `open_for_run`), a server opened here stays open: close it with ``async with``.
    """
    from ._mcp import mcp_tools

    run = _current.get()
    for server in servers:
        if run is not None:
            await run.ensure(server)
        elif not server.is_open:
            await server.__aenter__()
    return await mcp_tools(servers)
