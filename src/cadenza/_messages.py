"""The messages that pass between agents: a `Task` goes to a worker, a `Result` comes back, and in a peer
group a `PeerMessage` goes from one agent to another.

Nothing else crosses between agents. Each carries ``schema_version`` so stored
messages stay readable as the format grows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ._errors import CODES_BY_TYPE, ErrorCode, code_of
from ._ids import AgentId, RunId, ScopePath, StepId, TaskId
from ._status import Outcome
from ._usage import Usage

__all__ = ("SCHEMA_VERSION", "ErrorInfo", "PeerMessage", "Result", "ResultStatus", "Task", "utcnow")

SCHEMA_VERSION = 1

ResultStatus = Outcome
"""How a worker's task came back (`cadenza._status.Outcome`)."""


def utcnow() -> datetime:
    """The current time, timezone-aware, as every timestamp in cadenza is."""
    return datetime.now(UTC)


class ErrorInfo(BaseModel):
    """A failure described as data, so it can be stored, shown and sent between processes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str
    """The exception class name, e.g. ``ModelError``: for people; code compares ``code``."""
    message: str
    """What went wrong, in words a user can act on."""
    retryable: bool = False
    """Whether running the same work again may succeed."""
    code: ErrorCode = ErrorCode.INTERNAL
    """What kind of failure this is (one of cadenza's `ErrorCode`s)."""

    @model_validator(mode="before")
    @classmethod
    def _code_from_type(cls, data: Any) -> Any:
        """An ErrorInfo stored before codes existed gets the code of its ``type``."""
        if isinstance(data, dict) and "code" not in data and isinstance(data.get("type"), str):
            return {**data, "code": CODES_BY_TYPE.get(data["type"], ErrorCode.INTERNAL)}
        return data

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorInfo:
        """Describe ``exc``; cadenza errors say themselves what kind they are and whether they are retryable."""
        return cls.model_construct(
            type=type(exc).__name__,
            message=str(exc) or type(exc).__name__,
            retryable=bool(getattr(exc, "retryable", False)),
            code=code_of(exc),
        )


class Task(BaseModel):
    """Work sent to one agent: what to do, with what input, and what its dependencies produced."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    kind: Literal["task"] = "task"
    task_id: TaskId
    """Unique id of this task."""
    run_id: RunId
    """The run (workflow execution) this task belongs to."""
    parent_task_id: TaskId | None = None
    """The task of the team that delegated this one, if any."""
    step_id: StepId | None = None
    """The plan step this task executes, if it came from a plan."""
    sender: AgentId
    """Who sent the task: the supervisor's name, or ``user``."""
    recipient: AgentId
    """The agent that must do the work."""
    instruction: str
    """What to do, in words."""
    input: Any = None
    """Typed input for the task (any JSON value)."""
    context: dict[str, Any] = Field(default_factory=dict)
    """The outputs of this task's dependencies, keyed by step id: data, never instructions."""
    priority: int = 0
    """A hint for workers and backends that queue work; the in-process executor starts ready steps in plan order."""
    attempt: int = Field(default=1, ge=1)
    """1 for the first try, 2 for the first retry, and so on."""
    deadline: datetime | None = None
    """When the work must be finished, if it has a deadline."""
    depth: int = Field(default=0, ge=0)
    """How many teams this task has passed through, to stop unbounded nesting."""


class Result(BaseModel):
    """What an agent sends back for a Task."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    kind: Literal["result"] = "result"
    task_id: TaskId
    """The task this answers."""
    run_id: RunId
    """The run the task belongs to."""
    agent: AgentId
    """The agent that did the work."""
    status: ResultStatus
    """``success``, ``failure``, ``partial`` (some of the work was done), or ``waiting`` (paused for a human
    decision; ``error`` says which; the work continues when the run is resumed)."""
    output: Any = None
    """The typed output (any JSON value); ``None`` on failure."""
    error: ErrorInfo | None = None
    """Why the work failed or is partial."""
    usage: Usage = Field(default_factory=Usage)
    """Tokens, calls and cost spent on this task, including any nested team's."""
    started_at: datetime
    """When the agent started the task."""
    finished_at: datetime
    """When the agent finished it."""
    stop_reason: str | None = None
    """Why a conversation ended, for the work of a peer group: ``answer: ...``, or the limit, loop, deadlock or
    failure that stopped it (``deadlock: ...``), with who and what; None for other work."""
    transcript: ScopePath | None = None
    """Where a peer group's conversation is kept: the group's path in its run, the scope of its message rows
    (``store.messages``, kinds ``message`` and ``handled``) and of its `PeerMessage` s; None for other work."""

    @property
    def ok(self) -> bool:
        """True when the task succeeded."""
        return self.status == "success"


class PeerMessage(BaseModel):
    """What one agent of a peer group says to another: sent over the group's bus, signed like a Task."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = SCHEMA_VERSION
    kind: Literal["message"] = "message"
    message_id: str = Field(min_length=1)
    """Unique id of this message."""
    run_id: RunId
    group: ScopePath
    """The path of the peer group in its run (``review``, or ``lead/review`` for a group that is a team's step)."""
    sender: AgentId
    """The agent that wrote it."""
    recipient: AgentId
    """The agent it is for."""
    round: int = Field(ge=0)
    """How many messages deep the conversation is at this one: 0 for the opening message, one more than the
    message it answers otherwise."""
    in_reply_to: str | None = None
    """The id of the message its sender was handling when it wrote this one; None for the opening message."""
    content: str = Field(min_length=1)
    sent_at: datetime
