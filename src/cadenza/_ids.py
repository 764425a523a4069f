"""Typed identifiers, so a run id is never passed where a step id belongs."""

from __future__ import annotations

import os
from typing import NewType

__all__ = ("AgentId", "RunId", "StepId", "TaskId", "new_run_id", "new_task_id")

RunId = NewType("RunId", str)
TaskId = NewType("TaskId", str)
StepId = NewType("StepId", str)
AgentId = NewType("AgentId", str)


def _token(nbytes: int) -> str:
    return os.urandom(nbytes).hex()


def new_run_id() -> RunId:
    """A fresh run id: short enough to type into ``cadenza show``."""
    return RunId("run_" + _token(6))


def new_task_id() -> TaskId:
    """A fresh task id, unique across runs."""
    return TaskId("task_" + _token(8))
