"""``cadenza mcp tools`` and ``cadenza mcp approve``: review and pin the tools of a workflow's MCP servers.

A server's tool is usable only once approved: its description and schema are pinned by hash in
the pin file, and a server that later changes them has that tool disabled until it is approved
again. These commands start each server, list what it offers now against the pins, and pin.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from .._errors import ConfigError

if TYPE_CHECKING:
    from ..patterns._workflow import Workflow

__all__ = ("approve_command", "tools_command")


def _servers(workflow: Workflow, names: Sequence[str]) -> list[Any]:
    known = workflow.mcp_servers
    if not known:
        raise ConfigError(f"{workflow.source}: the workflow has no mcp_servers")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"{workflow.source}: no MCP server named {unknown[0]!r} (known: {', '.join(known)})")
    return [known[n] for n in (names or list(known))]


def tools_command(workflow: Workflow, names: Sequence[str]) -> None:
    """Print each tool of each server once, with its state (approved, unapproved, changed, invalid) and what it does;
    then the command that approves what waits."""
    async def review() -> list[tuple[Any, list[Any], list[Any]]]:
        found = []
        for server in _servers(workflow, names):
            async with server:
                usable, disabled = await server.review()
                found.append((server, usable, disabled))
        return found

    waiting: list[str] = []
    for server, usable, disabled in asyncio.run(review()):
        click.echo(f"{server.name}:")
        for tool in usable:
            click.echo(f"  ✓ {tool.remote_name:<28} approved   needs {', '.join(sorted(tool.scopes)) or 'no scope'}")
            _describe(tool.description)
        for off in disabled:
            click.echo(f"  ✗ {off.name:<28} {off.status:<10} {off.reason}")
            _describe(off.description)
        if not usable and not disabled:
            click.echo("  (no tools)")
        if any(off.status in ("unapproved", "changed") for off in disabled):
            waiting.append(server.name)
    for name in waiting:
        click.echo(f"approve with: cadenza mcp approve {workflow.source} {name}  "
                   f"(or set trust_on_first_use: true under mcp_servers.{name} for tools never seen before)")


def _describe(description: str) -> None:
    """The tool's own description, on its first line, indented under the tool."""
    first = description.strip().splitlines()[0] if description.strip() else ""
    if first:
        click.echo(f"      {first[:110]}{'…' if len(first) > 110 else ''}")


def approve_command(workflow: Workflow, server_name: str, tools: Sequence[str]) -> None:
    """Pin ``tools`` of one server (every tool it offers when none is named) as the server offers them now."""
    async def approve() -> list[str]:
        [server] = _servers(workflow, [server_name])
        async with server:
            if tools:
                return [(await server.approve(tool)).remote_name for tool in tools]
            return [tool.remote_name for tool in await server.approve_all()]

    approved = asyncio.run(approve())
    click.echo(f"approved {len(approved)} tool{'s' * (len(approved) != 1)} of {server_name}: {', '.join(approved)}")
