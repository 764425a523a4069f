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
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from .._errors import ConfigError
from .._messages import Task
from .._port import ApprovalAsk, Claim, Lease, ToolCallRecord, ToolServer
from .._step_context import StepContext
from .._usage import Usage
from .._worker_spec import WorkerSpec
from .._workspace import Workspace
from .._workspace_entry import WorkspaceEntry
from ..backends import _wire
from ..observability._tracing import attach_context, export_configured, export_to
from ..security._identity import WorkerKey
from ._rebuild import build_agent

if TYPE_CHECKING:
    from .._budget import Budget
    from .._events import Report
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

    def answered(self, message: Mapping[str, Any]) -> None:
        found = self.pending.get(int(message["id"]))
        if found is None or found.done():
            return
        if "error" in message:
            found.set_exception(_wire.error_from(message["error"]))
        else:
            found.set_result(message.get("value"))


class RemotePort:
    """The port of a step running in this process: every request goes to the run's process and waits for it."""

    def __init__(self, channel: _Channel, step: int, *, workspace: bool, observed: bool) -> None:
        self._channel = channel
        self._step = step
        self._workspace = workspace
        self._observed = observed

    @property
    def observed(self) -> bool:
        return self._observed

    def report(self, event: Report) -> None:
        """Send the run a worker's report (a model or tool call that ended), without waiting.

        Raises:
            ConfigError: ``event`` is not one a worker reports; the run's own events are the engine's to emit.
        """
        kind = type(event).__name__
        if kind not in _wire.REPORTS:
            raise ConfigError(f"a worker process reports only {', '.join(_wire.REPORTS)} to its run, not {kind}")
        self._channel.tell(self._step, "report", {"kind": kind, "event": _wire.value_of(event)})

    async def reserve(self, ctx: StepContext, claim: Claim, budget: Budget | None) -> Lease:
        held = await self._channel.ask(self._step, "reserve", {
            "claim": _wire.value_of(claim), "budget": _wire.value_of(budget) if budget is not None else None})
        return Lease(held)

    async def settle(self, lease: Lease, usage: Usage | None) -> None:
        await self._channel.ask(self._step, "settle", {
            "lease": lease.held, "usage": _wire.value_of(usage) if usage is not None else None})

    async def record_call(self, ctx: StepContext, call: ToolCallRecord) -> None:
        await self._channel.ask(self._step, "record_call", {"call": _wire.value_of(call)})

    async def approve(self, ctx: StepContext, ask: ApprovalAsk) -> None:
        await self._channel.ask(self._step, "approve", {"ask": _wire.value_of(ask)})

    def workspace(self, ctx: StepContext, writer: str) -> Workspace | None:
        if not self._workspace:
            return None
        return Workspace(_RemoteWorkspace(self._channel, self._step), ctx.run_id, writer=writer)

    async def open_servers(self, servers: Sequence[ToolServer]) -> None:
        names = ", ".join(s.name for s in servers)
        raise ConfigError(f"MCP servers ({names}) are open sessions of the run's process; an agent that uses "
                          "them runs there, not in a worker process")


class _RemoteWorkspace:
    """The workspace calls a `Workspace` makes, answered by the run's process."""

    def __init__(self, channel: _Channel, step: int) -> None:
        self._channel = channel
        self._step = step

    async def workspace_get(self, run_id: str, key: str) -> WorkspaceEntry | None:
        found = await self._channel.ask(self._step, "workspace_get", {"key": key})
        return None if found is None else _wire.value_from(WorkspaceEntry, found)

    async def workspace_items(self, run_id: str) -> list[WorkspaceEntry]:
        found = await self._channel.ask(self._step, "workspace_items", {})
        return [_wire.value_from(WorkspaceEntry, e) for e in found]

    async def workspace_put(self, run_id: str, key: str, value_json: str, *, expected_version: int,
                            writer: str) -> WorkspaceEntry:
        return _wire.value_from(WorkspaceEntry, await self._channel.ask(self._step, "workspace_put", {
            "key": key, "value_json": value_json, "expected_version": expected_version, "writer": writer}))


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
            self.channel.answered(message)
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
