"""The steps a remote worker runs: agents rebuilt from their specs, each step's requests to its run, and its reply.

Shared by the process backend's worker process (`_worker_process`, over pipes) and the Ray backend's actor
(`_ray_worker`, over Ray calls): both receive the messages of `backends._wire` (``spec``, ``step``, ``answer``,
``cancel``) and send ``ask``, ``tell`` and ``done`` through an `Outbox`. A host holds no state of the run: each
step brings its Task, its `StepContext` and (in a run that signs) the worker's own key, and everything stateful
goes back to the run through a `RemotePort`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import TypeAdapter

from .._errors import ConfigError
from .._messages import Task
from .._step_context import StepContext
from .._worker_spec import WorkerSpec
from ..backends import _wire
from ..observability._tracing import attach_context
from ..security._identity import WorkerKey
from ._rebuild import build_agent
from ._remote_port import RemotePort

if TYPE_CHECKING:
    from ._agent import Agent

__all__ = ("Outbox", "WorkerHost")

_SPECS: TypeAdapter[WorkerSpec] = TypeAdapter(WorkerSpec)


class Outbox(Protocol):
    """Where a host's messages to the run go: ``send`` queues one, ``drain`` waits until the way out has room."""

    def send(self, message: dict[str, Any]) -> None: ...

    async def drain(self) -> None: ...


class _Channel:
    """The host's end of the wire: requests out, answers matched back to whoever asked."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.ids = itertools.count(1)

    async def ask(self, step: int, method: str, args: Mapping[str, Any]) -> Any:
        request = next(self.ids)
        answer = self.pending[request] = asyncio.get_running_loop().create_future()
        self.outbox.send({"op": "ask", "id": request, "step": step, "method": method, "args": dict(args)})
        try:
            await self.outbox.drain()
            return await answer
        finally:
            self.pending.pop(request, None)

    def tell(self, step: int, method: str, args: Mapping[str, Any]) -> None:
        self.outbox.send({"op": "tell", "step": step, "method": method, "args": dict(args)})


class WorkerHost:
    """The steps this worker runs, and the agents it rebuilt for them (by spec id)."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.channel = _Channel(outbox)
        self.agents: dict[str, Agent[Any] | ConfigError] = {}
        """Rebuilt agents by spec id, or why one could not be rebuilt (its steps fail with it)."""
        self.steps: dict[int, asyncio.Task[None]] = {}

    def handle(self, message: Mapping[str, Any]) -> None:
        """Act on one message from the run: an answer, a spec to rebuild, a step to start, a step to cancel (which
        ends without a reply: the run has stopped waiting for it)."""
        op = message.get("op")
        if op == "answer":
            _wire.answered(self.channel.pending, message)
        elif op == "spec":  # sent again with steps started before the run knew this worker had it: built once
            if str(message["sid"]) not in self.agents:
                self.agents[str(message["sid"])] = _built(message["spec"])
        elif op == "step":
            step = int(message["id"])
            self.steps[step] = asyncio.create_task(self.run(step, message))
        elif op == "cancel":
            running = self.steps.get(int(message["id"]))
            if running is not None:
                running.cancel()

    def cancel_all(self) -> None:
        """The run is gone: stop every step."""
        for running in list(self.steps.values()):
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
        self.outbox.send({"op": "done", "id": step, **reply})
        await self.outbox.drain()

    async def _execute(self, step: int, message: Mapping[str, Any]) -> dict[str, Any]:
        agent = self.agents.get(str(message["sid"])) or ConfigError(f"no agent was sent for spec {message['sid']}")
        if isinstance(agent, ConfigError):
            raise agent
        task = Task.model_validate(message["task"])
        ctx = StepContext.from_json(message["ctx"])
        port = RemotePort(self.channel, step, workspace=bool(message["workspace"]),
                          streaming=bool(message.get("streaming")))
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
        return ConfigError(f"a worker cannot read the agent's spec: {exc}")
