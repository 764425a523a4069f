"""MCP servers as tool sources, against real servers: calls through an Agent, argument checks, errors, scopes, names."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import mcp
import pytest
from mcp import types as mt

from cadenza import Agent, ConfigError, FunctionModel, ModelRequest, Tool, ToolArgumentsError, ToolError
from cadenza.models.base import ToolCall, ToolResultMessage
from cadenza.tools._mcp import MCPServer, MCPTool, _model_names, mcp_tools
from cadenza.tools._mcp_pins import MCPPins
from mcp_servers.scripted import one_call, results

TimeCommand = Callable[[str], list[str]]
MODEL_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of every tool call that reached the MCP SDK's client (and so the server)."""
    calls: list[str] = []
    original = mcp.Client.call_tool

    async def counting(self: mcp.Client, name: str, *args: Any, **kwargs: Any) -> mt.CallToolResult:
        calls.append(name)
        return await original(self, name, *args, **kwargs)

    monkeypatch.setattr(mcp.Client, "call_tool", counting)
    return calls


async def test_time_tools_are_cadenza_tools_with_the_servers_schema(time_command: TimeCommand, pins: MCPPins) -> None:
    async with MCPServer("time", command=time_command("UTC"), pins=pins, trust_on_first_use=True) as server:
        tools = {t.name: t for t in await server.tools()}
    assert set(tools) == {"get_current_time", "convert_time"}
    current = tools["get_current_time"]
    assert isinstance(current, Tool)
    assert current.description == current.spec.description == "Get current time in a specific timezone"
    assert current.spec.parameters["required"] == ["timezone"]
    assert "Use 'UTC' as local timezone" in current.spec.parameters["properties"]["timezone"]["description"]
    assert current.scopes == {"mcp:time"}  # unconfigured: usable only where a workflow grants mcp:time


async def test_an_agent_calls_the_time_server_and_reads_its_answer(time_command: TimeCommand, pins: MCPPins) -> None:
    async with MCPServer("time", command=time_command("UTC"), pins=pins, trust_on_first_use=True) as server:
        agent = Agent("clock", "Tell the time.", model=one_call("get_current_time", {"timezone": "Asia/Tokyo"}),
                      tools=await server.tools(), scopes={"mcp:time"})
        result = await agent.run("What time is it in Tokyo?")
    assert result.status == "success", result.error
    assert result.output is not None
    answer = json.loads(result.output)  # the server's structured content, rendered for the model
    assert answer["timezone"] == "Asia/Tokyo"
    stamp = datetime.fromisoformat(answer["datetime"])
    assert stamp.utcoffset() == timedelta(hours=9)
    assert abs(stamp - datetime.now(UTC)) < timedelta(minutes=2)


async def test_invalid_arguments_are_refused_before_anything_is_sent(
    time_command: TimeCommand, pins: MCPPins, sent: list[str]
) -> None:
    async with MCPServer("time", command=time_command("UTC"), pins=pins, trust_on_first_use=True) as server:
        tools = await server.tools()
        bad = [ToolCall(id="1", name="get_current_time", arguments={"timezone": 42}),
               ToolCall(id="2", name="convert_time", arguments={"time": "10:00"})]
        seen: list[list[ToolResultMessage]] = []

        def reply(request: ModelRequest) -> str | list[ToolCall]:
            seen.append(results(request))
            return bad if len(seen) == 1 else "gave up"

        result = await Agent("clock", model=FunctionModel(reply), tools=tools, scopes={"mcp:time"}).run("time?")
        assert result.status == "success"
        first, second = seen[1]
        assert first.is_error and second.is_error
        assert "invalid arguments for tool 'get_current_time' of MCP server 'time' (not sent)" in first.content
        assert "timezone: 42 is not of type 'string'" in first.content
        assert "'source_timezone' is a required property" in second.content
        assert "'target_timezone' is a required property" in second.content
        assert sent == []
        with pytest.raises(ToolArgumentsError, match=r"\(arguments\): 'timezone' is a required property"):
            await tools[0].run({})
        assert sent == []
        await tools[0].run({"timezone": "UTC"})  # the counter does see calls that are sent
        assert sent == ["get_current_time"]


async def test_an_error_result_from_the_server_goes_back_to_the_model(time_command: TimeCommand, pins: MCPPins) -> None:
    async with MCPServer("time", command=time_command("UTC"), pins=pins, trust_on_first_use=True) as server:
        model = one_call("get_current_time", {"timezone": "Mars/Olympus_Mons"})
        result = await Agent("clock", model=model, tools=await server.tools(), scopes={"mcp:time"}).run("time?")
    assert result.status == "success" and result.output is not None
    assert result.output.startswith("ERROR: MCP server 'time', tool 'get_current_time': the tool reported an error")
    assert "Invalid timezone" in result.output and "Mars/Olympus_Mons" in result.output


async def test_everything_over_stdio(everything: list[str], pins: MCPPins) -> None:
    async with MCPServer("everything", command=everything, env={"CADENZA_MCP_TEST": "passed"}, pins=pins,
                         trust_on_first_use=True) as server:
        tools = {t.name: t for t in await server.tools()}
        assert {"echo", "get-sum", "get-env", "get-structured-content"} <= set(tools)
        assert await tools["echo"].run({"message": "over stdio"}) == "Echo: over stdio"
        assert await tools["get-sum"].run({"a": 2, "b": 3.5}) == "The sum of 2 and 3.5 is 5.5."
        weather = await tools["get-structured-content"].run({"location": "Chicago"})
        assert set(weather) == {"temperature", "conditions", "humidity"}
        environment = json.loads(await tools["get-env"].run({}))
    assert environment["CADENZA_MCP_TEST"] == "passed"
    assert "VIRTUAL_ENV" not in environment  # the process does not inherit the caller's environment


async def test_everything_over_streamable_http(everything_url: str, pins: MCPPins) -> None:
    async with MCPServer("everything", url=everything_url, pins=pins, trust_on_first_use=True) as server:
        tools = await server.tools()
        agent = Agent("adder", model=one_call("get-sum", {"a": 19, "b": 23}), tools=tools,
                      scopes={"mcp:everything"})
        result = await agent.run("add")
        echo = next(t for t in tools if t.name == "echo")
        assert await echo.run({"message": "over HTTP"}) == "Echo: over HTTP"
    assert result.output == "The sum of 19 and 23 is 42."


async def test_a_slow_call_times_out_and_the_session_goes_on(everything: list[str], pins: MCPPins) -> None:
    async with MCPServer("everything", command=everything, pins=pins, trust_on_first_use=True) as server:
        tools = {t.name: t for t in await server.tools()}
        slow = tools["trigger-long-running-operation"]
        slow.timeout = 0.2
        with pytest.raises(ToolError, match=r"MCP server 'everything', tool 'trigger-long-running-operation': "
                                            r"timed out after 0.2s"):
            await slow.run({"duration": 1, "steps": 1})
        assert await tools["echo"].run({"message": "still here"}) == "Echo: still here"


async def test_a_dead_transport_is_a_tool_error(
    start_http: Callable[[], tuple[str, Callable[[], None]]], pins: MCPPins
) -> None:
    url, stop = start_http()
    async with MCPServer("flaky", url=url, pins=pins, trust_on_first_use=True, timeout=5) as server:
        echo = next(t for t in await server.tools() if t.name == "echo")
        stop()
        with pytest.raises(ToolError, match=r"^MCP server 'flaky', tool 'echo': "):
            await echo.run({"message": "anyone?"})


async def test_servers_that_cannot_start_say_so(time_command: TimeCommand, unreachable_url: str,
                                                pins: MCPPins) -> None:
    broken = [
        MCPServer("missing", command=["/nonexistent/mcp-server"], pins=pins),
        MCPServer("refused", url=unreachable_url, pins=pins),
        MCPServer("exits", command=time_command("Not/A_Zone"), pins=pins),
    ]
    for server in broken:
        with pytest.raises(ToolError, match=rf"^MCP server {server.name!r} \(.*\) could not start: "):
            async with server:
                pass
    with pytest.raises(ToolError, match="is not open"):
        await broken[0].tools()


def test_a_server_is_described_once_and_plainly() -> None:
    described: list[tuple[dict[str, Any], str]] = [
        ({}, "exactly one of command"),
        ({"command": ["x"], "url": "http://h/mcp"}, "exactly one of command"),
        ({"command": "node server.js"}, "non-empty list of strings"),
        ({"command": []}, "non-empty list of strings"),
        ({"url": "localhost:3001"}, "must start with http"),
        ({"url": "http://h/mcp", "env": {"A": "b"}}, "env applies to a started process"),
        ({"command": ["x"], "timeout": 0}, "timeout must be positive"),
        ({"command": ["x"], "scopes": {"echo": "read"}}, "must be a list of scope names"),
    ]
    for kwargs, problem in described:
        with pytest.raises(ConfigError, match=problem):
            MCPServer("s", **kwargs)
    for name in ("", "a__b", "has space", "x" * 33):
        with pytest.raises(ConfigError, match="MCP server name"):
            MCPServer(name, command=["x"])


async def test_scopes_are_configured_per_tool_or_for_all(time_command: TimeCommand, pins: MCPPins) -> None:
    async with MCPServer("time", command=time_command("UTC"), pins=pins, trust_on_first_use=True,
                         scopes={"convert_time": ["time:convert"], "not_a_tool": ["ignored"]}) as server:
        only_one = {t.name: t.scopes for t in await server.tools()}
        server.scopes = {"*": frozenset({"network"}), "convert_time": frozenset({"time:convert"})}
        with_all = {t.name: t.scopes for t in await server.tools()}
    assert only_one == {"get_current_time": {"mcp:time"}, "convert_time": {"time:convert"}}
    assert with_all == {"get_current_time": {"network"}, "convert_time": {"network", "time:convert"}}


async def test_a_name_two_servers_share_is_namespaced_for_both(
    everything: list[str], time_command: TimeCommand, pins: MCPPins, sent: list[str]
) -> None:
    async with (
        MCPServer("time", command=time_command("UTC"), pins=pins, trust_on_first_use=True) as clock,
        MCPServer("left", command=everything, pins=pins, trust_on_first_use=True) as left,
        MCPServer("right", command=everything, pins=pins, trust_on_first_use=True) as right,
    ):
        offered = {t.name for t in await left.tools()}
        apart = [t.name for t in await mcp_tools([clock, left])]
        together = {t.name: t for t in await mcp_tools([clock, left, right])}
        assert await together["right__echo"].run({"message": "namespaced"}) == "Echo: namespaced"
        with pytest.raises(ConfigError, match="two MCP servers are named 'left'"):
            await mcp_tools([left, left])
    clocks = {"get_current_time", "convert_time"}
    assert set(apart) == clocks | offered  # no collision: names unchanged
    assert set(together) == clocks | {f"{side}__{name}" for side in ("left", "right") for name in offered}
    assert all(MODEL_TOOL_NAME.match(name) for name in together)
    renamed = together["right__echo"]
    assert isinstance(renamed, MCPTool) and renamed.spec.name == "right__echo" and renamed.remote_name == "echo"
    assert renamed.scopes == {"mcp:right"}
    assert sent == ["echo"]  # called under the server's own name


def test_names_models_cannot_take_are_made_fit_or_disabled() -> None:
    listed = [mt.Tool(name=name, input_schema={"type": "object"}) for name in
              ("plain", "files.read", "files_read", "a/b", "a.b", "x" * 80)]
    names = _model_names(listed)
    assert names["plain"] == "plain"
    assert names["files_read"] == "files_read"
    assert names["files.read"] is None  # would take another tool's name
    assert names["a/b"] is None and names["a.b"] is None  # would take each other's
    long = names["x" * 80]
    assert long is not None and len(long) == 64 and MODEL_TOOL_NAME.match(long)


def test_schemas_are_checked_once_and_never_fetched(pins: MCPPins) -> None:
    server = MCPServer("s", command=["unused"], pins=pins)
    built = server._build(mt.Tool(name="broken", input_schema={"type": "object", "properties": {"a": {"type": 3}}}),
                          "broken")
    assert not isinstance(built, MCPTool)
    assert (built.status, built.name) == ("invalid", "broken")
    assert built.reason.startswith("its input schema is not a valid JSON schema: 3 is not valid")
    odd = server._build(mt.Tool(name="odd", input_schema={"$schema": "https://example.com/unknown", "type": "object",
                                                          "properties": {"a": {"$ref": "https://example.com/a"}}}),
                        "odd")
    assert isinstance(odd, MCPTool)  # an unknown $schema means the latest draft, without a warning
    with pytest.raises(ToolError, match="tool 'odd' of MCP server 's': its input schema cannot be checked"):
        odd.validate_arguments({"a": 1})  # a remote $ref is not fetched
