"""What every backend that runs agent steps outside the run's process shares: what it ships, and the step message.

The process backend and the Ray backend differ only in how a step message reaches a worker and how its
requests and reply come back (`RemoteBackend._carry`). What is sent is the same: the agent's spec (once per
worker), and for each attempt its Task, its `StepContext`, the worker's own key in a run that signs, and the
trace context; what comes back is the Result (sealed with that key) and the port requests made on the way.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import weakref
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError
from .._messages import Result
from .._worker_spec import AgentSpec, PeersSpec, TeamSpec, rebuild_problems
from ..security._identity import Envelope, Sealed
from ._port_server import PortServer

if TYPE_CHECKING:
    from types import TracebackType

    from .._messages import Task
    from .._port import RunPort
    from .._step_context import StepContext
    from .._worker import Worker
    from .._worker_spec import WorkerSpec
    from ..security._identity import WorkerKey
    from ..security._security import TaskOpener

__all__ = ("RemoteBackend", "RemoteWorker", "Shipment")


class RemoteBackend:
    """A backend whose agent steps run in other processes; teams and peer groups run here (their own backend runs
    their workers, a group's members take their turns with the run's keyring and bus)."""

    where = "a worker process"
    """Where an agent step runs, as problems name it."""

    def __init__(self) -> None:
        self._shipped: weakref.WeakKeyDictionary[Any, Shipment] = weakref.WeakKeyDictionary()
        self._ids = itertools.count(1)
        self._starting: asyncio.Lock | None = None
        """Held while a worker starts (made on first use, on the event loop of the steps; dropped by `aclose`)."""

    async def aclose(self) -> None:
        """Stop every worker (their running steps are lost)."""
        raise NotImplementedError

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    def problems(self, worker: Worker) -> list[str]:
        """What of ``worker`` this backend cannot run: a team or a peer group runs here; any other worker must be an
        agent that another process can rebuild from its spec."""
        return list(self._shipment(worker).problems)

    async def execute(self, worker: Worker, task: Task, ctx: StepContext, port: RunPort) -> Result:
        """Run ``task`` on ``worker``: an agent elsewhere, a team or a peer group here."""
        shipment = self._shipment(worker)
        if shipment.stays:
            return await worker.execute(task, ctx, port)
        return Result.model_validate(await self._run(shipment, task, ctx, port, None, None))

    async def deliver(self, worker: Worker, envelope: Sealed, opener: TaskOpener, key: WorkerKey,
                      ctx: StepContext, port: RunPort) -> Sealed:
        """Open the task here, run it elsewhere with only ``key``, return its sealed Result."""
        task = opener.open(envelope)
        shipment = self._shipment(worker)
        if shipment.stays:
            return key.seal_local(envelope.sender, await worker.execute(task, ctx, port))
        return Envelope.model_validate(await self._run(shipment, task, ctx, port, key, envelope))

    async def _carry(self, shipment: Shipment, step: int, message: dict[str, Any], serving: PortServer) -> Any:
        """Send one step message to a worker, answer its port requests with ``serving``, and return its reply (a
        Result's or an Envelope's JSON).

        Raises:
            WorkerLost: the worker died before the step finished (a retryable failure).
        """
        raise NotImplementedError

    async def _run(self, shipment: Shipment, task: Task, ctx: StepContext, port: RunPort, key: WorkerKey | None,
                   envelope: Sealed | None) -> Any:
        if shipment.problems:
            raise ConfigError("; ".join(shipment.problems))
        step = next(self._ids)
        message = {"op": "step", "id": step, "sid": shipment.sid, "task": task.model_dump(mode="json"),
                   "ctx": ctx.to_json().decode(), "key": key.to_json() if key is not None else None,
                   "recipient": envelope.sender if envelope is not None else None,
                   "trace": envelope.trace if envelope is not None else dict(ctx.trace) or None,
                   "workspace": port.workspace(ctx, ctx.agent) is not None, "streaming": port.streaming}
        return await self._carry(shipment, step, message, PortServer(port, ctx))

    def _lock(self) -> asyncio.Lock:
        """The lock that starts one worker at a time: parallel steps do not each start one."""
        if self._starting is None:
            self._starting = asyncio.Lock()
        return self._starting

    def _shipment(self, worker: Worker) -> Shipment:
        """What ``worker`` is, as this backend ships it: described once per worker, not once per step."""
        found = self._shipped.get(worker)
        if found is None:
            found = self._shipped[worker] = Shipment.of(worker.describe(), self.where)
        return found


@dataclass(frozen=True, slots=True)
class Shipment:
    """A worker as a remote backend sends it: its spec and the spec's id, or why it cannot go; a team or a peer
    group stays."""

    stays: bool
    """It runs in this process: a team (its own backend runs its workers) or a peer group (its members' turns use
    the run's keyring and bus)."""
    sid: str
    """Names the spec a worker rebuilds the agent from."""
    spec: dict[str, Any] | None
    problems: tuple[str, ...]

    @classmethod
    def of(cls, spec: WorkerSpec, where: str) -> Shipment:
        if isinstance(spec, (TeamSpec, PeersSpec)):
            return cls(True, "", None, ())
        if not isinstance(spec, AgentSpec):
            return cls(False, "", None, (f"worker {spec.name!r} (a {spec.type.rpartition(':')[2]}) cannot run in "
                                         f"{where}: only agents, teams and peer groups can",))
        sid = hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:16]
        return cls(False, sid, spec.model_dump(mode="json"), tuple(rebuild_problems(spec)))


class RemoteWorker:
    """One worker a remote backend runs steps on (a worker process, a Ray actor): what each keeps of it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.sent: set[str] = set()
        """The ids of the specs it holds (it rebuilt their agents): a step message no longer needs to carry them."""
        self.serving: set[asyncio.Task[None]] = set()
        """Port requests being answered (kept, so none is collected while it runs)."""
        self.lost: str | None = None
        """Why the worker is gone, once it is."""

    @property
    def alive(self) -> bool:
        return self.lost is None

    def unsent(self, shipment: Shipment) -> dict[str, Any] | None:
        """The message that gives this worker the spec of ``shipment``, until it `holds` it; None after.

        Steps sent before the worker is known to hold it all carry it (the worker rebuilds the agent once): a
        worker may start steps in another order than they were sent (a Ray actor running many at once does), and
        a step must never start before its agent's spec."""
        if shipment.sid in self.sent:
            return None
        return {"op": "spec", "sid": shipment.sid, "spec": shipment.spec}

    def holds(self, shipment: Shipment) -> None:
        """The worker has the spec of ``shipment``: it started a step that carried it, or reads in order."""
        self.sent.add(shipment.sid)

    def serve(self, work: Coroutine[Any, Any, None]) -> None:
        """Answer a request in the background, keeping the task until it ends."""
        task = asyncio.create_task(work)
        self.serving.add(task)
        task.add_done_callback(self.serving.discard)
