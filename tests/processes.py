"""The processes a test started, found by what their command line names, and killed with a deadline; and how a child
that a test sends Ctrl-C is started, and how one it started is stopped.

A process a test starts may start others that outlive it (a Ray node's workers, a run a test gave up on): finding
them by a path only the test uses (its temporary directory) and by descent catches them all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def processes_of(marker: str) -> set[int]:
    """The live processes whose command line names ``marker``, and every process descended from one of them."""
    parents: dict[int, int] = {}
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if fields[0] == "Z":
            continue
        parents[int(entry.name)] = int(fields[1])
        if marker.encode() in command:
            found.add(int(entry.name))
    grew = True
    while grew:
        below = {pid for pid, parent in parents.items() if parent in found} - found
        found |= below
        grew = bool(below)
    return found


def kill(pids: set[int], deadline: float = 15.0) -> set[int]:
    """SIGKILL ``pids``; those still alive (not zombies) after ``deadline`` seconds."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    end = time.monotonic() + deadline
    alive = set(pids)
    while alive and time.monotonic() < end:
        alive = {pid for pid in alive if alive_pid(pid)}
        time.sleep(0.1)
    return alive


def alive_pid(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has exited)."""
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def stop(process: subprocess.Popen[str], grace: float) -> None:
    """Ask ``process`` to end (SIGTERM), and kill it if it has not within ``grace`` seconds; reaped either way."""
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def default_sigint() -> None:
    """``preexec_fn`` of a child a test sends Ctrl-C: SIGINT as a terminal's foreground process has it. A shell starts
    a background job (the suite, say) ignoring SIGINT, its children inherit that, and Python then never raises
    KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
