"""A worker process of the process backend: rebuilds agents from their specs and runs steps on them.

Started by `ProcessBackend` as ``python -m cadenza.patterns._worker_process``. Its `WorkerHost` runs the steps;
this module carries the wire over pipes. It exits when its stdin closes (the run's process ended or closed the
pool).

It lives beside the patterns rather than in ``backends/`` because it builds them: the backends stay below the
patterns, which choose a backend, and the process backend starts this module by name without importing it.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from ..backends import _wire
from ..observability._tracing import export_configured, export_to
from ._worker_host import WorkerHost


class _Pipe:
    """The host's way out: JSON lines on this process's private copy of stdout."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer

    def send(self, message: dict[str, Any]) -> None:
        _wire.write(self.writer, message)

    async def drain(self) -> None:
        await self.writer.drain()


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # what tools print goes to stderr, never onto the wire
    reader = asyncio.StreamReader(limit=_wire.LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, stream = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, protocol)
    writer = asyncio.StreamWriter(transport, stream, None, loop)
    host = WorkerHost(_Pipe(writer))
    _wire.write(writer, {"op": "ready", "pid": os.getpid()})
    await writer.drain()
    while (message := await _wire.read(reader)) is not None:
        host.handle(message)
    host.cancel_all()


def main() -> None:
    """Serve steps until stdin closes; export the spans of its agents where its run exports its own."""
    flush = export_to(None) if export_configured() else None
    try:
        asyncio.run(_serve())
    finally:
        if flush is not None:
            flush()


if __name__ == "__main__":
    main()
