"""The typed event stream of a run: the one source for the CLI display, and later the store and tracing.

Events are small slotted dataclasses (not pydantic models, and not frozen: a
frozen dataclass costs three times as much to build) because thousands are
emitted per second on the scheduler's hot path. They carry only references to
data the run already holds; sinks must treat them as read-only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from ._ids import RunId
from ._messages import ErrorInfo, Usage, utcnow
from ._status import RunStatus

if TYPE_CHECKING:
    from ._plan import AgentProposal, Plan

__all__ = (
    "AgentSpawned",
    "Event",
    "EventSink",
    "PlanReady",
    "RunFinished",
    "RunStarted",
    "StepCancelled",
    "StepFailed",
    "StepFinished",
    "StepRestored",
    "StepRetrying",
    "StepSkipped",
    "StepStarted",
    "StepWaiting",
    "UsageRecorded",
    "isolated",
)



@dataclass(slots=True)
class RunStarted:
    """A team began work on a goal (nested teams emit their own, with their ``team`` path)."""

    run_id: RunId
    team: str
    goal: str
    at: datetime = field(default_factory=utcnow)


@dataclass(slots=True)
class PlanReady:
    """A team's plan passed validation and is about to run."""

    run_id: RunId
    team: str
    plan: Plan
    source: Literal["planner", "static"]
    repairs: int = 0
    """How many times the planner model had to be sent its errors before the plan was valid."""


@dataclass(slots=True)
class AgentSpawned:
    """A planner-proposed agent was granted for this run."""

    run_id: RunId
    team: str
    proposal: AgentProposal


@dataclass(slots=True)
class StepStarted:
    """A step's attempt was dispatched to its agent."""

    run_id: RunId
    team: str
    step_id: str
    agent: str
    attempt: int
    at: datetime


@dataclass(slots=True)
class StepRetrying:
    """A step's attempt failed with a retryable error; another follows after ``delay`` seconds."""

    run_id: RunId
    team: str
    step_id: str
    agent: str
    attempt: int
    error: ErrorInfo
    delay: float
    usage: Usage
    """What the failed attempt spent; it counts in the run's usage."""


@dataclass(slots=True)
class StepFinished:
    """A step succeeded (or finished partially); its dependents may now start."""

    run_id: RunId
    team: str
    step_id: str
    agent: str
    attempt: int
    status: Literal["success", "partial"]
    usage: Usage
    at: datetime


@dataclass(slots=True)
class StepFailed:
    """A step failed for good (retries spent or not retryable)."""

    run_id: RunId
    team: str
    step_id: str
    agent: str
    attempt: int
    error: ErrorInfo
    usage: Usage
    at: datetime


@dataclass(slots=True)
class StepRestored:
    """A resumed run read a step's final result back from the store instead of running it again."""

    run_id: RunId
    team: str
    step_id: str
    agent: str
    attempt: int
    status: Literal["success", "partial", "failure"]
    usage: Usage
    """What the step spent when it ran (in an earlier process); it counts in the run's usage."""


@dataclass(slots=True)
class StepWaiting:
    """A step paused for a human decision (an approval); it runs again when the run is resumed."""

    run_id: RunId
    team: str
    step_id: str
    agent: str
    attempt: int
    reason: ErrorInfo
    usage: Usage


@dataclass(slots=True)
class StepSkipped:
    """A step will never run because a dependency failed, or the run stopped."""

    run_id: RunId
    team: str
    step_id: str
    agent: str
    reason: str


@dataclass(slots=True)
class StepCancelled:
    """A running step was cancelled (fail_fast, or the run was cancelled)."""

    run_id: RunId
    team: str
    step_id: str
    agent: str
    attempt: int


@dataclass(slots=True)
class UsageRecorded:
    """Usage spent outside any step: planning and synthesis."""

    run_id: RunId
    team: str
    source: Literal["planner", "synthesizer"]
    usage: Usage


@dataclass(slots=True)
class RunFinished:
    """A team finished its goal; ``usage`` includes nested teams."""

    run_id: RunId
    team: str
    status: RunStatus
    usage: Usage
    at: datetime = field(default_factory=utcnow)


Event = (
    RunStarted
    | PlanReady
    | AgentSpawned
    | StepStarted
    | StepRetrying
    | StepFinished
    | StepFailed
    | StepSkipped
    | StepCancelled
    | StepRestored
    | StepWaiting
    | UsageRecorded
    | RunFinished
)
EventSink = Callable[[Event], None]
"""Receives every event synchronously, in order; must be quick and must not raise."""


_log = logging.getLogger("cadenza.events")


class _Isolated:
    """A sink whose first exception is logged and detaches it: the run it watches goes on unharmed."""

    __slots__ = ("broken", "sink")

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink
        self.broken = False

    def __call__(self, event: Event) -> None:
        if self.broken:
            return
        try:
            self.sink(event)
        except Exception as exc:
            self.broken = True
            _log.warning("event sink %r raised %s on %s and was detached; the run goes on without it",
                         self.sink, type(exc).__name__, type(event).__name__, exc_info=True,
                         extra={"run_id": event.run_id, "team": event.team})


def isolated(sink: EventSink | None) -> EventSink | None:
    """``sink`` guarded so that nothing it raises reaches the run.

    Events are emitted from inside step tasks and the scheduler; an exception there would kill the
    task that a run waits on. A sink that raises is logged once (a warning with its traceback) and
    receives no more events; the run's outcome does not depend on its observers.
    """
    if sink is None or isinstance(sink, _Isolated):
        return sink
    return _Isolated(sink)
