"""A local HTTP server that provider protocol servers build on: records every request, plays scripted replies.

A protocol server (``anthropic_server``, ``openai_server``) subclasses `WireServer` and says
how to answer a request that has no scripted reply (`default_reply`) and how to check that a
request has the documented shape (`check`). A test scripts what the provider does next with
`WireServer.script`: a JSON reply with any status and headers, a connection dropped before
any reply, or a reply held back for some seconds (to make the client time out).

The server is the standard library's threading HTTP server, run in a background thread, so
the real SDK clients talk to it over a real socket exactly as they talk to the provider.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ("Drop", "Raw", "Recorded", "Reply", "WireServer")


@dataclass(frozen=True)
class Reply:
    """A JSON reply."""

    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before replying (longer than the client's timeout: a timeout)."""


@dataclass(frozen=True)
class Drop:
    """Close the connection without replying (a dropped connection)."""


@dataclass(frozen=True)
class Raw:
    """A 200 reply labelled JSON whose body is ``text`` as is (a reply cut off on its way, say)."""

    text: str


Scripted = Reply | Drop | Raw


@dataclass(frozen=True)
class Recorded:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    """Lower-cased names."""
    body: Any
    problems: list[str]
    """Where the request departs from the documented shape (`WireServer.check`); empty when it fits."""


class WireServer:
    """Base of the protocol servers; use as a context manager (`serve`) or `start` / `stop`."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._script: deque[Scripted] = deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ for subclasses

    def default_reply(self, path: str, body: Any, headers: dict[str, str]) -> Reply:
        """The reply to a request with nothing scripted."""
        raise NotImplementedError

    def check(self, method: str, path: str, headers: dict[str, str], body: Any) -> list[str]:
        """Where the request departs from the provider's documented shape; empty when it fits."""
        return []

    # ------------------------------------------------------------ for tests

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        assert self._server is not None, "the server is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def script(self, *replies: Scripted) -> None:
        """What the next requests get, in order; once used up, `default_reply` answers."""
        with self._lock:
            self._script.extend(replies)

    @property
    def problems(self) -> list[str]:
        """Every problem `check` found, prefixed with the request's number."""
        return [f"request {n}: {p}" for n, r in enumerate(self.requests) for p in r.problems]

    def start(self) -> None:
        server = _Server(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @contextmanager
    def serve(self) -> Iterator[WireServer]:
        self.start()
        try:
            yield self
        finally:
            self.stop()

    # ------------------------------------------------------------ plumbing

    def _next(self, path: str, body: Any, headers: dict[str, str]) -> Scripted:
        with self._lock:
            if self._script:
                return self._script.popleft()
        return self.default_reply(path, body, headers)


class _Server(ThreadingHTTPServer):
    request_queue_size = 256
    """A hundred clients connecting at once must queue, not be refused (the default backlog is 5)."""


def _handler(wire: WireServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        """Headers and body go out as two writes; with Nagle's algorithm the second waits for the client's
        delayed ACK, 40 ms a reply."""

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def do_POST(self) -> None:
            self._serve("POST")

        def do_GET(self) -> None:
            self._serve("GET")

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            headers = {k.lower(): v for k, v in self.headers.items()}
            problems = wire.check(method, self.path, headers, body)
            with wire._lock:
                wire.requests.append(Recorded(method, self.path, headers, body, problems))
            reply = wire._next(self.path, body, headers)
            if isinstance(reply, Drop):
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if isinstance(reply, Raw):
                status, data, extra = 200, reply.text.encode(), {}
            else:
                if reply.delay:
                    time.sleep(reply.delay)
                status, data, extra = reply.status, json.dumps(reply.body).encode(), reply.headers
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout): nothing to do

    return Handler
