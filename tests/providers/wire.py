"""A local HTTP server that provider protocol servers build on: records every request, plays scripted replies.

A protocol server (``anthropic_server``, ``openai_server``) subclasses `WireServer` and says
how to answer a request that has no scripted reply (`default_reply`) and how to check that a
request has the documented shape (`check`). A test scripts what the provider does next with
`WireServer.script`: a JSON reply with any status and headers, a connection dropped before
any reply, or a reply held back for some seconds (to make the client time out).

A request that asks for a stream (``"stream": true``) gets a successful reply as the provider streams
it: server-sent events, each written and flushed on its own in a chunked body. The protocol server says
which events a reply body makes (`WireServer.events`); `Cut` sends only the first few of them and then
drops the connection, as a stream broken on its way does.

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

__all__ = ("Cut", "Drop", "Raw", "Recorded", "Reply", "WireServer")


@dataclass(frozen=True)
class Reply:
    """A JSON reply."""

    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before replying (longer than the client's timeout: a timeout); streamed, before each event."""


@dataclass(frozen=True)
class Drop:
    """Close the connection without replying (a dropped connection)."""


@dataclass(frozen=True)
class Raw:
    """A 200 reply labelled JSON whose body is ``text`` as is (a reply cut off on its way, say)."""

    text: str


@dataclass(frozen=True)
class Cut:
    """A streamed reply whose connection drops after its first ``after`` events."""

    reply: Reply
    after: int


Scripted = Reply | Drop | Raw | Cut


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
        self.abandoned = threading.Event()
        """Set when a client left a stream before its end (it closed the connection: a cancelled call)."""
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

    def events(self, body: Any) -> list[str]:
        """The server-sent events (each ``event:``/``data:`` lines and a blank line) streaming reply ``body``."""
        raise NotImplementedError

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
    return type("Handler", (_Handler,), {"wire": wire})


class _Handler(BaseHTTPRequestHandler):
    wire: WireServer
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
        wire = self.wire
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
        streamed = isinstance(body, dict) and body.get("stream") is True
        if isinstance(reply, Cut) or (streamed and isinstance(reply, Reply) and reply.status == 200):
            self._stream(reply if isinstance(reply, Cut) else Cut(reply, after=-1))
        elif isinstance(reply, Drop):
            self._drop()
        else:
            self._reply(reply)

    def _drop(self) -> None:
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def _reply(self, reply: Reply | Raw) -> None:
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

    def _stream(self, cut: Cut) -> None:
        events = self.wire.events(cut.reply.body)
        try:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            for name, value in cut.reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            for number, event in enumerate(events):
                if number == cut.after:
                    self._drop()
                    return
                time.sleep(cut.reply.delay)
                data = event.encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.wire.abandoned.set()  # the client left mid-stream (cancelled)
