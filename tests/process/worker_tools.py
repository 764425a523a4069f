"""Tools for the backend conformance tests, importable by a worker process (it rebuilds agents from specs).

Their effects go to the file named by ``CADENZA_TEST_EFFECTS``, one line each, so a test sees what
ran in any process; a worker process inherits the variable when the backend starts it.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from cadenza import ToolContext, tool

EFFECTS = "CADENZA_TEST_EFFECTS"


def effect(line: str) -> None:
    """Append one line to the effects file."""
    with open(os.environ[EFFECTS], "a", encoding="utf-8") as out:
        out.write(f"{line} {os.getpid()}\n")


def effects() -> list[str]:
    """The effects recorded so far, without the process ids."""
    path = Path(os.environ[EFFECTS])
    return [line.rsplit(" ", 1)[0] for line in path.read_text().splitlines()] if path.exists() else []


@tool(side_effect="at_most_once")
def send_note() -> str:
    """Send the note (at most once)."""
    effect("sent")
    return "sent"


@tool(requires_approval=True, scopes={"deploy"})
def deploy() -> str:
    """Deploy to production (a human approves each call)."""
    effect("deployed")
    return "deployed"


@tool(scopes={"write"})
def publish() -> str:
    """Publish the report."""
    effect("published")
    return "published"


@tool
def crash_once() -> str:
    """Do the work; the first time, the process running it dies (SIGKILL) half way."""
    marker = Path(os.environ[EFFECTS] + ".crashed")
    if not marker.exists():
        marker.write_text("x")
        effect("crashing")
        time.sleep(0.5)  # half way: the model call before it was reported (a Ray actor streams reports, and a kill
        os.kill(os.getpid(), signal.SIGKILL)  # within microseconds of one can lose it with the actor)
    effect("survived")
    return "survived"


@tool(side_effect="idempotent")
async def remember(text: str, context: ToolContext) -> str:
    """Write a note into the run's shared workspace (key ``note``, which must be new)."""
    if context.workspace is None:
        return "no workspace"
    written = await context.workspace.put("note", {"text": text}, expected_version=0)
    return f"written at version {written.version}"


@tool
async def linger() -> str:
    """Start, wait two seconds, and finish (a step to cancel half way)."""
    import asyncio

    effect("started")
    await asyncio.sleep(2)
    effect("finished")
    return "finished"


@tool(side_effect="idempotent")
def where() -> str:
    """The process id this tool ran in (recorded by the run, as a call with a side effect is)."""
    return str(os.getpid())
