"""What a person does from the run page: decide a pending approval, and resume a run that waits or was stopped.

A decision is recorded here, in the viewer, by the same `cadenza.engine.approve` that ``cadenza approve`` uses,
for the approval the page showed: its id, and the digest of the call's arguments, which must still be the pending
approval's (a call that changed since the page was drawn is refused, not decided). An approval is used once, by the
compare-and-set of the run that resumes.

A resume is ``cadenza resume RUN`` in a process of its own, as a person would type it: it rebuilds the team from
the run's workflow file, opens its MCP servers and bus, and writes the store, which the page follows like any other
writer's. It runs in a session of its own with its output in a file, so stopping the viewer does not stop the run.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .._errors import ApprovalError
from .._status import RUN_MOVES
from ..engine._durable import approve
from ..stores import Store
from ..stores.base import ApprovalRow, RunRow

__all__ = ("DecisionRefused", "Resumes", "decide", "decider", "resumable")

_log = logging.getLogger("cadenza.ui")

_ENDED = {0: "finished", 1: "ended partial or failed", 4: "waits for a decision again"}


class DecisionRefused(Exception):
    """The decision cannot be made as asked; the message says why, and nothing was recorded."""


def decider() -> str:
    """Who decides from the browser: the user the viewer runs as, marked as coming through it."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError, ImportError):  # no login name and no passwd entry (a container's bare uid)
        user = "someone"
    return f"{user} via cadenza ui"


async def decide(store: Store, run_id: str, approval_id: str, *, digest: str, approved: bool,
                 note: str | None) -> ApprovalRow:
    """Approve or reject the pending approval ``approval_id`` of ``run_id``, if its call is still ``digest``.

    Raises:
        DecisionRefused: it is no longer pending (decided, used, or never asked), or its call is another one now.
    """
    pending = [a for a in (await store.snapshot(run_id)).approvals if a.status == "pending"]
    found = next((a for a in pending if a.approval_id == approval_id), None)
    if found is None:
        raise DecisionRefused(f"run {run_id} has no pending approval {approval_id}: it was decided already "
                              "(here, in another page, or with cadenza approve) or was never asked")
    if found.arguments_digest != digest:
        raise DecisionRefused(f"the call approval {approval_id} asks about is not the one the page showed "
                              "(its arguments changed): reload the page and decide again")
    try:
        return await approve(store, run_id, approval_id, approved=approved, by=decider(), note=note or None)
    except ApprovalError as exc:  # decided by someone else between the two reads
        raise DecisionRefused(str(exc)) from None


def resumable(run: RunRow) -> str | None:
    """Why ``run`` cannot be resumed from the page, or None when it can."""
    if "running" not in RUN_MOVES[run.status]:
        return f"the run is {run.status}" + (": it is not stopped" if run.status == "running" else "")
    if run.source is None:
        return "it was started from Python, not from a workflow file: resume it in Python with its team's resume"
    return None


@dataclass(slots=True)
class _Resume:
    process: asyncio.subprocess.Process
    output: Path
    """The file its stdout and stderr go to: it outlives the viewer, where a pipe would break the run's writes."""
    waiter: asyncio.Task[int] | None = field(default=None, repr=False)


class Resumes:
    """The ``cadenza resume`` processes this viewer started: one per run at a time."""

    def __init__(self, store: str) -> None:
        self._store = store
        self._started: dict[str, _Resume] = {}

    async def start(self, run: RunRow) -> None:
        """Resume ``run`` in a ``cadenza resume`` process of its own, its output in a file of the temp directory.

        Raises:
            DecisionRefused: the run cannot be resumed, or a resume this viewer started is still going.
        """
        why_not = resumable(run)
        if why_not is not None:
            raise DecisionRefused(f"run {run.run_id} cannot be resumed: {why_not}")
        earlier = self._started.get(run.run_id)
        if earlier is not None and earlier.process.returncode is None:
            raise DecisionRefused(f"run {run.run_id} is being resumed already (process {earlier.process.pid})")
        fd, name = tempfile.mkstemp(prefix=f"cadenza-resume-{run.run_id}-", suffix=".log")
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "cadenza.cli", "resume", run.run_id,
                env={**os.environ, "CADENZA_STORE": self._store},  # not in argv, where ps shows a password
                stdin=asyncio.subprocess.DEVNULL, stdout=fd, stderr=fd, start_new_session=True)
        finally:
            os.close(fd)
        resume = _Resume(process, Path(name))
        resume.waiter = asyncio.create_task(process.wait())
        self._started[run.run_id] = resume
        _log.info("resuming %s in process %d; its output goes to %s", run.run_id, process.pid, name)

    def about(self, run_id: str) -> str | None:
        """What became of the resume this viewer started for ``run_id``, if it did."""
        resume = self._started.get(run_id)
        if resume is None:
            return None
        code = resume.process.returncode
        if code is None:
            return f"resuming in process {resume.process.pid} (its output: {resume.output})"
        if code in _ENDED:
            return f"the resume started here {_ENDED[code]}"
        last = _last_line(resume.output)
        return f"the resume started here failed with exit status {code}" + (f": {last}" if last else "") + (
            f" (its output: {resume.output})")

    async def close(self) -> None:
        """Stop waiting for the resumes; the resumes themselves go on."""
        for resume in self._started.values():
            if resume.waiter is not None:
                resume.waiter.cancel()


def _last_line(path: Path) -> str:
    """The last line that says something in the file at ``path`` ("" if it cannot be read)."""
    try:
        with path.open("rb") as file:
            file.seek(max(0, file.seek(0, os.SEEK_END) - 4096))
            tail = file.read().decode(errors="replace")
    except OSError:
        return ""
    return next((line.strip() for line in reversed(tail.splitlines()) if line.strip()), "")
