"""A durable run for the crash test to kill: a team of teams on a simulated model, recorded in SQLite.

    python crash_child.py DB LOG run RUN_ID [--die SPEC]
    python crash_child.py DB LOG resume RUN_ID [--die SPEC]

``--backend process`` runs the agent steps in two worker processes; ``--backend ray`` on two actors of the Ray
cluster at ``RAY_ADDRESS``.

Stdout, one flushed line each: ``EVENT <n> <type> <team> <step>`` for every event of the run
(``n`` counts from 0, ``step`` is ``-`` for team events), so the parent can kill the process right
after one; ``DIE <spec>`` just before the process kills itself; ``RESULT <json>`` at the end
(status, output, usage and the top team's step outputs); ``ERROR <type> <message>`` when
``run`` or ``resume`` raises.

LOG gets ``start <scope> <step> <pid>`` and ``end <scope> <step> <pid>`` around every step the
process executes, at every level of teams (``scope`` is the team's path in the run, as the
store keys steps: ``lead``, ``lead/engineering``). Each line is one ``O_APPEND`` write, so the
lines of a killed process are whole.

``--die SPEC`` makes the process SIGKILL itself at an exact point, where a kill from outside
would land a little later each time:

- ``event:N`` in the event sink, right after event ``N`` (synchronously: nothing else ran);
- ``on:TYPE:TEAM:STEP`` right after the first event of that type, team and step (``-`` for none);
- ``write:N:before`` as the ``N``-th batch of writes reaches the store (it is never written);
- ``write:N:inside`` inside that batch's SQLite transaction, in the middle of a statement;
- ``write:N:after`` once that batch committed, before the run learns that it did;
- ``write:final:PHASE`` the same, in the batch that records the finished run (the first after the
  top team's ``RunFinished``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from cadenza import Supervisor
from cadenza._errors import CadenzaError
from cadenza._events import Event
from cadenza._messages import Result, Task
from cadenza._port import RunPort
from cadenza._step_context import StepContext
from cadenza._worker import Worker
from cadenza.backends._remote import RemoteBackend
from cadenza.backends.base import Backend
from cadenza.backends.local import LocalBackend
from cadenza.backends.process import ProcessBackend
from cadenza.backends.ray import RayBackend
from cadenza.patterns._workflow import parse_workflow
from cadenza.security._identity import Envelope, WorkerKey
from cadenza.security._security import TaskOpener
from cadenza.stores.base import Write
from cadenza.stores.sqlite import SQLiteStore

GOAL = "Ship offline mode for the sync client"

TOP = "lead"
NESTED_STEP = "engineering"
"""The top team's step that the nested team runs; its steps are recorded under ``lead/engineering``."""

WORKFLOW: dict[str, Any] = {
    "name": "crashable",
    "description": "A lead with a fan-out, a diamond, a chain and a nested team, each on a written plan.",
    "simulated": {"seed": 23, "latency": {"min": 0.01, "max": 0.05}},
    "agents": [
        {"name": "scout", "instructions": "Find the facts the goal needs."},
        {"name": "analyst", "instructions": "Weigh options with numbers."},
        {"name": "writer", "instructions": "Write clearly for the team."},
        {"name": "reviewer", "instructions": "Find what is wrong or missing."},
        {"name": "architect", "instructions": "Design the change."},
        {"name": "developer", "instructions": "Implement the design."},
        {"name": "tester", "instructions": "Test the implementation."},
    ],
    "teams": [{
        "name": "eng",
        "description": "Designs, builds and tests the change.",
        "workers": ["architect", "developer", "tester"],
        "plan": [
            {"id": "design", "agent": "architect", "instruction": "Design the offline queue."},
            {"id": "build", "agent": "developer", "instruction": "Build the queue.", "depends_on": ["design"]},
            {"id": "test", "agent": "tester", "instruction": "Test the queue.", "depends_on": ["design", "build"]},
        ],
    }],
    "supervisor": {
        "name": TOP,
        "workers": ["scout", "analyst", "writer", "reviewer", "eng"],
        "plan": [
            {"id": "brief", "agent": "scout", "instruction": "Collect what users do offline."},
            # a fan-out of four
            {"id": "market", "agent": "analyst", "instruction": "Compare rival offline modes.", "depends_on": ["brief"]},
            {"id": "users", "agent": "scout", "instruction": "List user complaints.", "depends_on": ["brief"]},
            {"id": "costs", "agent": "analyst", "instruction": "Estimate the cost.", "depends_on": ["brief"]},
            {"id": "risks", "agent": "reviewer", "instruction": "List the risks.", "depends_on": ["brief"]},
            # a diamond: brief -> (market, users) -> compare
            {"id": "compare", "agent": "writer", "instruction": "Compare needs with rivals.",
             "depends_on": ["market", "users"]},
            {"id": NESTED_STEP, "agent": "eng", "instruction": "Design, build and test offline mode.",
             "depends_on": ["compare"]},
            # a chain
            {"id": "draft", "agent": "writer", "instruction": "Draft the release note.",
             "depends_on": [NESTED_STEP, "costs"]},
            {"id": "edit", "agent": "reviewer", "instruction": "Edit the release note.", "depends_on": ["draft"]},
            {"id": "signoff", "agent": "reviewer", "instruction": "Sign off on the release.",
             "depends_on": ["edit", "risks"]},
        ],
    },
}


def die(why: str) -> None:
    """Say where, then SIGKILL this process: no cleanup, no flush of anything not yet written."""
    sys.stdout.write(f"DIE {why}\n")
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class LoggingBackend(LocalBackend):
    """Runs steps in process like the default backend, and logs each execution to the shared log."""

    def __init__(self, log_fd: int) -> None:
        self.log_fd = log_fd

    async def execute(self, worker: Worker, task: Task, ctx: StepContext, port: RunPort) -> Result:
        """Log ``start`` and ``end`` around the step, keyed as the store keys it."""
        where, step = ctx.team, ctx.step_id
        self._log(f"start {where} {step}")
        result = await super().execute(worker, task, ctx, port)
        self._log(f"end {where} {step}")
        return result

    def _log(self, line: str) -> None:
        os.write(self.log_fd, f"{line} {os.getpid()}\n".encode())


class LoggingRemote(RemoteBackend):
    """A backend whose agent steps run in other processes, logging each step in this process as the local one."""

    log_fd: int

    async def execute(self, worker: Worker, task: Task, ctx: StepContext, port: RunPort) -> Result:
        os.write(self.log_fd, f"start {ctx.team} {ctx.step_id} {os.getpid()}\n".encode())
        result = await super().execute(worker, task, ctx, port)
        os.write(self.log_fd, f"end {ctx.team} {ctx.step_id} {os.getpid()}\n".encode())
        return result

    async def deliver(self, worker: Worker, envelope: Envelope, opener: TaskOpener, key: WorkerKey,
                      ctx: StepContext, port: RunPort) -> Envelope:
        os.write(self.log_fd, f"start {ctx.team} {ctx.step_id} {os.getpid()}\n".encode())
        reply = await super().deliver(worker, envelope, opener, key, ctx, port)
        os.write(self.log_fd, f"end {ctx.team} {ctx.step_id} {os.getpid()}\n".encode())
        return reply


class LoggingProcessBackend(LoggingRemote, ProcessBackend):
    """The process backend (agent steps in two worker processes), logging each step."""

    def __init__(self, log_fd: int) -> None:
        super().__init__(2)
        self.log_fd = log_fd


class LoggingRayBackend(LoggingRemote, RayBackend):
    """The Ray backend (agent steps on two actors of the cluster at ``RAY_ADDRESS``), logging each step."""

    def __init__(self, log_fd: int) -> None:
        super().__init__(2)
        self.log_fd = log_fd


def instrument(team: Supervisor[Any], backend: Backend) -> None:
    """Give ``team`` and every team under it the logging backend."""
    team.executor.backend = backend
    for worker in team.workers.values():
        if isinstance(worker, Supervisor):
            instrument(worker, backend)


class Killer:
    """The event sink and the store's tap: prints each event and each write, and dies where ``--die`` says."""

    def __init__(self, spec: str | None) -> None:
        self.events = 0
        self.writes = 0
        self.at_event: int | tuple[str, str, str] | None = None
        """An event index, or an event's (type, team, step)."""
        self.at_write: int | None = None
        self.phase = ""
        self.final = False
        """Die in the first write after the top team's `RunFinished`: the one that records the finished run."""
        kind, _, rest = (spec or "").partition(":")
        if kind == "event":
            self.at_event = int(rest)
        elif kind == "on":
            etype, team, step = rest.split(":")
            self.at_event = (etype, team, step)
        elif kind == "write":
            number, self.phase = rest.split(":")
            self.final = number == "final"
            self.at_write = None if self.final else int(number)
            if self.phase not in ("before", "inside", "after"):
                raise SystemExit(f"unknown write phase {self.phase!r}")
        elif spec is not None:
            raise SystemExit(f"unknown --die {spec!r}")

    def __call__(self, event: Event) -> None:
        """The event sink: one line per event."""
        n, self.events = self.events, self.events + 1
        kind, team, step = type(event).__name__, event.team, getattr(event, "step_id", "-")
        sys.stdout.write(f"EVENT {n} {kind} {team} {step}\n")
        sys.stdout.flush()
        if self.at_event in (n, (kind, team, step)):
            die(f"after event {n} {kind} {team} {step}")
        if self.final and (kind, team) == ("RunFinished", TOP):
            self.at_write = self.writes + 1

    def tap(self, store: SQLiteStore) -> None:
        """Print ``WROTE <n> <rows>`` once each batch of writes committed; die in the chosen one."""
        apply = store.apply

        async def apply_and_tell(writes: Sequence[Write]) -> None:
            self.writes += 1
            number = self.writes
            what = f"write {number} ({len(writes)} rows)"
            phase = self.phase if number == self.at_write else None
            if phase == "before":
                die(f"before {what}")
            if phase == "inside":
                conn = store._conn
                assert conn is not None
                # Called every few SQLite VM instructions; once the transaction is open, this is mid-statement.
                conn.set_progress_handler(lambda: die(f"inside {what}") if conn.in_transaction else 0, 8)
            await apply(writes)
            if phase is not None:
                die(f"after {what}")  # "inside" ends here too if the batch was too small to be caught in the act
            sys.stdout.write(f"WROTE {number} {len(writes)}\n")
            sys.stdout.flush()

        store.apply = apply_and_tell  # type: ignore[method-assign]


def outputs(result_steps: Sequence[Any]) -> dict[str, Any]:
    return {record.step.id: record.output for record in result_steps}


async def main(args: argparse.Namespace) -> int:
    killer = Killer(args.die)
    team = parse_workflow(WORKFLOW).entry
    log_fd = os.open(args.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    backend: Backend = LoggingBackend(log_fd)
    if args.backend == "process":
        backend = LoggingProcessBackend(log_fd)
    elif args.backend == "ray":
        backend = LoggingRayBackend(log_fd)
    instrument(team, backend)
    async with SQLiteStore(args.db) as store:
        killer.tap(store)
        try:
            if args.mode == "run":
                result = await team.run(GOAL, run_id=args.run_id, store=store, events=killer)
            else:
                result = await team.resume(args.run_id, store=store, events=killer)
        except CadenzaError as exc:
            print(f"ERROR {type(exc).__name__} {exc}".replace("\n", " "), flush=True)
            return 3
        finally:
            if isinstance(backend, (ProcessBackend, RayBackend)):
                await backend.aclose()
    body = {"status": result.status, "output": result.output, "usage": result.usage.model_dump(mode="json"),
            "steps": outputs(result.steps)}
    print("RESULT " + json.dumps(body, sort_keys=True), flush=True)
    return 0


def cli(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("db")
    parser.add_argument("log")
    parser.add_argument("mode", choices=("run", "resume"))
    parser.add_argument("run_id")
    parser.add_argument("--die", default=None, help="where to SIGKILL this process (see the module docstring)")
    parser.add_argument("--backend", choices=("local", "process", "ray"), default="local",
                        help="process: agent steps in two worker processes; ray: on two actors (RAY_ADDRESS)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(cli())))
