"""What a started MCP server writes to stderr goes to the log, not the terminal; a server that exits is named.

A server's stderr is its own diagnostics (a banner, warnings, a traceback as it dies): interleaved with the live
display it garbles the screen, and lost it leaves nothing to go on. So it is read from a pipe, a line at a time, by a
thread, and each line is logged under ``cadenza.mcp`` (info: shown with ``--log-level info``, kept in JSON logs). The
last line is kept: when the server exits without being asked to, a warning names it, with its exit code and that
line, and a call that finds it gone says the same.

The MCP SDK does not give out the process it starts, so its exit status comes from the process itself: the command
runs under a small Python launcher (this interpreter, isolated, without site packages: a few milliseconds), which
waits for it and writes its exit status as a last, marked line on the same pipe. A shell would do it in one line, but
a shell writes its own report of a signal ("Terminated") where the server's last words should be.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import TextIO

__all__ = ("ServerStderr", "launch")

logger = logging.getLogger("cadenza.mcp")

_EXIT_MARK = "cadenza-mcp-exit-status:"
"""Starts the line the shell wrapper writes when the server has exited: the mark, then the status."""

_LINE_LIMIT = 500
"""Characters of one stderr line kept in a log record or an error (a server may write a whole JSON blob)."""


_LAUNCHER = f"""
import subprocess, sys
try:
    status = subprocess.call(sys.argv[1:])
except OSError as exc:
    print(f"cannot start {{sys.argv[1]!r}}: {{exc.strerror or exc}}", file=sys.stderr)
    status = 127
print("{_EXIT_MARK}" + str(status), file=sys.stderr, flush=True)
sys.exit(status if status >= 0 else 128 - status)
"""
"""Runs the server (stdin, stdout and stderr its own), then writes its status: negative for a signal's number."""


def launch(command: Sequence[str]) -> tuple[str, list[str]]:
    """The program and arguments that run ``command`` and, once it exits, write its exit status to stderr."""
    return sys.executable, ["-I", "-S", "-c", _LAUNCHER, *command]


class ServerStderr:
    """The pipe one server's stderr is written to, and the thread that logs it: hand ``errlog`` to the SDK, call
    `started` once the process runs (and whatever happened, after), and `closing` before asking it to stop."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.last_line: str | None = None
        """The last line the server wrote to stderr (None: nothing yet)."""
        self.exit_status: int | None = None
        """The server's exit status as the launcher wrote it, negative for a signal (None: running, or it ended
        without the launcher saying how: stopped with it)."""
        self.exited = threading.Event()
        """Set once the server's stderr has closed: it exited (or closed stderr, which servers do not)."""
        self._closing = False
        read, write = os.pipe()
        self.errlog: TextIO = os.fdopen(write, "w")
        """The write end, for the process to inherit as its stderr."""
        self._read = os.fdopen(read, "rb")
        self._thread = threading.Thread(target=self._log_lines, name=f"cadenza-mcp-stderr-{server}", daemon=True)
        self._thread.start()

    def started(self) -> None:
        """The process has its copy of the write end: close ours, so the pipe ends when the process does."""
        if not self.errlog.closed:
            self.errlog.close()

    def closing(self) -> None:
        """The session is being closed on purpose: the server's exit that follows is not news."""
        self._closing = True

    def describe_exit(self) -> str:
        """How the server ended, for a message: its exit status and the last line it wrote."""
        code = self.exit_status
        status = "" if code is None else f" with status {code}" if code >= 0 else f" on signal {_signal_name(-code)}"
        said = f"; its last stderr line: {self.last_line!r}" if self.last_line else "; it wrote nothing to stderr"
        return f"exited{status}{said}"

    def _log_lines(self) -> None:
        with self._read:
            for raw in self._read:
                line = raw.decode(errors="replace").rstrip("\r\n")
                if line.startswith(_EXIT_MARK) and line[len(_EXIT_MARK):].lstrip("-").isdigit():
                    self.exit_status = int(line[len(_EXIT_MARK):])
                    continue
                if not line.strip():
                    continue
                self.last_line = line[:_LINE_LIMIT]
                logger.info("MCP server %r: %s", self.server, self.last_line, extra={"mcp_server": self.server})
        self.exited.set()
        if not self._closing:
            logger.warning("MCP server %r %s", self.server, self.describe_exit(), extra={"mcp_server": self.server})


def _signal_name(number: int) -> str:
    try:
        return f"{signal.Signals(number).name} ({number})"
    except ValueError:
        return str(number)
