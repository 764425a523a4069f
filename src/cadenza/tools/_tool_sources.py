"""Tool sources an agent draws on at run time: MCP servers, opened as a run starts and closed with it.

A workflow file is loaded before any event loop runs, but an MCP server's tools are known only
once its session is open. So an agent holds the servers, not their tools; a run first checks that
every tool its servers offer is approved (`require_approved`), then each task lists the servers'
tools afresh (a description changed since approval disables that tool at once). The servers a
run opened are closed when the run ends, so no server process outlives it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from .._port import RunPort, ToolServer
    from ._mcp import DisabledTool, MCPServer
    from ._tools import Tool

__all__ = ("ToolSources", "require_approved", "source_tools")


class ToolSources:
    """The servers one run opened, each opened once even when parallel steps ask at the same time.

    Part of the run's state (``RunState.sources``); ``async with`` closes, when the block ends, every
    server it opened (one the caller had opened already stays open).
    """

    def __init__(self) -> None:
        self.opened: list[ToolServer] = []
        self.approved: set[int] = set()
        """Servers (by id) whose tools were found approved: the CLI checks before the run, the run not again."""
        self._locks: dict[int, asyncio.Lock] = {}

    async def open(self, servers: Sequence[ToolServer]) -> None:
        """Open each server that is closed; it stays open until `close`."""
        for server in servers:
            lock = self._locks.setdefault(id(server), asyncio.Lock())
            async with lock:
                if server not in self.opened and not server.is_open:
                    await server.__aenter__()
                    self.opened.append(server)

    async def close(self) -> None:
        for server in reversed(self.opened):
            await server.__aexit__(None, None, None)
        self.opened.clear()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def source_tools(servers: Sequence[MCPServer], port: RunPort) -> list[Tool]:
    """The usable tools of ``servers``, opened through the run (names two servers share are namespaced)."""
    from ._mcp import mcp_tools

    await port.open_servers(servers)
    return await mcp_tools(servers)


async def require_approved(servers: Sequence[MCPServer], sources: ToolSources, *, workflow: str | None = None) -> None:
    """Refuse to start a run whose agents' MCP servers offer tools that wait for a human's approval.

    Agents would otherwise run without those tools and the run "succeed" at something else. Each
    server is opened by ``sources`` (closed with them) and reviewed once per ``sources``; a tool
    never approved, or changed since its approval, stops the run before any model call. A server
    with ``trust_on_first_use`` approves what it has never seen (a changed tool still stops it).
    Tools that can never be used (an invalid schema) are left to the warning `MCPServer.tools` logs.

    Raises:
        ConfigError: one line naming each server, its waiting tools, and the command that approves them.
    """
    from .._errors import ConfigError

    servers = [s for s in servers if id(s) not in sources.approved]
    waiting: list[tuple[MCPServer, list[DisabledTool]]] = []
    await sources.open(servers)
    for server in servers:
        _, disabled = await server.review()
        held = [d for d in disabled if d.status in ("unapproved", "changed")]
        if held:
            waiting.append((server, held))
    if not waiting:
        sources.approved.update(id(s) for s in servers)
        return
    listed = "; ".join(f"{server.name!r} ({_counted(held)})" for server, held in waiting)
    if workflow is not None:
        commands = " && ".join(f"cadenza mcp approve {workflow} {server.name}" for server, _ in waiting)
        how = f"review with: cadenza mcp tools {workflow}; approve with: {commands}"
    else:
        how = "approve with: await server.approve_all() (or cadenza mcp approve WORKFLOW SERVER)"
    trust = ("" if all(d.status == "changed" for _, held in waiting for d in held)
             else " (or set trust_on_first_use: true on a server to approve tools it has never offered before)")
    raise ConfigError(f"MCP tools wait for approval on server{'s' * (len(waiting) > 1)} {listed}; {how}{trust}")


def _counted(held: list[DisabledTool]) -> str:
    parts = []
    for status in ("unapproved", "changed"):
        names = sorted(d.name for d in held if d.status == status)
        if names:
            parts.append(f"{len(names)} {status}: {', '.join(names)}")
    return "; ".join(parts)
