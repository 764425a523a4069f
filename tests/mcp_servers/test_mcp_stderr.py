"""A started MCP server's stderr goes to the log under ``cadenza.mcp``, never to the terminal; a server that exits is
named with its exit status and the last line it wrote (real servers: ``server-everything``, ``mcp-server-time``)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from cadenza import ToolError
from cadenza.tools._mcp import MCPServer
from cadenza.tools._mcp_pins import MCPPins

BANNER = "Starting default (STDIO) server..."
"""What server-everything writes to stderr as it starts over stdio."""


def children(pid: int, running: str = "") -> list[int]:
    """The processes whose parent is ``pid`` and whose command line holds ``running`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                command = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue  # it ended meanwhile
            if int(stat.rpartition(")")[2].split()[1]) == pid and running in command:
                found.append(int(entry.name))
    return found


def logged(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "cadenza.mcp" and r.levelno == level]


async def until(condition: Callable[[], bool]) -> None:
    """Wait (at most 10 s) until ``condition()`` holds: what it waits for happens in a thread or another process."""
    async with asyncio.timeout(10):
        for _ in iter(condition, True):
            await asyncio.sleep(0.02)


async def test_what_a_server_writes_to_stderr_is_logged_and_never_reaches_the_terminal(
        everything: list[str], pins: MCPPins, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO, logger="cadenza.mcp")
    async with MCPServer("everything", command=everything, pins=pins, trust_on_first_use=True) as server:
        assert await server.tools()
        await until(lambda: bool(logged(caplog, logging.INFO)))
    assert logged(caplog, logging.INFO) == [f"MCP server 'everything': {BANNER}"]
    assert [getattr(r, "mcp_server", None) for r in caplog.records if r.name == "cadenza.mcp"] == ["everything"]
    assert BANNER not in capfd.readouterr().err.splitlines()  # on fd 2 at most as a log record, never by itself
    assert logged(caplog, logging.WARNING) == []  # closed on purpose: its exit is not news


async def test_a_server_that_exits_at_start_is_named_with_its_status_and_last_stderr_line(
        time_command: Callable[[str], list[str]], pins: MCPPins, caplog: pytest.LogCaptureFixture) -> None:
    server = MCPServer("clock", command=time_command("Not/A_Zone"), pins=pins)
    with pytest.raises(ToolError) as caught:
        async with server:
            pass
    assert str(caught.value).startswith("MCP server 'clock' (command ")
    assert str(caught.value).endswith("it exited with status 1; its last stderr line: \"Error: invalid "
                                      "--local-timezone 'Not/A_Zone': not a known IANA timezone name\"")
    assert logged(caplog, logging.WARNING) == []  # the error says it: no warning besides


async def test_a_server_that_dies_mid_session_is_named_in_a_warning_and_in_the_error_of_the_next_call(
        everything: list[str], pins: MCPPins, caplog: pytest.LogCaptureFixture) -> None:
    async with MCPServer("everything", command=everything, pins=pins, trust_on_first_use=True) as server:
        echo = next(t for t in await server.tools() if t.name == "echo")
        (launcher,) = children(os.getpid(), "cadenza-mcp-exit-status")  # it reports the server's exit
        (node,) = children(launcher)
        os.kill(node, signal.SIGTERM)
        await until(lambda: bool(logged(caplog, logging.WARNING)))
        with pytest.raises(ToolError) as caught:
            await echo.run({"message": "anyone?"})

    said = f"exited on signal SIGTERM (15); its last stderr line: {BANNER!r}"
    assert logged(caplog, logging.WARNING) == [f"MCP server 'everything' {said}"]
    assert str(caught.value) == f"MCP server 'everything', tool 'echo': the connection to the server is closed; it {said}"
