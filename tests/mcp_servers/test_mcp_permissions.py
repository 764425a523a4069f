"""MCP tools under the runtime's permission check: nothing is granted until the workflow grants it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cadenza import Agent, MCPPins, MCPServer, Plan, Supervisor, tool
from mcp_servers.scripted import one_call

TimeCommand = Callable[[str], list[str]]


@tool(scopes={"read"})
def read_notes() -> str:
    """Read the notes."""
    return "notes"


@pytest.mark.parametrize(("scopes", "grant", "allowed"), [
    (None, None, False),  # unconfigured tool, no explicit grant: the agent's Python tools do not grant mcp:time
    (None, {"read"}, False),
    (None, {"mcp:time"}, True),
    ({"*": ["write"]}, None, False),  # its configured scopes are not granted by giving the agent the tool
    ({"*": ["read"]}, None, True),  # but the agent holds read through its own Python tool
    ({"*": ["read"]}, {"read"}, True),
    ({"*": ["read"], "get_current_time": ["network"]}, {"read"}, False),  # a tool's own entry adds to "*"
    ({"*": ["read"], "get_current_time": ["network"]}, {"read", "network"}, True),
], ids=["default", "read-grant", "server-grant", "configured-implicit", "held-otherwise", "configured-granted", "adds-network",
        "adds-network-granted"])
async def test_an_mcp_tool_runs_only_when_granted(time_command: TimeCommand, pins: MCPPins,
                                                  scopes: dict[str, list[str]] | None, grant: set[str] | None,
                                                  allowed: bool) -> None:
    async with MCPServer("time", command=time_command("UTC"), pins=pins, trust_on_first_use=True,
                         scopes=scopes) as server:
        agent = Agent("clock", "Tell the time.", model=one_call("get_current_time", {"timezone": "UTC"}),
                      tools=[read_notes, *await server.tools()], scopes=grant)
        result = await agent.run("What time is it?")

    assert result.status == "success"
    denied = str(result.output).startswith("ERROR: permission denied")
    assert denied is not allowed, result.output


async def test_a_team_ceiling_bounds_mcp_tools_too(time_command: TimeCommand, pins: MCPPins) -> None:
    async with MCPServer("time", command=time_command("UTC"), pins=pins, trust_on_first_use=True,
                         scopes={"*": ["network"]}) as server:
        agent = Agent("clock", "Tell the time.", model=one_call("get_current_time", {"timezone": "UTC"}),
                      tools=await server.tools(), scopes={"network"})
        team = Supervisor("lead", workers=[agent], scopes={"read"},
                          plan=Plan.of({"id": "s1", "agent": "clock", "instruction": "Tell the time"}))
        result = await team.run("go")

    [step] = result.steps
    assert str(step.output).startswith("ERROR: permission denied")
