"""The one exception tree of cadenza, and the codes that name failures as data.

Every error a user can cause or meet derives from `CadenzaError`, so
``except CadenzaError`` is always enough. Programmer misuse, run-time
failures and control-flow signals are kept apart::

    CadenzaError
    ├── ConfigError              the programmer or a workflow file said something invalid
    │   ├── WorkflowError        a workflow file: names the file, the key path and what was expected
    │   ├── HierarchyError       teams nested deeper than allowed
    │   └── UnknownModelError    a model string names no registered provider (also a ModelError)
    ├── PlanError                a plan (hand-written or from a model) is not a valid DAG
    │   └── SpawnError           a planner proposed agents or tools it may not have
    ├── ModelError               a model provider failed (``retryable`` says whether to try again)
    │   └── CircuitOpen          a provider endpoint failed repeatedly: calls fail fast for a while
    ├── BudgetExceeded           a token or USD budget has no room for another model call
    ├── ToolError                a tool failed or was called with invalid arguments
    │   └── ToolArgumentsError   the model's arguments were not JSON or did not fit the tool's schema
    ├── OutputValidationError    a final output did not fit the declared output type
    ├── MaxTurnsExceeded         an agent kept calling tools past ``max_turns``
    ├── StepTimeout              a step ran past its deadline
    ├── WorkerLost               the worker process running a step died (retryable)
    ├── StoreError               the run store cannot be opened, read or written
    │   └── RunNotFound          no run with that id in the store
    ├── BusError                 the message bus of a peer group is closed, unreachable or was given bad input
    ├── ResumeError              a run cannot be resumed: finished, or its team changed since
    ├── ApprovalError            no pending approval to decide, or a decision was given twice
    ├── WorkspaceConflict        a compare-and-set write lost to another writer
    └── SecurityError            a signed envelope was refused (``rejection`` says why and what it claimed)
        ├── ForgedSender         signed by another agent's key, or naming a sender the envelope does not
        │   └── UnknownAgent     a key this run never issued, or revoked
        ├── TamperedMessage      the signature does not match: something changed after sealing
        ├── ReplayedMessage      an envelope already opened, sent again
        ├── StaleMessage         issued outside the freshness window
        ├── WrongRun             another run's envelope
        ├── WrongRecipient       addressed to another agent
        ├── WrongKind            another kind of message than expected
        └── MalformedMessage     not an envelope, or its payload not the expected message

    ApprovalRequired             a signal, not a failure: a call waits for a human, so its step pauses

Cancellation is not an error: a cancelled run raises ``asyncio.CancelledError``
after cancelling every running step.

A failure that travels as data (`cadenza.ErrorInfo`, in a Result, an event or the store) carries
an `ErrorCode`: code compares codes, never class names. Each class above has its own; outcomes
that no exception stands for (a run that failed because its steps did, one waiting for a
decision) have theirs too.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar, Literal

if TYPE_CHECKING:
    from ._usage import Usage

__all__ = (
    "CODES_BY_TYPE",
    "CadenzaError",
    "ErrorCode",
    "code_of",
    "ConfigError",
    "HierarchyError",
    "MaxTurnsExceeded",
    "ModelError",
    "OutputValidationError",
    "PlanError",
    "SpawnError",
    "ApprovalError",
    "BudgetExceeded",
    "BusError",
    "CircuitOpen",
    "ApprovalRequired",
    "ResumeError",
    "RunNotFound",
    "StepTimeout",
    "WorkerLost",
    "StoreError",
    "ToolArgumentsError",
    "ToolError",
    "WorkspaceConflict",
    "ForgedSender",
    "MalformedMessage",
    "ReplayedMessage",
    "SecurityError",
    "StaleMessage",
    "TamperedMessage",
    "UnknownAgent",
    "WrongKind",
    "WrongRecipient",
    "WrongRun",
    "UnknownModelError",
    "WorkflowError",
)


class ErrorCode(StrEnum):
    """What kind of failure an `ErrorInfo` describes; stored as its value, so never renamed once released."""

    CONFIG = "config"
    WORKFLOW = "workflow"
    HIERARCHY = "hierarchy"
    UNKNOWN_MODEL = "unknown_model"
    PLAN = "plan"
    SPAWN = "spawn"
    MODEL = "model"
    CIRCUIT_OPEN = "circuit_open"
    BUDGET_EXCEEDED = "budget_exceeded"
    TOOL = "tool"
    TOOL_ARGUMENTS = "tool_arguments"
    OUTPUT_VALIDATION = "output_validation"
    MAX_TURNS = "max_turns"
    STEP_TIMEOUT = "step_timeout"
    WORKER_LOST = "worker_lost"
    STORE = "store"
    RUN_NOT_FOUND = "run_not_found"
    BUS = "bus"
    RESUME = "resume"
    APPROVAL = "approval"
    WORKSPACE_CONFLICT = "workspace_conflict"
    SECURITY = "security"
    FORGED_SENDER = "forged_sender"
    UNKNOWN_AGENT = "unknown_agent"
    TAMPERED_MESSAGE = "tampered_message"
    REPLAYED_MESSAGE = "replayed_message"
    STALE_MESSAGE = "stale_message"
    WRONG_RUN = "wrong_run"
    WRONG_RECIPIENT = "wrong_recipient"
    WRONG_KIND = "wrong_kind"
    MALFORMED_MESSAGE = "malformed_message"
    APPROVAL_REQUIRED = "approval_required"
    """A call or step waits for a human decision (the step is ``waiting``)."""
    WAITING = "waiting"
    """A team or run waits for decisions on some of its steps."""
    UNCERTAIN_TOOL_CALLS = "uncertain_tool_calls"
    """A resumed run waits: at-most-once calls were in flight when it stopped."""
    RUN_FAILED = "run_failed"
    """No step succeeded, or the ones the result needed failed."""
    PARTIAL_RUN = "partial_run"
    """Some steps did not complete."""
    PEER_LIMIT = "peer_limit"
    """A peer group reached its message, round or time limit without a final answer."""
    PEER_LOOP = "peer_loop"
    """A peer group's agents repeated themselves, or went back and forth past the limit: it was stopped."""
    PEER_DEADLOCK = "peer_deadlock"
    """Every agent of a peer group was idle, with no message in flight and no final answer."""
    UNREPORTED = "unreported"
    """A worker reported a failure without saying what it was."""
    INTERNAL = "internal"
    """An exception that is not cadenza's: a bug, or code (a tool, a model adapter) that broke its contract."""


class CadenzaError(Exception):
    """Root of every error cadenza raises on purpose.

    Attributes:
        code: what kind of failure this is, as data (`ErrorInfo.code`).
        retryable: whether running the same work again may succeed.
        spent: what the failed work had already spent (model calls made before it gave up), so that a
            run's totals and budgets count it; None when nothing was spent.
    """

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL
    retryable: bool = False
    spent: Usage | None = None


class ConfigError(CadenzaError):
    """Invalid configuration given by the programmer."""

    code = ErrorCode.CONFIG


class WorkflowError(ConfigError):
    """A workflow file is invalid.

    The message names the file, the key path (``agents[2].model``) and what was expected.
    """

    code = ErrorCode.WORKFLOW

    def __init__(self, message: str, *, path: str | None = None, problems: list[str] | None = None) -> None:
        self.path = path
        self.problems = problems or [message]
        super().__init__(message)


class PlanError(CadenzaError):
    """A plan is not a valid DAG; ``problems`` lists every one found, not only the first."""

    code = ErrorCode.PLAN

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        self.problems = problems or [message]
        super().__init__(message)


class SpawnError(PlanError):
    """A spawn proposal asked for more agents or tools than the supervisor may grant."""

    code = ErrorCode.SPAWN


class HierarchyError(ConfigError):
    """Teams are nested deeper than the configured limit, or a team contains itself."""

    code = ErrorCode.HIERARCHY


class ModelError(CadenzaError):
    """A model call failed; ``retryable`` is set by the provider adapter.

    Attributes:
        retryable: a transient failure (rate limit, overload, 5xx, timeout, dropped connection).
        retry_after: seconds the provider asked to wait (its ``Retry-After``), if it said.
        status: the HTTP status of the failed call, if there was a response.
    """

    code = ErrorCode.MODEL

    def __init__(
        self, message: str, *, retryable: bool = False, retry_after: float | None = None, status: int | None = None
    ) -> None:
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
        super().__init__(message)


class UnknownModelError(ConfigError, ModelError):
    """A model string names no registered provider."""

    code = ErrorCode.UNKNOWN_MODEL

    def __init__(self, message: str) -> None:
        ModelError.__init__(self, message, retryable=False)


class CircuitOpen(ModelError):
    """The breaker of a provider endpoint and model is open: the call was not made.

    Not retryable in place (that is what the breaker prevents); a fallback model is tried instead.
    """

    code = ErrorCode.CIRCUIT_OPEN

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, retryable=False, retry_after=retry_after)


class BudgetExceeded(CadenzaError):
    """A budget (tokens or USD, of a run, team or agent) has no room for the next model call.

    Calls already running finish; no new one starts, and the run ends ``partial`` saying which budget.
    """

    code = ErrorCode.BUDGET_EXCEEDED


class ToolError(CadenzaError):
    """A tool failed, was unknown, or got arguments that do not fit its schema."""

    code = ErrorCode.TOOL


class ToolArgumentsError(ToolError):
    """The model called a tool with arguments that are not JSON or do not fit its schema (the model's fault)."""

    code = ErrorCode.TOOL_ARGUMENTS


class OutputValidationError(CadenzaError):
    """The model's final output did not validate against the agent's output type."""

    code = ErrorCode.OUTPUT_VALIDATION


class MaxTurnsExceeded(CadenzaError):
    """An agent's model/tool loop ran past its ``max_turns``."""

    code = ErrorCode.MAX_TURNS


class StepTimeout(CadenzaError):
    """A step ran past its timeout; retryable, since a slow call may be quicker next time."""

    code = ErrorCode.STEP_TIMEOUT

    retryable = True


class WorkerLost(CadenzaError):
    """The worker process running a step died (a tool crashed it, it was killed, its node was lost); retryable, in a
    new process."""

    code = ErrorCode.WORKER_LOST

    retryable = True


class StoreError(CadenzaError):
    """The run store cannot be opened, read or written: unreachable, locked, corrupt, or from a newer cadenza.

    Nothing already stored is lost: the failed write was a transaction that did not happen.
    """

    code = ErrorCode.STORE


class RunNotFound(StoreError):
    """No run with the given id is in the store."""

    code = ErrorCode.RUN_NOT_FOUND

    def __init__(self, run_id: str, where: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run {run_id!r} in {where}")


class BusError(CadenzaError):
    """The message bus of a peer group cannot be used: it is closed or unreachable, or was given what it cannot
    take (an empty message, a negative wait).

    A message the bus accepted stays with it: a failure here loses nothing already published.
    """

    code = ErrorCode.BUS


class ResumeError(CadenzaError):
    """A run cannot be resumed: it has finished, or its workflow or plan changed (``changes`` says what)."""

    code = ErrorCode.RESUME

    def __init__(self, message: str, *, changes: list[str] | None = None) -> None:
        self.changes = changes or []
        super().__init__(message)


class ApprovalError(CadenzaError):
    """There is no pending approval to decide for that run and step (or it was decided already)."""

    code = ErrorCode.APPROVAL


class WorkspaceConflict(CadenzaError):
    """A compare-and-set write to the shared workspace found a different version than expected.

    Retryable: read the key again, then write against its current version.
    """

    code = ErrorCode.WORKSPACE_CONFLICT

    retryable = True

    def __init__(self, key: str, expected: int, actual: int) -> None:
        self.key = key
        self.expected = expected
        self.actual = actual
        super().__init__(f"workspace key {key!r} is at version {actual}, not {expected}: another writer changed it")


class ApprovalRequired(Exception):
    """A control-flow signal: a tool call needs a human decision, so its step pauses (status ``waiting``).

    The agent turns it into a ``waiting`` Result; the run stops durably and continues after
    ``cadenza approve`` / ``cadenza reject`` and a resume.
    """

    code: ClassVar[ErrorCode] = ErrorCode.APPROVAL_REQUIRED

    def __init__(self, message: str, *, approval_id: str) -> None:
        self.approval_id = approval_id
        super().__init__(message)


RejectReason = Literal["forged", "tampered", "replayed", "stale", "wrong_run", "wrong_recipient", "wrong_kind", "malformed"]
"""Why an envelope was refused."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an envelope was refused, with what it claimed (unverified): one audit record's worth."""

    reason: RejectReason
    detail: str
    """What was wrong, in words."""
    sender: str | None = None
    nonce: str | None = None
    key_id: str | None = None
    run_id: str | None = None
    recipient: str | None = None
    kind: str | None = None


class SecurityError(CadenzaError):
    """An envelope was refused; ``rejection`` (and ``reason``) say why and what it claimed."""

    code = ErrorCode.SECURITY

    reason: RejectReason = "tampered"

    def __init__(self, rejection: Rejection) -> None:
        self.rejection = rejection
        self.reason = rejection.reason
        super().__init__(f"{rejection.reason}: {rejection.detail} (sender {rejection.sender!r}, nonce {rejection.nonce!r})")


class ForgedSender(SecurityError):
    """The signing key belongs to another agent, or the payload names a sender the envelope does not."""

    code = ErrorCode.FORGED_SENDER


class UnknownAgent(ForgedSender):
    """No key (or identity) of that id was issued by this run's keyring, or it was revoked."""

    code = ErrorCode.UNKNOWN_AGENT


class TamperedMessage(SecurityError):
    """The signature does not match: the payload or some field changed after sealing."""

    code = ErrorCode.TAMPERED_MESSAGE


class ReplayedMessage(SecurityError):
    """The nonce was opened before: the same envelope sent twice."""

    code = ErrorCode.REPLAYED_MESSAGE


class StaleMessage(SecurityError):
    """Issued too long ago, or too far in the future, for the keyring's window."""

    code = ErrorCode.STALE_MESSAGE


class WrongRun(SecurityError):
    """The envelope carries another run's id."""

    code = ErrorCode.WRONG_RUN


class WrongRecipient(SecurityError):
    """The envelope is addressed to another agent."""

    code = ErrorCode.WRONG_RECIPIENT


class WrongKind(SecurityError):
    """The envelope holds another kind of message than the receiver expects."""

    code = ErrorCode.WRONG_KIND


class MalformedMessage(SecurityError):
    """The envelope, or its payload, is not valid JSON of the expected shape."""

    code = ErrorCode.MALFORMED_MESSAGE


def _codes_by_name() -> dict[str, ErrorCode]:
    found: dict[str, ErrorCode] = {"ApprovalRequired": ErrorCode.APPROVAL_REQUIRED}
    stack: list[type[CadenzaError]] = [CadenzaError]
    while stack:
        cls = stack.pop()
        found[cls.__name__] = cls.code
        stack.extend(cls.__subclasses__())
    found.update(Waiting=ErrorCode.WAITING, UncertainToolCalls=ErrorCode.UNCERTAIN_TOOL_CALLS,
                 RunFailed=ErrorCode.RUN_FAILED, PartialRun=ErrorCode.PARTIAL_RUN, UnknownError=ErrorCode.UNREPORTED)
    return found


CODES_BY_TYPE: dict[str, ErrorCode] = _codes_by_name()
"""The code of each failure by the ``type`` name it was stored with before codes existed (older stored rows)."""


def code_of(exc: BaseException) -> ErrorCode:
    """The code of an exception: its class's for cadenza's, `ErrorCode.INTERNAL` for any other."""
    code = getattr(type(exc), "code", None)
    return code if isinstance(code, ErrorCode) else ErrorCode.INTERNAL
