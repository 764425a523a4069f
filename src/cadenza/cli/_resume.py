"""Running a team with a live display: ``cadenza run``, ``resume``, ``approve`` and ``reject``.

All four end the same way: the display (or one JSON document) shows the result, and the
exit code says how the run ended: 0 success, 1 partial or failed, 4 waiting for a human
decision. A run recorded in a store can be continued after Ctrl-C, a crash or an approval;
the commands say how on stderr, where it does not mix with the output.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click

from .._errors import ConfigError, ResumeError
from .._ids import RunId, split_path
from ._notices import notice

if TYPE_CHECKING:
    from .._budget import Budget
    from .._result import RunResult
    from ..patterns._workflow import Workflow
    from ..stores.base import ApprovalRow, RunRow, Store
    from ..tools._tool_sources import ToolSources
    from ._display import Display, PeersShown
    from ._placement import Placement

__all__ = ("OFFLINE_NOTICE", "decide", "exit_code", "resume_run", "run_workflow", "with_bus")

DisplayKind = Literal["live", "plain", "quiet"]

OFFLINE_NOTICE = "no model provider configured: running offline on the simulated model"
"""Told on stderr when a workflow file names no real model, so that nobody mistakes simulated output for a real one."""

TERMINATED = 143
"""The exit code after SIGTERM: 128 + 15, what a shell reports for a process the signal ended."""
STDOUT_CLOSED = 141
"""The exit code when stdout's reader went away: 128 + 13 (SIGPIPE), also where no SIGPIPE exists."""
Body = Callable[["Store | None", "Callable[[Any], None]", "ToolSources"], Awaitable["RunResult[Any]"]]
"""A run (or resume) given its open store, its event sink and the MCP servers the CLI opened and checked."""


class _Stop:
    """Stops a run from outside, the way Ctrl-C does: on SIGTERM, or when stdout is closed under the display.

    Cancelling the run's main task cancels every step and records the run as cancelled, so it can
    be resumed; ``reason`` tells `_drive` which exit to take.
    """

    def __init__(self) -> None:
        self.reason: Literal["terminated", "stdout closed"] | None = None
        self._task: asyncio.Task[Any] | None = None

    def arm(self) -> None:
        """Watch for SIGTERM on behalf of the running task (the run's main task)."""
        self._task = asyncio.current_task()
        with contextlib.suppress(NotImplementedError, RuntimeError):  # no signal handlers on this platform
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self.request, "terminated")

    def disarm(self) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)

    def request(self, reason: Literal["terminated", "stdout closed"]) -> None:
        if self.reason is None and self._task is not None:
            self.reason = reason
            self._task.cancel()

    def sink(self, display: Display) -> _Watch:
        """The display's event sink and the log's; a closed stdout stops the run instead of breaking a step."""
        return _Watch(display, self)


class _Watch:
    """The CLI's event sink: each event to the log, then to the display unless the run is being stopped."""

    __slots__ = ("display", "log", "said_at_the_end", "stop", "wants_reports")

    def __init__(self, display: Display, stop: _Stop) -> None:
        from .._events import StepWaiting
        from ..observability._logging import EventLog

        self.display = display
        self.stop = stop
        self.log = EventLog()
        self.said_at_the_end = StepWaiting
        """Not logged: what a waiting step waits for is said once, with the commands that decide it, when the run
        ends."""
        self.wants_reports = display.wants_reports
        """Asked for only when the display shows peer messages, which are events from inside steps."""

    def __call__(self, event: Any) -> None:
        if type(event) is not self.said_at_the_end:
            self.log(event)
        if self.stop.reason is not None:
            return
        try:
            self.display.handle(event)
        except BrokenPipeError:
            self.stop.request("stdout closed")


def exit_code(result: RunResult[Any]) -> int:
    """0 success, 1 partial or failed, 4 waiting for a human decision."""
    return 0 if result.ok else 4 if result.status == "waiting" else 1


def _kind(as_json: bool) -> DisplayKind:
    if as_json:
        return "quiet"
    try:
        return "live" if sys.stdout.isatty() else "plain"
    except (AttributeError, ValueError):
        return "plain"


def resume_hint(run_id: str, store_url: str | None) -> str:
    """``cadenza resume RUN``, with the ``--store`` this command was given, so that the hint works as it is printed
    (a store from CADENZA_STORE is found again the same way); a password in the URL is left out."""
    from click.core import ParameterSource

    command = f"cadenza resume {run_id}"
    ctx = click.get_current_context(silent=True)
    if store_url is None or ctx is None or ctx.find_root().get_parameter_source("store") != ParameterSource.COMMANDLINE:
        return command
    import shlex

    from ..stores._url import redact

    return f"{command} --store {shlex.quote(redact(store_url))}"


def run_workflow(workflow: Workflow, *, path: str, goal: str, as_json: bool, model: str | None,
                 store_url: str | None, budget: Budget | None = None, placement: Placement | None = None) -> int:
    """Run ``workflow`` on ``goal`` under ``budget``, recorded in the store at ``store_url`` unless it is None; with
    ``placement``, its agent steps run on that backend."""
    from .._ids import new_run_id

    run_id = new_run_id()
    source = str(Path(path).resolve())  # resume may run from another directory

    async def body(store: Store | None, events: Callable[[Any], None], sources: ToolSources) -> RunResult[Any]:
        if store is None:
            return await workflow.entry.run(goal, run_id=run_id, events=events, budget=budget, prices=workflow.prices,
                                            source=source, tool_sources=sources)
        return await workflow.entry.run(goal, run_id=run_id, events=events, store=store, source=source,
                                        workflow=workflow.name, options={"model": model}, budget=budget,
                                        prices=workflow.prices, tool_sources=sources)

    banner = f"run {run_id} (resume with: {resume_hint(run_id, store_url)})" if store_url else f"run {run_id}"
    return _drive(run_id, workflow, goal, banner=banner, as_json=as_json, store_url=store_url, body=body,
                  placement=placement)


def with_bus(workflow: Workflow, bus: str | None) -> Workflow:
    """``workflow`` with its peer groups' bus set by ``--bus`` (over the file's ``bus:``), checked as ``bus:`` is.

    Raises:
        ConfigError: ``bus`` names no bus.
    """
    if bus is None:
        return workflow
    import dataclasses

    from ..buses import bus_problem

    problem = bus_problem(bus)
    if problem is not None:
        raise ConfigError(f"--bus: {problem}")
    return dataclasses.replace(workflow, bus=bus)


def resume_run(store_url: str, run_id: str, *, force: bool, as_json: bool, model: str | None,
               placement: Placement | None = None, bus: str | None = None) -> int:
    """Continue a recorded run, rebuilding its team from the workflow file it was started from."""
    from .._status import FINISHED_RUN
    from ._records import read_run

    row = asyncio.run(read_run(store_url, run_id))
    if row.status in FINISHED_RUN:  # say so before loading the workflow and starting a display for nothing
        ended = f" at {row.finished_at:%Y-%m-%d %H:%M:%S} UTC" if row.finished_at else ""
        raise ResumeError(f"run {row.run_id!r} already finished ({row.status}{ended}); there is nothing to resume")
    workflow = with_bus(_load_for_resume(row, model), bus)

    async def body(store: Store | None, events: Callable[[Any], None], sources: ToolSources) -> RunResult[Any]:
        if store is None:  # pragma: no cover - _drive opens the store whenever it has a url
            raise RuntimeError("resume needs an open store")
        return await workflow.entry.resume(row.run_id, store=store, events=events, force=force,
                                           budget=workflow.budget, prices=workflow.prices, tool_sources=sources)

    banner = f"resuming run {row.run_id} ({row.status}, started {row.started_at:%Y-%m-%d %H:%M:%S} UTC)"
    return _drive(RunId(row.run_id), workflow, row.goal, banner=banner, as_json=as_json, store_url=store_url,
                  body=body, placement=placement)


def _load_for_resume(row: RunRow, model: str | None) -> Workflow:
    """The workflow file the run came from, built as it was then (its ``--model``) unless ``model`` says otherwise."""
    from ..patterns._workflow import load_workflow

    if row.source is None:
        raise ResumeError(f"run {row.run_id!r} was started from Python, not from a workflow file: "
                          "resume it in Python with Supervisor.resume")
    try:
        stored = json.loads(row.fingerprint_json)["options"]["model"]
    except (ValueError, LookupError, TypeError):
        stored = None
    workflow = load_workflow(row.source, model=model or (stored if isinstance(stored, str) else None))
    if workflow.offline:
        notice(OFFLINE_NOTICE)
    return workflow


def decide(store_url: str, run_id: str, step: str, *, approved: bool, note: str | None, resume: bool,
           placement: Placement | None = None, bus: str | None = None) -> int:
    """Record a human decision on a pending approval, then (unless ``resume`` is False) resume the run, its agent
    steps on ``placement`` and its peer groups on ``bus`` as ``cadenza resume`` would."""
    row = asyncio.run(_decide(store_url, run_id, step, approved=approved, note=note))
    from ..recorded import approval_subject

    verb = "approved" if approved else "rejected"
    click.echo(f"{verb} step {row.step_id} ({row.scope}) of run {run_id}: {approval_subject(row)}"
               + (f" · note: {note}" if note else ""))
    if not resume:
        notice(f"resume with: {resume_hint(run_id, store_url)}", run_id=run_id)
        return 0
    return resume_run(store_url, run_id, force=False, as_json=False, model=None, placement=placement, bus=bus)


async def _decide(store_url: str, run_id: str, step: str, *, approved: bool, note: str | None) -> ApprovalRow:
    from ..engine._durable import approve
    from ._records import open_existing

    async with open_existing(store_url, run_id) as store:
        return await approve(store, run_id, step, approved=approved, by=_who(), note=note)


def _who() -> str:
    """Who decides: the user running the command, as the system knows them (``cli`` when it cannot tell)."""
    import getpass

    try:
        return getpass.getuser() or "cli"
    except (OSError, KeyError, ImportError):  # no login name and no passwd entry (a container's bare uid)
        return "cli"


def _peers_shown(workflow: Workflow) -> PeersShown:
    """Whether the display has peer conversations to show, and where."""
    from ..patterns._peers import PeerGroup

    return "run" if isinstance(workflow.entry, PeerGroup) else "steps" if workflow.peers else "none"


def _drive(run_id: RunId, workflow: Workflow, goal: str, *, banner: str, as_json: bool, store_url: str | None,
           body: Body, placement: Placement | None) -> int:
    """Run ``body`` under a display, the store open; show the result and return the exit code."""
    from ._display import make_display

    display = make_display(_kind(as_json), run_id, workflow.name, goal, peers=_peers_shown(workflow))
    stop = _Stop()
    again = f"; resume with: {resume_hint(run_id, store_url)}" if store_url is not None else ""
    try:
        # With --json, stdout carries the document alone: what libraries print during the run (Ray prints its
        # cluster's warnings to stdout, from a thread) goes to stderr.
        with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
            result, pending = asyncio.run(_session(run_id, workflow, store_url, display, stop, banner=banner,
                                                   as_json=as_json, body=body, placement=placement))
    except KeyboardInterrupt:
        notice(f"cancelled: run {run_id} was stopped; running steps were cancelled{again}", level=logging.WARNING,
               run_id=run_id)
        return 130
    except BrokenPipeError:  # the header could not be written: nothing ran
        return closed_stdout()
    except asyncio.CancelledError:
        if stop.reason == "terminated":
            notice(f"terminated: run {run_id} was stopped; running steps were cancelled{again}",
                   level=logging.WARNING, run_id=run_id)
            return TERMINATED
        if stop.reason == "stdout closed":
            return closed_stdout()
        raise
    try:
        if as_json:
            click.echo(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
        else:
            display.finish(result)
    except BrokenPipeError:
        return closed_stdout()
    _hint(run_id, pending)
    return exit_code(result)


def _hint(run_id: str, pending: list[ApprovalRow]) -> None:
    """What the run waits for, and the commands that decide it (by step, or by approval id where a step waits twice)."""
    from ..recorded import approval_subject

    for approval in pending:
        notice(f"waiting for a decision on step {approval.step_id} ({approval.scope}): "
               f"{approval_subject(approval)} ({approval.reason})", level=logging.WARNING, run_id=run_id,
               step=approval.step_id, team=split_path(approval.scope)[0])
    for approval in pending:
        twice = sum(a.scope == approval.scope for a in pending) > 1
        key = approval.approval_id if twice else approval.step_id
        notice(f"decide with: cadenza approve {run_id} {key}  or  cadenza reject {run_id} {key}", run_id=run_id)


def closed_stdout() -> int:
    """Whoever read stdout has gone (``| head``): stop quietly, as Unix tools do when SIGPIPE ends them.

    Later writes (and the interpreter's last flush) go to /dev/null, so no second error is printed.
    """
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return STDOUT_CLOSED


async def _session(run_id: RunId, workflow: Workflow, store_url: str | None, display: Display, stop: _Stop, *,
                   banner: str, as_json: bool, body: Body,
                   placement: Placement | None) -> tuple[RunResult[Any], list[ApprovalRow]]:
    from ..tools._tool_sources import ToolSources, require_approved

    stop.arm()
    try:
        async with ToolSources() as sources, AsyncExitStack() as stack:  # servers checked here close with the run
            await require_approved(workflow.entry.mcp_servers, sources, workflow=workflow.source)  # before the run id
            if placement is not None:
                from ..patterns._peers import PeerGroup

                if isinstance(workflow.entry, PeerGroup):
                    raise ConfigError(f"{workflow.source} runs the peer group {workflow.entry.name!r}, whose members "
                                      f"run in the process of the run; --backend {placement.backend} runs a team's "
                                      "steps")

                pool = await stack.enter_async_context(placement.open())
                workflow.entry.use_backend(pool)
            if workflow.bus is not None and workflow.peers:
                from ..buses import open_bus

                bus = await stack.enter_async_context(open_bus(workflow.bus))
                for group in workflow.peers.values():
                    group.bus = bus
            return await _recorded(run_id, store_url, display, stop, banner=banner, as_json=as_json, body=body,
                                   sources=sources)
    finally:
        stop.disarm()


async def _recorded(run_id: RunId, store_url: str | None, display: Display, stop: _Stop, *, banner: str,
                    as_json: bool, body: Body, sources: ToolSources) -> tuple[RunResult[Any], list[ApprovalRow]]:
    async with AsyncExitStack() as stack:
        store: Store | None = None
        if store_url is not None:
            from ..stores import open_store

            store = await stack.enter_async_context(open_store(store_url))
        if store is not None or as_json:  # the id first, on stderr, so the run can be found whatever happens next
            notice(banner, run_id=run_id)
        with display:
            result = await body(store, stop.sink(display), sources)
        pending: list[ApprovalRow] = []
        if store is not None and result.status == "waiting":
            pending = [a for a in (await store.snapshot(run_id)).approvals if a.status == "pending"]
        return result, pending
