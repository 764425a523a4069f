"""A worker process of the process backend: rebuilds agents from their specs and runs steps on them.

Started by `ProcessBackend` as ``python -m cadenza.patterns._worker_process``. It holds no state of the
run: each step brings its Task, its `StepContext` and (in a run that signs) the worker's own key,
and everything stateful goes back to the run's process through a `RemotePort`. It exits when its
stdin closes (the run's process ended or closed the pool).

It lives beside the patterns rather than in ``backends/`` because it builds them: the backends stay below the
patterns, which choose a backend, and the process backend starts this module by name without importing it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from .._errors import ConfigError
from .._messages import Task
from .._step_context import StepContext
from .._worker_spec import WorkerSpec
from ..backends import _wire
from ..observability._tracing import attach_context, export_configured, export_to
from ..security._identity import WorkerKey
from ._rebuild import build_agent
from ._remote_port import RemotePort

if TYPE_CHECKING:
    from ._agent import Agent

_SPECS: TypeAdapter[WorkerSpec] = TypeAdapter(WorkerSpec)


class _Channel:
    """This process's end of the wire: requests out, answers matched back to whoever asked."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.ids = itertools.count(1)

    async def ask(self, step: int, method: str, args: Mapping[str, Any]) -> Any:
        request = next(self.ids)
        answer = self.pending[request] = asyncio.get_running_loop().create_future()
        _wire.write(self.writer, {"op": "ask", "id": request, "step": step, "method": method, "args": dict(args)})
        try:
            await self.writer.drain()
            return await answer
        finally:
            self.pending.pop(request, None)

    def tell(self, step: int, method: str, args: Mapping[str, Any]) -> None:
        _wire.write(self.writer, {"op": "tell", "step": step, "method": method, "args": dict(args)})


class _Worker:
    """The steps this process runs, and the agents it rebuilt for them (by spec id)."""

    def __init__(self, channel: _Channel) -> None:
        self.channel = channel
        self.agents: dict[str, Agent[Any] | ConfigError] = {}
        """Rebuilt agents by spec id, or why one could not be rebuilt (its steps fail with it)."""
        self.steps: dict[int, asyncio.Task[None]] = {}

    def handle(self, message: Mapping[str, Any]) -> None:
        op = message.get("op")
        if op == "answer":
            _wire.answered(self.channel.pending, message)
        elif op == "spec":
            self.agents[str(message["sid"])] = _built(message["spec"])
        elif op == "step":
            step = int(message["id"])
            self.steps[step] = asyncio.create_task(self.run(step, message))
        elif op == "cancel":
            running = self.steps.get(int(message["id"]))
            if running is not None:
                running.cancel()

    async def run(self, step: int, message: Mapping[str, Any]) -> None:
        try:
            reply = await self._execute(step, message)
        except asyncio.CancelledError:
            return
        except Exception as exc:  # the spec could not be rebuilt, or the runtime broke: the step fails
            reply = {"error": _wire.error_of(exc)}
        finally:
            self.steps.pop(step, None)
        _wire.write(self.channel.writer, {"op": "done", "id": step, **reply})
        await self.channel.writer.drain()

    async def _execute(self, step: int, message: Mapping[str, Any]) -> dict[str, Any]:
        agent = self.agents.get(str(message["sid"])) or ConfigError(f"no agent was sent for spec {message['sid']}")
        if isinstance(agent, ConfigError):
            raise agent
        task = Task.model_validate(message["task"])
        ctx = StepContext.from_json(message["ctx"])
        port = RemotePort(self.channel, step, workspace=bool(message["workspace"]), observed=bool(message["observed"]))
        with attach_context(message.get("trace")):
            result = await agent.execute(task, ctx, port)
        key = message.get("key")
        if key is None:
            return {"result": result.model_dump(mode="json")}
        sealed = WorkerKey.from_json(key).seal(str(message["recipient"]), result)
        return {"envelope": sealed.model_dump(mode="json")}


def _built(spec: Any) -> Agent[Any] | ConfigError:
    try:
        return build_agent(_SPECS.validate_python(spec))
    except ConfigError as exc:
        return exc
    except ValueError as exc:  # pydantic's ValidationError: a spec this version of cadenza does not read
        return ConfigError(f"a worker process cannot read the agent's spec: {exc}")


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # what tools print goes to stderr, never onto the wire
    reader = asyncio.StreamReader(limit=_wire.LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, stream = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, protocol)
    writer = asyncio.StreamWriter(transport, stream, None, loop)
    worker = _Worker(_Channel(writer))
    _wire.write(writer, {"op": "ready", "pid": os.getpid()})
    await writer.drain()
    while (message := await _wire.read(reader)) is not None:
        worker.handle(message)
    for running in list(worker.steps.values()):
        running.cancel()


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
