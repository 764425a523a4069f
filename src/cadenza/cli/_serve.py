"""``cadenza peer serve``: members of a workflow's peer group as a long-lived worker of their own.

The worker enrols on the bus for the members it serves; every conversation of that group that a
``cadenza run ... --bus`` (or ``resume``) starts on the same bus from then on sends it those members'
turns, while the run's process keeps the conversation: its record, its limits, its answer. It prints a
line as each turn starts and ends, and stops on Ctrl-C or SIGTERM (a turn in flight is given up; its
message is delivered again to whoever serves the member next).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from .._errors import ConfigError
from ._notices import notice

if TYPE_CHECKING:
    from ..patterns._peers import PeerGroup
    from ..patterns._workflow import Workflow

__all__ = ("serve_command",)


def serve_command(workflow: Workflow, agents: Sequence[str], group_name: str | None) -> None:
    """Serve ``agents`` of the workflow's peer group ``group_name`` (or the one group that has them all) on the
    workflow's bus until stopped.

    Raises:
        ConfigError: no bus other processes share, no such group or member, or a member that uses MCP servers.
        BusError: the bus cannot be reached, or failed while serving.
    """
    from urllib.parse import urlsplit

    if workflow.bus is None or urlsplit(workflow.bus).scheme == "memory":
        raise ConfigError(f"{workflow.source}: peer serve needs a bus the run's process shares: --bus redis://host:port/db "
                          "(or bus: in the file, or CADENZA_BUS)")
    group = _group_of(workflow, agents, group_name)
    with_servers = [a for a in agents if group.members[a].mcp_servers]
    if with_servers:
        raise ConfigError(f"{workflow.source}: {', '.join(with_servers)} of peer group {group.name!r} use MCP servers, "
                          "whose sessions belong to the run's process: serve them there (leave them out of --agent)")
    asyncio.run(_serve(workflow.bus, group, agents))


def _group_of(workflow: Workflow, agents: Sequence[str], name: str | None) -> PeerGroup:
    groups = workflow.peers
    if not groups:
        raise ConfigError(f"{workflow.source}: the workflow has no peer groups (peers:) to serve")
    if name is not None:
        if name not in groups:
            raise ConfigError(f"{workflow.source}: no peer group named {name!r} (peer groups: {', '.join(groups)})")
        found = [groups[name]]
    else:
        found = [g for g in groups.values() if all(a in g.members for a in agents)]
    if len(found) > 1:
        raise ConfigError(f"{workflow.source}: {', '.join(agents)} belong to several peer groups "
                          f"({', '.join(g.name for g in found)}): say which with --group")
    missing = [a for a in agents if not found or a not in found[0].members]
    if missing:
        where = f"peer group {found[0].name!r}" if found else "any one peer group of the workflow"
        members = f" (members: {', '.join(found[0].members)})" if found else ""
        raise ConfigError(f"{workflow.source}: {', '.join(map(repr, missing))} is not a member of {where}{members}")
    return found[0]


async def _serve(url: str, group: PeerGroup, agents: Sequence[str]) -> None:
    from ..buses import open_bus
    from ..patterns._peer_serve import PeerServer

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    log = logging.getLogger("cadenza.peers")
    if not log.isEnabledFor(logging.INFO):  # each turn's line, in the format --log-format asked for
        log.setLevel(logging.INFO)
    try:
        async with open_bus(url) as bus:
            server = PeerServer(group, agents, bus)
            serving = asyncio.create_task(server.serve(stop))
            ready = asyncio.ensure_future(server.ready.wait())
            await asyncio.wait([serving, ready], return_when=asyncio.FIRST_COMPLETED)
            if server.ready.is_set():
                click.echo(f"serving {', '.join(agents)} of peer group {group.name!r} on {bus.url} as {server.worker} "
                           "(Ctrl-C to stop)", err=True)
            ready.cancel()
            await serving
            notice(f"stopped after {server.turns_taken} turns")
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
