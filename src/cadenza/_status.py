"""The states of a run and of a step, and the moves between them, written down once.

Everything that names a run's or a step's state (events, results, the store, the CLI) uses these
two types. ``running`` also describes a recorded run whose process died: ``cadenza resume``
continues it, as it continues a ``waiting`` or ``cancelled`` one.

A run (or a team inside one)::

    running ──> success | partial | failure      finished: never resumed
    running ──> waiting | cancelled ──> running   paused or stopped: a resume runs it again

A step::

    pending ──> running ──> success | partial | failed | waiting | cancelled
    pending ──> skipped | cancelled               never started (a dependency failed; the run stopped)
    running ──> running                           a retry: a new attempt of the same step
    waiting | cancelled | skipped | running ──> running
                                                  a resumed run runs the step again (a step skipped because
                                                  its dependency failed is skipped again instead)

A step that is ``success``, ``partial`` or ``failed`` is finished: a resumed run reads it back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

__all__ = ("FINISHED_RUN", "FINISHED_STEP", "RUN_MOVES", "STEP_MOVES", "Outcome", "RunStatus", "StepStatus")

RunStatus = Literal["running", "waiting", "success", "partial", "failure", "cancelled"]
"""Where a run, or one team's part of it, stands."""

Outcome = Literal["success", "partial", "failure", "waiting"]
"""How a worker's task, or one call of ``run``, came back: a `RunStatus` a call can return with (a cancelled
one raises instead, and one that returned is no longer running)."""

StepStatus = Literal["pending", "running", "success", "partial", "failed", "skipped", "cancelled", "waiting"]
"""Where one step of a plan stands."""

RUN_MOVES: Mapping[RunStatus, frozenset[RunStatus]] = {
    "running": frozenset({"success", "partial", "failure", "waiting", "cancelled"}),
    "waiting": frozenset({"running"}),
    "cancelled": frozenset({"running"}),
    "success": frozenset(),
    "partial": frozenset(),
    "failure": frozenset(),
}
"""The states a run may move to from each state."""

STEP_MOVES: Mapping[StepStatus, frozenset[StepStatus]] = {
    "pending": frozenset({"running", "skipped", "cancelled"}),
    "running": frozenset({"running", "success", "partial", "failed", "waiting", "cancelled"}),
    "waiting": frozenset({"running"}),
    "cancelled": frozenset({"running"}),
    "success": frozenset(),
    "partial": frozenset(),
    "failed": frozenset(),
    "skipped": frozenset({"running", "skipped"}),
}
"""The states a step may move to from each state (within a process and across a resume)."""

FINISHED_RUN: frozenset[RunStatus] = frozenset(s for s, moves in RUN_MOVES.items() if not moves)
"""Run states with no way on: a finished run is never resumed."""

FINISHED_STEP: frozenset[StepStatus] = frozenset(s for s, moves in STEP_MOVES.items() if not moves)
"""Step states with no way on: a resumed run reads such a step back instead of running it."""
