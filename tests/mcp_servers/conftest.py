"""Real MCP servers for the tests: ``mcp-server-time`` (PyPI) and the reference npm server ``server-everything``.

The npm server is installed here with ``npm ci`` from the committed ``package-lock.json``, once per
lock (a stamp in ``node_modules`` records which lock was installed) and under a file lock, since
several test sessions may share the checkout. Without node or npm the tests fail: never skipped.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cadenza.tools._mcp_pins import MCPPins
from processes import stop

HERE = Path(__file__).parent
EVERYTHING = HERE / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
_STAMP = HERE / "node_modules" / ".cadenza-lock-sha256"


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not on PATH: the MCP tests need Node.js 20+ and npm to run server-everything")
    return found


@pytest.fixture(scope="session")
def node() -> str:
    """The node executable."""
    return _tool("node")


@pytest.fixture(scope="session")
def everything(node: str) -> list[str]:
    """The command that runs server-everything over stdio, installed from the lock file if it is not yet."""
    with open(HERE / "package-lock.json", "rb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test session in this checkout may be installing too
        try:
            digest = hashlib.sha256(lock.read()).hexdigest()
            if not (EVERYTHING.is_file() and _STAMP.is_file() and _STAMP.read_text() == digest):
                done = subprocess.run([_tool("npm"), "ci", "--no-audit", "--no-fund", "--prefer-offline"], cwd=HERE,
                                      capture_output=True, text=True, timeout=300, check=False)
                if done.returncode != 0:
                    pytest.fail(f"npm ci in {HERE} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
                _STAMP.write_text(digest)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return [node, str(EVERYTHING), "stdio"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class HttpServer:
    """server-everything in streamable HTTP mode on a free port; ``url`` once it listens."""

    def __init__(self, everything: list[str]) -> None:
        node, script, _ = everything
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self._listening = threading.Event()
        self._log: list[str] = []
        self.process = subprocess.Popen([node, script, "streamableHttp"], env={**os.environ, "PORT": str(self.port)},
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._listening.wait(15):
            self.stop()
            pytest.fail("server-everything (streamableHttp) did not listen:\n" + "".join(self._log))

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:  # drained to the end, so the server never blocks on a full pipe
            self._log.append(line)
            if f"listening on port {self.port}" in line:
                self._listening.set()

    def stop(self) -> None:
        if self.process.returncode is not None:
            return
        stop(self.process, 5)
        self._reader.join()
        assert self.process.stderr is not None
        self.process.stderr.close()


@pytest.fixture(scope="session")
def everything_url(everything: list[str]) -> Iterator[str]:
    """The URL of one server-everything over streamable HTTP, for the whole session."""
    server = HttpServer(everything)
    yield server.url
    server.stop()


@pytest.fixture
def start_http(everything: list[str]) -> Iterator[Callable[[], tuple[str, Callable[[], None]]]]:
    """Start a server-everything over HTTP of the test's own: (url, stop); each is stopped afterwards."""
    started: list[HttpServer] = []

    def start() -> tuple[str, Callable[[], None]]:
        started.append(HttpServer(everything))
        return started[-1].url, started[-1].stop

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def unreachable_url() -> str:
    """An MCP URL on a local port nothing listens on."""
    return f"http://127.0.0.1:{free_port()}/mcp"


@pytest.fixture(scope="session")
def time_command() -> Callable[[str], list[str]]:
    """``mcp-server-time`` over stdio with a local timezone, which it names in its tools' input schemas."""

    def command(timezone: str = "UTC") -> list[str]:
        return [sys.executable, "-m", "mcp_server_time", "--local-timezone", timezone]

    return command


@pytest.fixture
def pins(tmp_path: Path) -> MCPPins:
    """An empty pin file of the test's own."""
    return MCPPins(tmp_path / "mcp-pins.json")
