"""Where a step actually runs: the executor hands each (worker, task) to a backend.

Workers must be runnable from what they are handed alone (the task, a frozen `StepContext` and the
run's port), with no other state of the orchestrator, so that a backend can move them to another
process or machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, TypeGuard, runtime_checkable

if TYPE_CHECKING:
    from .._messages import Result, Task
    from .._port import RunPort
    from .._step_context import StepContext
    from .._worker import Worker
    from ..security._identity import Sealed, WorkerKey
    from ..security._security import TaskOpener
    from ..tools._mcp import MCPServer

__all__ = ("Backend", "Composite", "ServerUser", "is_composite", "servers_of")


class Backend(Protocol):
    """Runs one task on one worker, somewhere: as plain messages, or as signed envelopes in a run that signs."""

    def problems(self, worker: Worker) -> list[str]:
        """What of ``worker`` this backend cannot run, each naming what and whose (empty: it can run all of it).
        A run asks before it starts, so that nothing is refused half way."""
        ...

    async def execute(self, worker: Worker, task: Task, ctx: StepContext, port: RunPort) -> Result:
        """Run ``task`` on ``worker`` and return its Result; cancellation must stop the work."""
        ...

    async def deliver(self, worker: Worker, envelope: Sealed, opener: TaskOpener, key: WorkerKey,
                      ctx: StepContext, port: RunPort) -> Sealed:
        """Carry a sealed Task to ``worker``, open it with ``opener``, run it, and return its Result sealed with
        ``key`` (the worker's own key, and the only one the backend gets); cancellation must stop the work.

        The Task comes as a `LocalEnvelope`: ``envelope.model_dump_json()`` (or ``envelope.envelope()``) makes the
        signed `Envelope` a backend that ships it elsewhere as it is sends. A Result sealed in the run's process is
        returned with ``key.seal_local``, one sealed elsewhere as the `Envelope` that came back."""
        ...


@runtime_checkable
class Composite(Protocol):
    """A worker made of workers (a team, later a peer group): its members' steps run on the backend set here."""

    def use_backend(self, backend: Backend) -> None:
        """Run the steps of this worker's members, and of every composite among them, on ``backend``."""
        ...

    def backend_problems(self) -> list[str]:
        """What of its members the backends they run on cannot run, each naming what and whose."""
        ...


@runtime_checkable
class ServerUser(Protocol):
    """A worker that draws tools from MCP servers, which the run opens before its first step."""

    @property
    def mcp_servers(self) -> tuple[MCPServer, ...]:
        """Each server it (and any member) draws tools from, once."""
        ...


def is_composite(worker: object) -> TypeGuard[Composite]:
    """Whether ``worker`` is a `Composite`, answered once per class: a protocol's isinstance check looks up its
    members every time, which on a team of a thousand agents is a noticeable part of starting a run."""
    cls = type(worker)
    found = _COMPOSITE_CLASSES.get(cls)
    if found is None:
        found = _COMPOSITE_CLASSES[cls] = issubclass(cls, Composite)
    return found


_COMPOSITE_CLASSES: dict[type, bool] = {}


def servers_of(worker: object) -> tuple[MCPServer, ...]:
    """The MCP servers ``worker`` draws tools from (a `ServerUser`); none for any other worker."""
    servers: tuple[MCPServer, ...] | None = getattr(worker, "mcp_servers", None)
    return servers or ()
