"""The Ray backend: each agent step runs on a Ray actor, in a local Ray instance or on a cluster; the run stays here.

What runs where is as on the process backend (`RemoteBackend`): an agent is rebuilt on an actor from its spec, once
per actor; a team plans and synthesises here and sends its agents' steps on; a peer group's members take their
turns here. This process stays the single writer of the store; an actor receives the spec, the Task, the
`StepContext` and, in a run that signs, the worker's own key (never another's), reaches the run only through its
port, and returns the Result sealed with that key.

Why actors rather than a task per step: an actor keeps the agents it rebuilt, their SDK clients and connection
pools, warm between steps; and a step talks to its run while it runs, which a streaming actor call carries both
ways (`patterns._ray_worker`). Actors reserve no CPU by default (an LLM step mostly waits for its model) and are
spread over the cluster's nodes; ``actor_options`` changes both.

Failures are cadenza's to retry: actors are never restarted and their calls never retried by Ray
(``max_restarts=0``, ``max_task_retries=0``), so a step whose actor dies fails once with `WorkerLost`, which
the run's retry policy retries on a new actor. Ray is an extra: ``pip install 'cadenza[ray]'``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import importlib
import logging
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .._errors import ConfigError, WorkerLost
from . import _wire
from ._remote import RemoteBackend, RemoteWorker, Shipment

if TYPE_CHECKING:

    from ._port_server import PortServer

__all__ = ("CONNECT_TIMEOUT", "START_TIMEOUT", "RayBackend")

_log = logging.getLogger("cadenza.backends")

START_TIMEOUT = 60.0
"""Seconds a new actor may take to be placed, start its process and import cadenza."""
CONNECT_TIMEOUT = 30.0
"""Seconds a Ray cluster named by an address may take to answer."""
PORT_CALLS = 1000
"""Answers and cancellations an actor takes at once, beside its steps."""
STEPS_PER_ACTOR = 10_000
"""Steps an actor runs at once (they mostly wait for their models)."""
_WORKER = "cadenza.patterns._ray_worker"
"""The module of the actor class, loaded by name: it builds agents, and the backends stay below the patterns."""


class RayBackend(RemoteBackend):
    """Runs agent steps on ``workers`` Ray actors (by default one per CPU of the cluster), started on first use.

    ``address`` (or ``RAY_ADDRESS``) names a running cluster (``host:port``, ``ray://host:port`` or ``auto``), which
    this process joins until `aclose`; without one, a local Ray instance starts with the first step and stops with
    `aclose`. A Ray already started in this process (``ray.init``) is used as it is, and left running.
    ``runtime_env`` is Ray's, for the actors (this process's ``sys.path`` is their ``PYTHONPATH`` unless it says
    otherwise); ``actor_options`` are passed to ``.options()`` of each actor (``num_cpus``, ``resources``,
    ``scheduling_strategy``...). A sequence of them gives the actors each in turn (``[{"resources": {"gpu_node": 1}},
    {"resources": {"cpu_node": 1}}]``), skipping those whose custom resources no live node has: when a node is
    lost, its actors are replaced on the others at once, rather than waiting to be placed on a node that is gone.
    """

    where = "a Ray actor"

    def __init__(self, workers: int | None = None, *, address: str | None = None,
                 runtime_env: Mapping[str, Any] | None = None,
                 actor_options: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
                 connect_timeout: float = CONNECT_TIMEOUT) -> None:
        super().__init__()
        if workers is not None and workers < 1:
            raise ConfigError(f"a Ray backend needs at least one actor, not {workers}")
        self.workers = workers
        self.address = address if address is not None else (os.environ.get("RAY_ADDRESS") or None)
        self.runtime_env = dict(runtime_env or {})
        given = actor_options if actor_options is not None else {}
        self.actor_options = [dict(given)] if isinstance(given, Mapping) else [dict(o) for o in given]
        if not self.actor_options:
            raise ConfigError("a Ray backend's actor_options is an empty list: give at least one set of options")
        self._turn = 0
        """How many sets of options were taken: the next actor takes the set after."""
        self.connect_timeout = connect_timeout
        self._actors: list[_Actor] = []
        self._size = 0
        self._connected = False
        """This backend connected this process to Ray (a local instance it started, or a cluster it joined): `aclose`
        disconnects, so that nothing of Ray's (its actors, its messages on stdout) outlives the backend."""
        self._filling: asyncio.Task[None] | None = None
        """Starts the actors after the first, and replaces lost ones, while the live ones take the steps."""

    def __repr__(self) -> str:
        where = self.address or "a local Ray instance"
        return f"RayBackend(workers={self.workers or 'one per CPU'}, on {where}, running={len(self._actors)})"

    async def aclose(self) -> None:
        """Stop every actor (their running steps are lost); leave the cluster this backend joined, or stop the local
        Ray instance it started."""
        actors, self._actors, self._starting, self._size = self._actors, [], None, 0
        filling, self._filling = self._filling, None
        if filling is not None:
            filling.cancel()
            with contextlib.suppress(asyncio.CancelledError, WorkerLost):
                await filling
        for actor in actors:
            await actor.stop()
        if self._connected:
            self._connected = False
            _ray().shutdown()

    async def __aenter__(self) -> RayBackend:
        """Join the cluster (or start the local instance) now, so that one that cannot be reached is an error before
        the run starts rather than at its first step."""
        await self._connect_once()
        return self

    async def _carry(self, shipment: Shipment, step: int, message: dict[str, Any], serving: PortServer) -> Any:
        actor = await self._actor()
        return await actor.run(step, shipment, message, serving)

    async def _actor(self) -> _Actor:
        """The least busy live actor.

        A step waits for an actor to start only when none is live. The rest of the pool starts in the background
        while the live actors take the steps: a run's steps (and many runs' steps) make progress one actor start
        after the first step, not one per actor of the pool; and an actor that was lost is replaced without a
        retried step waiting for a replacement that Ray may place only once it has declared the lost node dead,
        15 s later.
        """
        if not self._live():
            async with self._lock():
                if not self._size:
                    await self._connect()
                if not self._live():
                    self._actors.append(await _Actor.start(self._next_options()))
        if len(self._actors) < self._size and (self._filling is None or self._filling.done()):
            self._filling = asyncio.create_task(self._fill(), name="cadenza-ray-fill")
        return min(self._actors, key=lambda a: a.running)

    async def start(self) -> None:
        """Start every actor of the pool now, rather than as steps come: a service warms its pool before it takes
        runs (and a benchmark measures steps, not actor starts).

        Raises:
            ConfigError: the cluster cannot be reached.
            WorkerLost: an actor did not start.
        """
        await self._connect_once()
        await self._start_missing()

    async def _fill(self) -> None:
        """`_start_missing` in the background; an actor that cannot start now is tried again with the next step
        that finds the pool short."""
        try:
            await self._start_missing()
        except WorkerLost as exc:
            _log.warning("starting a Ray actor failed (tried again later): %s", exc)

    async def _start_missing(self) -> None:
        """Start actors one at a time until the pool is full, letting a step that finds none live go first."""
        while True:
            async with self._lock():
                if len(self._live()) >= self._size:
                    return
                self._actors.append(await _Actor.start(self._next_options()))

    async def _connect_once(self) -> None:
        async with self._lock():
            if not self._size:
                await self._connect()

    def _live(self) -> list[_Actor]:
        """The pool, without the actors that were lost."""
        self._actors[:] = [a for a in self._actors if a.alive]
        return self._actors

    async def _connect(self) -> None:
        """Join the cluster (or start a local instance) and size the pool.

        Raises:
            ConfigError: Ray is not installed, or the cluster did not answer within ``connect_timeout``.
        """
        ray = _ray()
        if not ray.is_initialized():
            if self.address is None:  # on this thread: Ray's processes die with the thread that started them
                ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
            else:
                await _join(ray, self.address, self.connect_timeout)
            self._connected = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self._size = self.workers or max(cpus, 1)

    def _next_options(self) -> dict[str, Any]:
        """The options of the next actor: the next set in turn whose custom resources some live node has.

        Raises:
            WorkerLost: no live node has the resources of any set (they may come back: a retry tries again).
        """
        present = _ray().cluster_resources()
        for _ in range(len(self.actor_options)):
            chosen = self.actor_options[self._turn % len(self.actor_options)]
            self._turn += 1
            if all(name in present for name in chosen.get("resources") or {}):
                return self._options(chosen)
        wanted = "; ".join(str(o.get("resources")) for o in self.actor_options)
        raise WorkerLost(f"no live node of the Ray cluster has the resources its actors ask for ({wanted})")

    def _options(self, chosen: Mapping[str, Any]) -> dict[str, Any]:
        env = dict(self.runtime_env)
        variables = dict(env.get("env_vars") or {})
        variables.setdefault("PYTHONPATH", os.pathsep.join(p for p in sys.path if p))  # import what this process can
        for name, value in os.environ.items():  # the actors export their spans where this process does
            if name.startswith("OTEL_EXPORTER_OTLP_"):
                variables.setdefault(name, value)
        env["env_vars"] = variables
        options: dict[str, Any] = {"num_cpus": 0, "scheduling_strategy": "SPREAD"}
        options.update(chosen)
        options.update(max_restarts=0, max_task_retries=0, runtime_env=env)
        return options


class _Actor(RemoteWorker):
    """One Ray actor: its handle and how many steps it runs."""

    def __init__(self, handle: Any, pid: int) -> None:
        super().__init__(pid)
        self.handle = handle
        self.running = 0

    @classmethod
    async def start(cls, options: dict[str, Any]) -> _Actor:
        """A new actor, once it answers.

        Raises:
            WorkerLost: no node started it within `START_TIMEOUT` (none has the resources it asks for, or its
                runtime environment failed), or the nodes with the custom resources it asks for were lost meanwhile.
        """
        ray = _ray()
        handle = _actor_class().options(**options).remote()
        wanted = options.get("resources") or {}
        ready: asyncio.Task[int] = asyncio.create_task(_pid_of(handle))
        why = "it was not placed in time"
        try:
            async with asyncio.timeout(START_TIMEOUT):
                while not ready.done():
                    await asyncio.wait({ready}, timeout=1.0)
                    if not ready.done() and not all(name in ray.cluster_resources() for name in wanted):
                        why = "no live node has the resources it asks for any more"
                        raise TimeoutError
                pid = ready.result()
        except asyncio.CancelledError:  # the step that wanted it was cancelled: no actor is left behind
            ready.cancel()
            ray.kill(handle)
            raise
        except (TimeoutError, ray.exceptions.RayError) as exc:
            ready.cancel()
            ray.kill(handle)
            why = why if isinstance(exc, TimeoutError) else _first_line(exc)
            raise WorkerLost(f"a Ray actor did not start within {START_TIMEOUT:g}s: {why} (its options: "
                             f"{ {k: v for k, v in options.items() if k != 'runtime_env'} })") from None
        return cls(handle, pid)

    async def run(self, step: int, shipment: Shipment, message: dict[str, Any], serving: PortServer) -> Any:
        """Stream one step: answer its requests as they come, and return its reply.

        Raises:
            WorkerLost: the actor died before the step finished.
            ConfigError: the actor could not rebuild the agent or run the step.
        """
        ray = _ray()
        if self.lost is not None:
            raise WorkerLost(self.lost)
        self.running += 1
        try:
            async for ref in self.handle.step.remote(self.unsent(shipment), message):
                self.holds(shipment)  # the step started there, its spec (if it carried it) taken first
                for out in await ref:  # what the step sent, in order; its reply last
                    if out["op"] == "done":
                        if "error" in out:
                            raise _wire.error_from(out["error"])
                        return out.get("result", out.get("envelope"))
                    self._request(out, serving)
            raise serving.lost(f"Ray actor {self.pid} ended the step without a reply")
        except asyncio.CancelledError:
            if self.lost is None:
                self.handle.cancel.options(concurrency_group="port").remote(step)
            raise
        except ray.exceptions.RayTaskError as exc:  # the actor's own code broke: not the step's fault to retry
            raise ConfigError(f"Ray actor {self.pid} failed the step: {_first_line(exc)}") from None
        except ray.exceptions.RayError as exc:  # the actor died, or its node did
            self.lost = f"Ray actor {self.pid} was lost while running the step: {_first_line(exc)}"
            ray.kill(self.handle)  # an actor only unreachable for now must not go on with a step retried elsewhere
            raise serving.lost(self.lost) from None
        finally:
            self.running -= 1
            if serving.leases:
                self.serve(serving.abandon())

    def _request(self, out: Mapping[str, Any], serving: PortServer) -> None:
        """Serve a request the step made (``ask``: answered; ``tell``: not), without holding up its stream."""
        if out["op"] == "ask":
            self.serve(self._answer(out, serving))
        elif out["op"] == "tell":
            serving.tell(str(out["method"]), out["args"])

    async def _answer(self, request: Mapping[str, Any], serving: PortServer) -> None:
        reply = await serving.reply(str(request["method"]), request["args"])
        if self.lost is None:
            self.handle.answer.options(concurrency_group="port").remote({"op": "answer", "id": request["id"], **reply})

    async def stop(self) -> None:
        ray = _ray()
        if self.lost is None:
            self.lost = f"Ray actor {self.pid} was stopped"
            with contextlib.suppress(TimeoutError, ray.exceptions.RayError):
                async with asyncio.timeout(5):  # its steps stop and its spans are exported
                    await self.handle.stop.options(concurrency_group="port").remote()
        ray.kill(self.handle)


@functools.cache
def _actor_class() -> Any:
    """The Ray actor class of the steps, made once: Ray exports it to the cluster with the first actor."""
    return _ray().remote(max_concurrency=STEPS_PER_ACTOR, concurrency_groups={"port": PORT_CALLS})(
        importlib.import_module(_WORKER).RayWorker)


async def _pid_of(handle: Any) -> int:
    """The process id of a new actor, once it has started."""
    return int(await handle.ready.remote())


async def _join(ray: ModuleType, address: str, deadline: float) -> None:
    """Connect this process to the cluster at ``address``, or fail within ``deadline`` seconds (Ray itself would
    retry for minutes).

    Raises:
        ConfigError: naming the address and what failed.
    """
    if address != "auto":
        parts = urlsplit(address if "://" in address else f"ray://{address}")
        try:
            async with asyncio.timeout(deadline):
                _, writer = await asyncio.open_connection(parts.hostname, parts.port)
            writer.close()
        except (OSError, TimeoutError, ValueError) as exc:
            why = "no answer" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
            raise ConfigError(f"the Ray cluster at {address} cannot be reached within {deadline:g}s: {why}") from None
    joined: concurrent.futures.Future[None] = concurrent.futures.Future()

    def connect() -> None:  # its own thread, which may outlive a deadline: Ray's connection has no timeout of its own
        joined.set_running_or_notify_cancel()  # running: giving up on it later leaves it to end on its own
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
        except Exception as exc:
            joined.set_exception(exc)
        else:
            joined.set_result(None)

    threading.Thread(target=connect, name="cadenza-ray-connect", daemon=True).start()
    try:
        async with asyncio.timeout(deadline):
            await asyncio.wrap_future(joined)
    except TimeoutError:
        raise ConfigError(f"the Ray cluster at {address} did not answer within {deadline:g}s") from None
    except Exception as exc:
        raise ConfigError(f"cannot join the Ray cluster at {address}: {_first_line(exc)}") from None


def _ray() -> ModuleType:
    """The ``ray`` module.

    Raises:
        ConfigError: Ray is not installed.
    """
    try:
        return importlib.import_module("ray")
    except ImportError:
        raise ConfigError("the Ray backend needs Ray: pip install 'cadenza[ray]'") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
