"""The run's side of a remote worker's port: each request it sends is answered by the run's own port.

A worker in another process (a process backend's worker process, a peer group member served by
``cadenza peer serve``) reaches its run through a `RemotePort`, whose requests arrive here as a method name
and JSON arguments. The reservations it holds are kept here by number, so that a worker that vanishes
mid-step has them released (`abandon`).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._budget import Budget
from .._errors import ConfigError, WorkerLost
from .._events import ModelCalled
from .._port import ApprovalAsk, Claim, ToolCallRecord
from .._usage import Usage
from . import _wire

if TYPE_CHECKING:
    from .._port import Lease, RunPort
    from .._step_context import StepContext

__all__ = ("PortServer",)

_log = logging.getLogger("cadenza.backends")


class PortServer:
    """Answers the port requests of one step (or one peer group turn) running in another process, with the run's own
    port: the run's side of `patterns._remote_port.RemotePort`."""

    def __init__(self, port: RunPort, ctx: StepContext) -> None:
        self.port = port
        self.ctx = ctx
        self.leases: dict[int, Lease] = {}
        self.lease_ids = itertools.count(1)
        self.spent: list[Usage] = []
        """The usage of each model call the worker reported (what it has spent so far)."""

    async def abandon(self) -> None:
        """The step ended (cancelled, or its process died) with calls in flight: release their reservations as a
        cancelled call's are (a durable one stays open, counted at its worst case: the call may have been billed)."""
        leases, self.leases = self.leases, {}
        for lease in leases.values():
            await self.port.settle(lease, None)

    async def reply(self, method: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """The answer to one request, as the wire carries it: ``{"value": ...}``, or ``{"error": ...}`` for a request
        the port refused (the worker raises it again)."""
        try:
            return {"value": await self.ask(method, args)}
        except Exception as exc:
            return {"error": _wire.error_of(exc)}

    async def ask(self, method: str, args: Mapping[str, Any]) -> Any:
        port, ctx = self.port, self.ctx
        if method == "reserve":
            budget = args["budget"]
            lease = await port.reserve(ctx, _wire.value_from(Claim, args["claim"]),
                                       _wire.value_from(Budget, budget) if budget is not None else None)
            number = next(self.lease_ids)
            self.leases[number] = lease
            return number
        if method == "settle":
            lease = self.leases.pop(int(args["lease"]))
            usage = args["usage"]
            await port.settle(lease, _wire.value_from(Usage, usage) if usage is not None else None)
            return None
        if method == "record_call":
            await port.record_call(ctx, _wire.value_from(ToolCallRecord, args["call"]))
            return None
        if method == "approve":
            await port.approve(ctx, _wire.value_from(ApprovalAsk, args["ask"]))
            return None
        if method.startswith("workspace_"):
            return await self._workspace(method, args)
        raise ConfigError(f"a worker asked its run for {method!r}, which a port does not offer")

    async def _workspace(self, method: str, args: Mapping[str, Any]) -> Any:
        writer = str(args.get("writer") or self.ctx.agent)
        workspace = self.port.workspace(self.ctx, writer)
        if workspace is None:
            raise ConfigError("this run keeps no workspace")
        store = workspace.store
        if method == "workspace_get":
            entry = await store.workspace_get(self.ctx.run_id, str(args["key"]))
            return None if entry is None else _wire.value_of(entry)
        if method == "workspace_items":
            return [_wire.value_of(e) for e in await store.workspace_items(self.ctx.run_id)]
        entry = await store.workspace_put(self.ctx.run_id, str(args["key"]), str(args["value_json"]),
                                          expected_version=int(args["expected_version"]), writer=writer)
        return _wire.value_of(entry)

    def tell(self, method: str, args: Mapping[str, Any]) -> None:
        """A call without answer, taken in the order it came (a report of a model or tool call that ended).

        Never raises: it is taken where the wire is read, which must go on. A report the run cannot read or take is
        logged and dropped; the step goes on."""
        if method == "progress":
            self._progress(args)
            return
        if method != "report":
            return
        try:
            event = _wire.value_from(_wire.REPORTS[str(args["kind"])], args["event"])
            if isinstance(event, ModelCalled) and event.usage is not None:
                self.spent.append(event.usage)
            self.port.report(event)
        except Exception as exc:
            _log.warning("a report from step %s of run %s was dropped: %s: %s", self.ctx.step_id, self.ctx.run_id,
                         type(exc).__name__, exc)

    def _progress(self, args: Mapping[str, Any]) -> None:
        """Pass on what a worker is doing as it does it; progress the run cannot read is dropped quietly (debug)."""
        try:
            self.port.progress(_wire.value_from(_wire.PROGRESS[str(args["kind"])], args["event"]))
        except Exception as exc:
            _log.debug("progress from step %s of run %s was dropped: %s: %s", self.ctx.step_id, self.ctx.run_id,
                       type(exc).__name__, exc)

    def lost(self, why: str) -> WorkerLost:
        """The error of a step whose worker died: it carries what the worker's finished model calls used, as they
        were reported, so that the run's totals count them (a call in flight at the death is not known)."""
        lost = WorkerLost(why)
        lost.spent = Usage.sum(self.spent) if self.spent else None
        return lost
