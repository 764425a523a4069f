"""The typed events of a run: every change of its state, told once to one stream and its sinks.

An event is a transition: a step started or finished, a plan was made, a model or a tool was called,
a message went from one agent to another. The engine emits each once, to the run's stream
(`engine._stream.EventStream`), and every record and view of the run is a sink of that stream: the store's
journal (`_journal.JournalSink`), the audit log (`_audit_hooks.AuditSink`), metrics (`_metrics.MetricsSink`),
the log lines (`_logging.EventLog`) and the live display or any sink a caller passes.

Events are small slotted dataclasses (not pydantic models, and not frozen: a
frozen dataclass costs three times as much to build) because thousands are
emitted per second on the scheduler's hot path. They carry only references to
data the run already holds; sinks must treat them as read-only. The reports a
worker sends (`ModelCalled`, `ToolCalled`) hold plain values only, since they may
cross from a worker process to the run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from ._deltas import OutputDelta
from ._ids import RunId, ScopePath
from ._messages import ErrorInfo, PeerMessage, Result, Task, utcnow
from ._status import RunStatus
from ._usage import Usage

if TYPE_CHECKING:
    from ._plan import AgentProposal, Plan
    from ._result import RunResult

__all__ = (
    "AgentSpawned",
    "ApprovalRequested",
    "BudgetReserved",
    "BudgetSettled",
    "Detail",
    "Event",
    "EventSink",
    "FinalResult",
    "Kept",
    "MessageRejected",
    "MessageSent",
    "ModelCalled",
    "ModelDelta",
    "PeerMessageHandled",
    "PeerMessageSent",
    "Progress",
    "Report",
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
    "StreamEvent",
    "ToolCallRecorded",
    "ToolCalled",
    "ToolOutcome",
    "ToolStarted",
    "UsageRecorded",
)


OutputT = TypeVar("OutputT")


@dataclass(slots=True)
class RunStarted:
    """A team began work on a goal (nested teams emit their own, with their ``team`` path).

    Every event names its team by its path in the run (`ScopePath`): the top team's name, then step ids."""

    run_id: RunId
    team: ScopePath
    goal: str
    at: datetime = field(default_factory=utcnow)


@dataclass(slots=True)
class PlanReady:
    """A team's plan passed validation and is about to run (recorded before any of its steps starts)."""

    run_id: RunId
    team: ScopePath
    plan: Plan
    source: Literal["planner", "static"]
    repairs: int = 0
    """How many times the planner model had to be sent its errors before the plan was valid."""
    restored: bool = False
    """Read back from the store by a resumed run (nothing new to record)."""


@dataclass(slots=True)
class AgentSpawned:
    """A planner-proposed agent was granted for this run."""

    run_id: RunId
    team: ScopePath
    proposal: AgentProposal


@dataclass(slots=True)
class StepStarted:
    """A step's attempt was dispatched to its agent."""

    run_id: RunId
    team: ScopePath
    step_id: str
    agent: str
    attempt: int
    at: datetime
    scope: ScopePath
    """The step's path in the run (its team's path, then its id): where it is recorded."""
    task: Task
    first_started: datetime
    """When the step's first attempt started (``at`` is this attempt's start)."""


@dataclass(slots=True)
class StepRetrying:
    """A step's attempt failed with a retryable error; another follows after ``delay`` seconds."""

    run_id: RunId
    team: ScopePath
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
    team: ScopePath
    step_id: str
    agent: str
    attempt: int
    status: Literal["success", "partial"]
    usage: Usage
    """What the last attempt spent (the earlier ones were told by `StepRetrying`)."""
    at: datetime
    scope: ScopePath
    result: Result
    total: Usage
    """What every attempt of the step spent together."""
    first_started: datetime


@dataclass(slots=True)
class StepFailed:
    """A step failed for good (retries spent or not retryable)."""

    run_id: RunId
    team: ScopePath
    step_id: str
    agent: str
    attempt: int
    error: ErrorInfo
    usage: Usage
    at: datetime
    scope: ScopePath
    result: Result
    total: Usage
    first_started: datetime


@dataclass(slots=True)
class StepRestored:
    """A resumed run read a step's final result back from the store instead of running it again."""

    run_id: RunId
    team: ScopePath
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
    team: ScopePath
    step_id: str
    agent: str
    attempt: int
    reason: ErrorInfo
    usage: Usage
    scope: ScopePath
    result: Result
    total: Usage
    first_started: datetime


@dataclass(slots=True)
class StepSkipped:
    """A step will never run because a dependency failed, or the run stopped."""

    run_id: RunId
    team: ScopePath
    step_id: str
    agent: str
    reason: str
    scope: ScopePath
    attempts: int
    """Attempts made before (none, unless a run stopped between them)."""


@dataclass(slots=True)
class StepCancelled:
    """A running step was cancelled (fail_fast, or the run was cancelled)."""

    run_id: RunId
    team: ScopePath
    step_id: str
    agent: str
    attempt: int
    scope: ScopePath
    first_started: datetime | None
    at: datetime


@dataclass(slots=True)
class UsageRecorded:
    """Usage spent outside any step: planning and synthesis."""

    run_id: RunId
    team: ScopePath
    source: Literal["planner", "synthesizer"]
    usage: Usage


@dataclass(slots=True)
class RunFinished:
    """A team finished its goal; ``usage`` includes nested teams."""

    run_id: RunId
    team: ScopePath
    status: RunStatus
    usage: Usage
    at: datetime = field(default_factory=utcnow)


@dataclass(slots=True)
class MessageSent:
    """A Task went from a team to a worker, or its Result came back (signed when the run signs its messages)."""

    run_id: RunId
    team: ScopePath
    sender: str
    recipient: str
    kind: Literal["task", "result"]
    task_id: str
    step_id: str | None
    status: str | None
    """The Result's status; None for a Task."""
    signed: bool


@dataclass(slots=True)
class ModelCalled:
    """A worker's model call ended: answered (with its ``usage``) or failed (``error``, the exception's class)."""

    run_id: str
    scope: ScopePath
    """The path of the step that made the call."""
    agent: str
    model: str
    at: datetime
    seconds: float
    usage: Usage | None
    error: str | None


ToolOutcome = Literal["ok", "error", "denied", "waiting", "invalid"]
"""What came of a tool call: it answered, raised, was refused by the permission check, waits for an approval,
or could not be made (unknown tool, arguments that do not fit)."""


@dataclass(slots=True)
class ToolCalled:
    """A worker's tool call ended, or was refused before it ran (``outcome`` ``denied``)."""

    run_id: str
    scope: ScopePath
    agent: str
    tool: str
    arguments_digest: str
    outcome: ToolOutcome
    detail: str = ""
    """The error or the denial, for any outcome but ``ok``."""
    result_preview: str | None = None
    """The start of what the model was given, with its size and digest (never the whole of it)."""
    result_chars: int | None = None
    result_digest: str | None = None
    call_id: str | None = None
    """The model's id of the call (what `ToolStarted` carries too)."""


@dataclass(slots=True)
class ModelDelta:
    """A piece of a worker's model answer as it is generated: text, a tool call's name or arguments, or a reset
    (what the call streamed so far is void: the attempt failed and another starts over)."""

    run_id: str
    scope: ScopePath
    """The path of the step whose model answers."""
    agent: str
    model: str
    delta: OutputDelta


@dataclass(slots=True)
class ToolStarted:
    """A worker is about to make a tool call the model asked for (`ToolCalled` tells how it ended)."""

    run_id: str
    scope: ScopePath
    agent: str
    tool: str
    call_id: str
    arguments: dict[str, Any]
    """As the model gave them (not yet checked against the tool's schema)."""


@dataclass(slots=True)
class FinalResult(Generic[OutputT]):
    """The last event of a streamed run (``team.stream``, ``agent.stream``): its result, as ``run`` returns it."""

    run_id: str
    result: RunResult[OutputT]


@dataclass(slots=True)
class ToolCallRecorded:
    """A guarded tool call (one with side effects) started, finished or failed: what a resumed run must know so
    that it does not repeat an effect."""

    run_id: str
    scope: ScopePath
    """The path of the step that made the call."""
    agent: str
    key: str
    """The call's idempotency key."""
    tool: str
    side_effect: str
    arguments_digest: str
    status: Literal["started", "finished", "failed"]
    at: datetime
    result_json: str | None = None


@dataclass(slots=True)
class ApprovalRequested:
    """A call (or a whole step) waits for a human decision, which ``cadenza approve`` or ``reject`` gives."""

    run_id: str
    scope: ScopePath
    agent: str
    approval_id: str
    tool: str
    """The tool's name, or ``(step)`` for a whole step."""
    arguments_digest: str
    arguments_json: str
    reason: str
    at: datetime


@dataclass(slots=True)
class BudgetReserved:
    """The worst case of one model call is held on the budgets covering it, before the call starts."""

    run_id: str
    reservation_id: str
    agent: str
    tokens: int
    usd: float


@dataclass(slots=True)
class BudgetSettled:
    """A reserved call ended: its reservation (``tokens``, ``usd``: the worst case) is replaced by what it cost."""

    run_id: str
    reservation_id: str
    agent: str
    tokens: int
    usd: float
    usage: Usage


@dataclass(slots=True)
class MessageRejected:
    """An envelope was refused (forged, tampered, replayed, stale, another run's): what it claimed, and why."""

    run_id: str
    reason: str
    detail: str
    sender: str | None
    recipient: str | None
    nonce: str | None
    kind: str | None


@dataclass(slots=True)
class PeerMessageSent:
    """A member of a peer group sent a message (or the group handed its entry agent the goal)."""

    run_id: str
    group: ScopePath
    """The path of the peer group in its run."""
    message: PeerMessage
    signed: bool


@dataclass(slots=True)
class PeerMessageHandled:
    """A member of a peer group handled a message: its replies were recorded with this, and it is not handled again."""

    run_id: str
    group: ScopePath
    agent: str
    message_id: str
    at: datetime
    answer: str | None = None
    """The final answer the member gave in this turn, if it gave one."""
    usage: Usage = field(default_factory=Usage)
    """What the turn spent, recorded with it: a resumed group counts it without handling the message again."""


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
    | MessageSent
    | ModelCalled
    | ToolCalled
    | ToolCallRecorded
    | ApprovalRequested
    | BudgetReserved
    | BudgetSettled
    | MessageRejected
    | PeerMessageSent
    | PeerMessageHandled
    | ModelDelta
    | ToolStarted
)
Report = MessageSent | ModelCalled | ToolCalled
"""The events of each message and call inside a step. Only sinks that say they want them (``wants_reports``) get
them, and workers build them only when one does: most sinks follow runs, plans and steps, and a report per call
would cost every step of a fan-out."""
Kept = (ToolCallRecorded | ApprovalRequested | BudgetReserved | BudgetSettled | MessageRejected | PeerMessageSent
        | PeerMessageHandled)
"""What the run keeps of the inside of its steps, whoever watches: the records (journal, audit log) always get
them; the observers only when they want reports, as with `Report`."""
Progress = ModelDelta | ToolStarted
"""What a worker is doing as it does it: its model's answer piece by piece, a tool call as it starts. Only sinks
that say they want it (``wants_progress``: a stream's reader) get it, and workers make it only when one does."""
Detail = Report | Kept | Progress
"""Every event from inside a step: what a sink that follows runs, plans and steps skips."""

StreamEvent = Event | FinalResult[Any]
"""What a streamed run yields: every event of the run, as a sink that wants them all gets them, then its result."""

EventSink = Callable[[Event], None]
"""Receives every event synchronously, in order; must be quick and must not raise. It gets the reports too
(`Report`) when it has a true ``wants_reports`` attribute, and the progress of each step (`Progress`) when it has
a true ``wants_progress``."""
