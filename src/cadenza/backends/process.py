"""The process backend: each agent step runs in a pool of worker processes, the run stays in this one.

Why OS processes: tool code that crashes the interpreter, leaks, or holds the GIL cannot take the
run down or stall its other steps; and it proves the runtime's contract, since a worker there has
only what it is sent. Why an asyncio subprocess protocol (JSON lines over pipes) rather than
`concurrent.futures`: a step is not one call and one return. While it runs, the worker asks its
run for budget reservations, tool call records, approvals and the workspace, and the run answers
from this event loop, without threads; `multiprocessing` offers no such two-way channel to await.

What runs where: an agent is rebuilt in a worker process from its spec (`_rebuild`), once per
process; a team runs its own planning and synthesis here and sends its agents' steps on (each
team names its backend). The run's process opens every Task envelope (only the keyring that
issued the keys can verify them) and sends the worker its own key, with which the worker seals
its Result; this process verifies it. A worker process that dies fails its steps with
`WorkerLost`, which is retryable; the next step starts a new process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError, WorkerLost
from . import _wire
from ._remote import RemoteBackend, RemoteWorker, Shipment

if TYPE_CHECKING:

    from ._port_server import PortServer

__all__ = ("START_TIMEOUT", "ProcessBackend")

START_TIMEOUT = 60.0
"""Seconds a new worker process may take to import cadenza and say it is ready."""


class ProcessBackend(RemoteBackend):
    """Runs agent steps in ``workers`` OS processes (the CPU count by default), started on first use.

    Close it (``async with`` or `aclose`) when done; worker processes also exit when this process does.
    """

    def __init__(self, workers: int | None = None) -> None:
        super().__init__()
        count = workers if workers is not None else (os.cpu_count() or 1)
        if count < 1:
            raise ConfigError(f"a process backend needs at least one worker process, not {count}")
        self.size = count
        self._pool: list[_Process] = []

    def __repr__(self) -> str:
        return f"ProcessBackend(workers={self.size}, running={len(self._pool)})"

    async def aclose(self) -> None:
        """Stop every worker process (their running steps are lost); the next step starts the pool again, on the
        event loop it runs on."""
        pool, self._pool, self._starting = self._pool, [], None
        for process in pool:
            await process.stop()

    async def __aenter__(self) -> ProcessBackend:
        return self

    async def _carry(self, shipment: Shipment, step: int, message: dict[str, Any], serving: PortServer) -> Any:
        process = await self._process()
        return await process.run(step, shipment, message, serving)

    async def _process(self) -> _Process:
        """The least busy live worker process, starting one while the pool is not full."""
        self._pool[:] = [p for p in self._pool if p.alive]
        if len(self._pool) < self.size:
            async with self._lock():
                self._pool[:] = [p for p in self._pool if p.alive]
                if len(self._pool) < self.size:
                    started = await _Process.start()
                    self._pool.append(started)
        return min(self._pool, key=lambda p: len(p.steps))


class _Process(RemoteWorker):
    """One worker process: its pipes and the steps it runs."""

    def __init__(self, proc: asyncio.subprocess.Process, pid: int) -> None:
        super().__init__(pid)
        self.proc = proc
        self.steps: dict[int, tuple[asyncio.Future[Any], PortServer]] = {}
        self.reader_task: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls) -> _Process:
        """A new worker process, once it says it is ready.

        Raises:
            WorkerLost: it did not start (its stderr says why).
        """
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))  # import what this process can
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cadenza.patterns._worker_process", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, env=env, limit=_wire.LINE_LIMIT)
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(START_TIMEOUT):
                ready = await _wire.read(proc.stdout)
        except TimeoutError:
            ready = None
            proc.kill()
        if ready is None or ready.get("op") != "ready":
            await proc.wait()
            raise WorkerLost(f"a worker process did not start within {START_TIMEOUT:g}s (exit code "
                             f"{proc.returncode}; its stderr says why)")
        process = cls(proc, int(ready["pid"]))
        process.reader_task = asyncio.create_task(process._read(), name=f"cadenza-worker-{process.pid}")
        return process

    async def run(self, step: int, shipment: Shipment, message: dict[str, Any], serving: PortServer) -> Any:
        """Send one step and return its reply (a Result's or an Envelope's JSON).

        Raises:
            WorkerLost: the process died before the step finished.
            ConfigError: the worker process could not rebuild the agent or run the step.
        """
        if self.lost is not None:
            raise WorkerLost(self.lost)
        stdin = self.proc.stdin
        assert stdin is not None
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.steps[step] = (done, serving)
        try:
            spec = self.unsent(shipment)
            if spec is not None:
                _wire.write(stdin, spec)
                self.holds(shipment)  # a worker process reads its pipe in order: the spec comes before any step
            _wire.write(stdin, message)
            await stdin.drain()
            return await done
        except asyncio.CancelledError:
            if self.lost is None:
                with contextlib.suppress(ConnectionError):
                    _wire.write(stdin, {"op": "cancel", "id": step})
            raise
        except ConnectionError:
            raise serving.lost(self.lost or f"worker process {self.pid} closed its pipe") from None
        finally:
            self.steps.pop(step, None)
            if serving.leases:
                self.serve(serving.abandon())

    async def _read(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        try:
            while (message := await _wire.read(stdout)) is not None:
                self._dispatch(message)
        except (ValueError, ConnectionError) as exc:
            self._lose(f"worker process {self.pid} sent what is not a message: {exc}")
            self.proc.kill()
            return
        code = await self.proc.wait()
        self._lose(f"worker process {self.pid} died (exit code {code}) while running the step")

    def _dispatch(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        step = self.steps.get(int(message.get("id" if op == "done" else "step", 0)))
        if step is None:  # a step that ended meanwhile (cancelled): its worker is told, so nothing waits on it
            if op == "ask":
                self.serve(self._refuse(int(message["id"])))
            return
        done, serving = step
        if op == "done":
            if done.done():
                return
            if "error" in message:
                done.set_exception(_wire.error_from(message["error"]))
            else:
                done.set_result(message.get("result", message.get("envelope")))
        elif op == "ask":
            self.serve(self._answer(int(message["id"]), serving, str(message["method"]), message["args"]))
        elif op == "tell":
            serving.tell(str(message["method"]), message["args"])

    async def _answer(self, request: int, serving: PortServer, method: str, args: Mapping[str, Any]) -> None:
        reply = await serving.reply(method, args)
        stdin = self.proc.stdin
        if self.lost is None and stdin is not None:
            with contextlib.suppress(ConnectionError):
                _wire.write(stdin, {"op": "answer", "id": request, **reply})
                await stdin.drain()

    async def _refuse(self, request: int) -> None:
        stdin = self.proc.stdin
        if self.lost is None and stdin is not None:
            with contextlib.suppress(ConnectionError):
                _wire.write(stdin, {"op": "answer", "id": request,
                                    "error": {"type": "ConfigError", "message": "the step has ended"}})
                await stdin.drain()

    def _lose(self, why: str) -> None:
        if self.lost is None:
            self.lost = why
        for done, serving in self.steps.values():
            if not done.done():
                done.set_exception(serving.lost(self.lost))

    async def stop(self) -> None:
        self._lose(f"worker process {self.pid} was stopped")
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            async with asyncio.timeout(5):
                await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        if self.reader_task is not None:
            self.reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader_task
