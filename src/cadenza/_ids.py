"""Typed identifiers, so a run id is never passed where a step id belongs."""

from __future__ import annotations

import os
from typing import NewType

__all__ = ("AgentId", "RunId", "ScopePath", "StepId", "TaskId", "child_path", "new_message_id", "new_run_id", "new_task_id",
           "split_path")

RunId = NewType("RunId", str)
TaskId = NewType("TaskId", str)
StepId = NewType("StepId", str)
AgentId = NewType("AgentId", str)
ScopePath = NewType("ScopePath", str)
"""Where a team or a step is in a run: the name of the run's top team (or lone agent), then the id of each step
down to it, joined by ``/`` (``lead``, ``lead/review``, ``lead/review/draft``). Step ids are unique within a plan
and names may repeat across it, so this is the one path that names a place once. Events, the store, spans, log
lines and the display all name teams and steps by it; an agent's identity is the path of the team that sends to
it, then the agent's name (``lead/review/architect``)."""


def _token(nbytes: int) -> str:
    return os.urandom(nbytes).hex()


def new_run_id() -> RunId:
    """A fresh run id: short enough to type into ``cadenza show``."""
    return RunId("run_" + _token(6))


def new_task_id() -> TaskId:
    """A fresh task id, unique across runs."""
    return TaskId("task_" + _token(8))


def new_message_id() -> str:
    """A fresh peer message id, unique across runs."""
    return "msg_" + _token(8)


def child_path(parent: ScopePath, segment: str) -> ScopePath:
    """The path of ``segment`` (a step id, or an agent's name for its identity) under ``parent``."""
    return ScopePath(f"{parent}/{segment}")


def split_path(path: ScopePath) -> tuple[ScopePath, str]:
    """``path``'s parent and last segment: ``("lead", "review")`` for ``lead/review``; a top path's parent is
    empty."""
    parent, _, last = path.rpartition("/")
    return ScopePath(parent), last
