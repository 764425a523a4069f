"""Pinning MCP tools to what was approved: first sight, changes that disable, re-approval, the pin file itself."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from cadenza import ConfigError
from cadenza.tools._mcp import MCPServer
from cadenza.tools._mcp_pins import MCPPins

TimeCommand = Callable[[str], list[str]]
CLOCKS = {"get_current_time", "convert_time"}


async def test_first_sight_with_trust_on_first_use_pins_each_tool(time_command: TimeCommand, pins: MCPPins) -> None:
    async with MCPServer("time", command=time_command("UTC"), pins=pins, trust_on_first_use=True) as server:
        tools = {t.name: t for t in await server.tools()}
    assert set(tools) == CLOCKS
    stored = json.loads(pins.path.read_text())["servers"]["time"]
    current = tools["get_current_time"]
    assert stored["get_current_time"]["sha256"] == current.digest == MCPPins.digest_of(
        current.description, current.spec.parameters)
    assert stored["get_current_time"]["description"] == "Get current time in a specific timezone"
    assert stored["get_current_time"]["inputSchema"] == current.spec.parameters  # the approved text, for review
    async with MCPServer("time", command=time_command("UTC"), pins=pins) as again:  # no trust needed any more
        assert {t.name for t in await again.tools()} == CLOCKS
        assert await again.disabled() == []


async def test_without_trust_nothing_is_usable_until_approved(time_command: TimeCommand, pins: MCPPins) -> None:
    async with MCPServer("time", command=time_command("UTC"), pins=pins) as server:
        assert await server.tools() == []
        disabled = await server.disabled()
        assert {(d.name, d.status) for d in disabled} == {(name, "unapproved") for name in CLOCKS}
        assert all("not approved yet" in d.reason for d in disabled)
        approved = await server.approve("get_current_time")
        assert approved.name == "get_current_time"
        assert [t.name for t in await server.tools()] == ["get_current_time"]
        with pytest.raises(ConfigError, match="offers no tool 'get_time'; it offers: get_current_time, convert_time"):
            await server.approve("get_time")
        assert {t.name for t in await server.approve_all()} == CLOCKS
    assert not pins.path.with_suffix(".json.tmp").exists()
    assert [p.name for p in pins.path.parent.iterdir()] == [pins.path.name]  # atomic writes leave no temp files


async def test_a_changed_schema_disables_the_tool_until_it_is_approved_again(
    time_command: TimeCommand, pins: MCPPins
) -> None:
    async with MCPServer("time", command=time_command("UTC"), pins=pins) as server:
        await server.approve_all()
    approved_at = pins.pin("time", "get_current_time")
    assert approved_at is not None
    # The same configured name now runs a server whose schemas differ (they name another local timezone).
    async with MCPServer("time", command=time_command("Europe/Paris"), pins=pins, trust_on_first_use=True) as moved:
        assert await moved.tools() == []  # trust on first use never covers a change
        disabled = {d.name: d for d in await moved.disabled()}
        assert set(disabled) == CLOCKS
        assert disabled["get_current_time"].status == "changed"
        assert disabled["get_current_time"].reason == f"input schema changed since approval on {approved_at.approved_at}"
        assert str(disabled["convert_time"]).startswith("MCP server 'time', tool 'convert_time': input schema changed")
        assert {t.name for t in await moved.approve_all()} == CLOCKS
        tools = {t.name: t for t in await moved.tools()}
    assert "Use 'Europe/Paris' as local timezone" in str(tools["get_current_time"].spec.parameters)


async def test_a_changed_description_is_named_as_the_change(time_command: TimeCommand, pins: MCPPins) -> None:
    async with MCPServer("time", command=time_command("UTC"), pins=pins) as server:
        served = next(d for d in await server.disabled() if d.name == "get_current_time")
        schema = next(t for t in await server.approve_all() if t.name == "get_current_time").spec.parameters
        # What was approved earlier: the same schema under a description the server no longer gives.
        earlier = "Get the current time."
        pins.approve("time", "get_current_time", MCPPins.digest_of(earlier, schema), description=earlier,
                     input_schema=schema)
        assert [t.name for t in await server.tools()] == ["convert_time"]
        (changed,) = await server.disabled()
        assert changed.name == "get_current_time" and changed.digest == served.digest
        assert changed.reason.startswith("description changed since approval on ")


async def test_a_tampered_pin_disables_the_tool(time_command: TimeCommand, pins: MCPPins) -> None:
    async with MCPServer("time", command=time_command("UTC"), pins=pins, trust_on_first_use=True) as server:
        assert {t.name for t in await server.tools()} == CLOCKS
        data = json.loads(pins.path.read_text())
        data["servers"]["time"]["convert_time"]["sha256"] = "0" * 64
        pins.path.write_text(json.dumps(data))
        assert [t.name for t in await server.tools()] == ["get_current_time"]
        (changed,) = await server.disabled()
        assert (changed.name, changed.status) == ("convert_time", "changed")
        assert "description or input schema (its digest) changed since approval on" in changed.reason
        await server.approve("convert_time")
        assert {t.name for t in await server.tools()} == CLOCKS


def test_digests_are_of_canonical_json() -> None:
    one = MCPPins.digest_of("Echo.", {"type": "object", "properties": {"m": {"type": "string"}}})
    same = MCPPins.digest_of("Echo.", {"properties": {"m": {"type": "string"}}, "type": "object"})
    assert one == same and len(one) == 64
    assert MCPPins.digest_of("Echo!", {"type": "object", "properties": {"m": {"type": "string"}}}) != one
    assert MCPPins.digest_of(None, {"type": "object"}) != MCPPins.digest_of("", {"type": "object"})


def test_the_pin_file(tmp_path: Path) -> None:
    pins = MCPPins(tmp_path / "deep" / "pins.json")
    assert pins.status("s", "t", "abc") == "unapproved"
    pins.approve("s", "t", "abc")
    assert pins.status("s", "t", "abc") == "approved"
    assert pins.status("s", "t", "abd") == "changed"
    other = MCPPins(pins.path)  # another process: both approvals survive
    other.approve("s", "u", "def")
    pins.approve("r", "t", "ghi")
    assert {(s, t) for s, tools in json.loads(pins.path.read_text())["servers"].items() for t in tools} == {
        ("s", "t"), ("s", "u"), ("r", "t")}
    with pytest.raises(ConfigError, match="do not hash to digest"):
        pins.approve("s", "t", "abc", description="Echo.", input_schema={"type": "object"})
    pins.path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"pins.json: not JSON .* fix or delete it"):
        pins.status("s", "t", "abc")
    pins.path.write_text(json.dumps({"version": 1, "servers": {"s": {"t": {"sha256": 1}}}}))
    with pytest.raises(ConfigError, match=r"servers\.s\.t: expected an object with 'sha256' and 'approved_at'"):
        pins.pin("s", "t")


def test_the_default_pin_file_is_in_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert MCPPins().path == tmp_path / ".cadenza" / "mcp-pins.json"
    assert MCPServer("time", command=["x"]).pins.path == tmp_path / ".cadenza" / "mcp-pins.json"
