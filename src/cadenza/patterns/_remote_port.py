"""The port of a worker in another process than its run: every request crosses to the run and waits for it.

What carries the requests is a `PortChannel`: the pipes of a process backend's worker process
(`_worker_process`), or the bus of a peer group whose member is served by ``cadenza peer serve``
(`_peer_serve`). The run's side answers them with `backends._port_server.PortServer`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from .._errors import ConfigError
from .._port import ApprovalAsk, Claim, Lease, ToolCallRecord, ToolServer
from .._usage import Usage
from .._workspace import Workspace
from .._workspace_entry import WorkspaceEntry
from ..backends import _wire

if TYPE_CHECKING:
    from .._budget import Budget
    from .._events import Progress, Report
    from .._step_context import StepContext

__all__ = ("PortChannel", "RemotePort")


class PortChannel(Protocol):
    """How a worker's requests reach its run: ``ask`` waits for the answer, ``tell`` does not (but keeps its order
    with what is sent after it)."""

    async def ask(self, step: int, method: str, args: Mapping[str, Any]) -> Any: ...

    def tell(self, step: int, method: str, args: Mapping[str, Any]) -> None: ...


class RemotePort:
    """The port of a step running in this process: every request goes to the run's process and waits for it."""

    def __init__(self, channel: PortChannel, step: int, *, workspace: bool, streaming: bool = False) -> None:
        self._channel = channel
        self._step = step
        self._workspace = workspace
        self._streaming = streaming

    @property
    def observed(self) -> bool:
        """Always: a worker in another process reports every call it makes as it ends, so that the run counts what
        it spent even when the worker dies before replying (and the run's sinks see the calls when they listen)."""
        return True

    @property
    def streaming(self) -> bool:
        """Whether the run said, with the step, that a sink reads its progress as it happens."""
        return self._streaming

    def progress(self, event: Progress) -> None:
        """Send the run what the worker is doing as it does it (a piece of its model's answer), without waiting.

        Raises:
            ConfigError: ``event`` is not progress a worker tells.
        """
        self._tell("progress", _wire.PROGRESS, event)

    def report(self, event: Report) -> None:
        """Send the run a worker's report (a model or tool call that ended), without waiting.

        Raises:
            ConfigError: ``event`` is not one a worker reports; the run's own events are the engine's to emit.
        """
        self._tell("report", _wire.REPORTS, event)

    def _tell(self, method: str, known: Mapping[str, type], event: Report | Progress) -> None:
        """Send ``event`` as ``method`` without waiting, if it is one of the ``known`` kinds a worker sends that way."""
        kind = type(event).__name__
        if kind not in known:
            raise ConfigError(f"a worker process sends its run only {', '.join(known)} as {method}, not {kind}")
        self._channel.tell(self._step, method, {"kind": kind, "event": _wire.value_of(event)})

    async def reserve(self, ctx: StepContext, claim: Claim, budget: Budget | None) -> Lease:
        if budget is None and not ctx.budgets:  # no budget covers the call: the run would hold nothing (no trip)
            return Lease()
        held = await self._channel.ask(self._step, "reserve", {
            "claim": _wire.value_of(claim), "budget": _wire.value_of(budget) if budget is not None else None})
        return Lease(held)

    async def settle(self, lease: Lease, usage: Usage | None) -> None:
        if lease.held is None:  # nothing was held
            return
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

    def __init__(self, channel: PortChannel, step: int) -> None:
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
