"""The one exception tree of cadenza.

Every error a user can cause or meet derives from `CadenzaError`, so
``except CadenzaError`` is always enough. Programmer misuse, run-time
failures and control-flow signals are kept apart::

    CadenzaError
    ├── ConfigError              the programmer or a workflow file said something invalid
    │   └── WorkflowError        a workflow file: names the file, the key path and what was expected
    ├── PlanError                a plan (hand-written or from a model) is not a valid DAG
    │   └── SpawnError           a planner proposed agents or tools it may not have
    ├── HierarchyError           teams nested deeper than allowed
    ├── ModelError               a model provider failed (``retryable`` says whether to try again)
    │   ├── UnknownModelError    a model string names no registered provider
    │   └── CircuitOpen          a provider endpoint failed repeatedly: calls fail fast for a while
    ├── BudgetExceeded           a token or USD budget has no room for another model call
    ├── ToolError                a tool failed or was called with invalid arguments
    │   └── ToolArgumentsError   the model's arguments were not JSON or did not fit the tool's schema
    ├── StoreError               the run store cannot be opened, read or written
    │   └── RunNotFound          no run with that id in the store
    ├── ResumeError              a run cannot be resumed: finished, or its team changed since
    ├── ApprovalError            no pending approval to decide, or a decision was given twice
    ├── WorkspaceConflict        a compare-and-set write lost to another writer
    ├── SecurityError            a signed envelope was refused (``rejection`` says why and what it claimed)
    │   ├── ForgedSender         signed by another agent's key, or naming a sender the envelope does not
    │   │   └── UnknownAgent     a key this run never issued, or revoked
    │   ├── TamperedMessage      the signature does not match: something changed after sealing
    │   ├── ReplayedMessage      an envelope already opened, sent again
    │   ├── StaleMessage         issued outside the freshness window
    │   ├── WrongRun             another run's envelope
    │   ├── WrongRecipient       addressed to another agent
    │   ├── WrongKind            another kind of message than expected
    │   └── MalformedMessage     not an envelope, or its payload not the expected message
    └── ApprovalRequired         (a signal, not a failure) a call waits for a human; its step pauses
    ├── OutputValidationError    a final output did not fit the declared output type
    ├── MaxTurnsExceeded         an agent kept calling tools past ``max_turns``
    └── StepTimeout              a step ran past its deadline

Cancellation is not an error: a cancelled run raises ``asyncio.CancelledError``
after cancelling every running step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ._messages import Usage

__all__ = (
    "CadenzaError",
    "ConfigError",
    "HierarchyError",
    "MaxTurnsExceeded",
    "ModelError",
    "OutputValidationError",
    "PlanError",
    "SpawnError",
    "ApprovalError",
    "BudgetExceeded",
    "CircuitOpen",
    "ApprovalRequired",
    "ResumeError",
    "RunNotFound",
    "StepTimeout",
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


class CadenzaError(Exception):
    """Root of every error cadenza raises on purpose.

    Attributes:
        retryable: whether running the same work again may succeed.
        spent: what the failed work had already spent (model calls made before it gave up), so that a
            run's totals and budgets count it; None when nothing was spent.
    """

    retryable: bool = False
    spent: Usage | None = None


class ConfigError(CadenzaError):
    """Invalid configuration given by the programmer."""


class WorkflowError(ConfigError):
    """A workflow file is invalid.

    The message names the file, the key path (``agents[2].model``) and what was expected.
    """

    def __init__(self, message: str, *, path: str | None = None, problems: list[str] | None = None) -> None:
        self.path = path
        self.problems = problems or [message]
        super().__init__(message)


class PlanError(CadenzaError):
    """A plan is not a valid DAG; ``problems`` lists every one found, not only the first."""

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        self.problems = problems or [message]
        super().__init__(message)


class SpawnError(PlanError):
    """A spawn proposal asked for more agents or tools than the supervisor may grant."""


class HierarchyError(ConfigError):
    """Teams are nested deeper than the configured limit, or a team contains itself."""


class ModelError(CadenzaError):
    """A model call failed; ``retryable`` is set by the provider adapter.

    Attributes:
        retryable: a transient failure (rate limit, overload, 5xx, timeout, dropped connection).
        retry_after: seconds the provider asked to wait (its ``Retry-After``), if it said.
        status: the HTTP status of the failed call, if there was a response.
    """

    def __init__(
        self, message: str, *, retryable: bool = False, retry_after: float | None = None, status: int | None = None
    ) -> None:
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
        super().__init__(message)


class UnknownModelError(ConfigError, ModelError):
    """A model string names no registered provider."""

    def __init__(self, message: str) -> None:
        ModelError.__init__(self, message, retryable=False)


class CircuitOpen(ModelError):
    """The breaker of a provider endpoint and model is open: the call was not made.

    Not retryable in place (that is what the breaker prevents); a fallback model is tried instead.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, retryable=False, retry_after=retry_after)


class BudgetExceeded(CadenzaError):
    """A budget (tokens or USD, of a run, team or agent) has no room for the next model call.

    Calls already running finish; no new one starts, and the run ends ``partial`` saying which budget.
    """


class ToolError(CadenzaError):
    """A tool failed, was unknown, or got arguments that do not fit its schema."""


class ToolArgumentsError(ToolError):
    """The model called a tool with arguments that are not JSON or do not fit its schema (the model's fault)."""


class OutputValidationError(CadenzaError):
    """The model's final output did not validate against the agent's output type."""


class MaxTurnsExceeded(CadenzaError):
    """An agent's model/tool loop ran past its ``max_turns``."""


class StepTimeout(CadenzaError):
    """A step ran past its timeout; retryable, since a slow call may be quicker next time."""

    retryable = True


class StoreError(CadenzaError):
    """The run store cannot be opened, read or written: unreachable, locked, corrupt, or from a newer cadenza.

    Nothing already stored is lost: the failed write was a transaction that did not happen.
    """


class RunNotFound(StoreError):
    """No run with the given id is in the store."""

    def __init__(self, run_id: str, where: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run {run_id!r} in {where}")


class ResumeError(CadenzaError):
    """A run cannot be resumed: it has finished, or its workflow or plan changed (``changes`` says what)."""

    def __init__(self, message: str, *, changes: list[str] | None = None) -> None:
        self.changes = changes or []
        super().__init__(message)


class ApprovalError(CadenzaError):
    """There is no pending approval to decide for that run and step (or it was decided already)."""


class WorkspaceConflict(CadenzaError):
    """A compare-and-set write to the shared workspace found a different version than expected.

    Retryable: read the key again, then write against its current version.
    """

    retryable = True

    def __init__(self, key: str, expected: int, actual: int) -> None:
        self.key = key
        self.expected = expected
        self.actual = actual
        super().__init__(f"workspace key {key!r} is at version {actual}, not {expected}: another writer changed it")


class ApprovalRequired(CadenzaError):
    """A control-flow signal: a tool call needs a human decision, so its step pauses (status ``waiting``).

    The agent turns it into a ``waiting`` Result; the run stops durably and continues after
    ``cadenza approve`` / ``cadenza reject`` and a resume.
    """

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

    reason: RejectReason = "tampered"

    def __init__(self, rejection: Rejection) -> None:
        self.rejection = rejection
        self.reason = rejection.reason
        super().__init__(f"{rejection.reason}: {rejection.detail} (sender {rejection.sender!r}, nonce {rejection.nonce!r})")


class ForgedSender(SecurityError):
    """The signing key belongs to another agent, or the payload names a sender the envelope does not."""


class UnknownAgent(ForgedSender):
    """No key (or identity) of that id was issued by this run's keyring, or it was revoked."""


class TamperedMessage(SecurityError):
    """The signature does not match: the payload or some field changed after sealing."""


class ReplayedMessage(SecurityError):
    """The nonce was opened before: the same envelope sent twice."""


class StaleMessage(SecurityError):
    """Issued too long ago, or too far in the future, for the keyring's window."""


class WrongRun(SecurityError):
    """The envelope carries another run's id."""


class WrongRecipient(SecurityError):
    """The envelope is addressed to another agent."""


class WrongKind(SecurityError):
    """The envelope holds another kind of message than the receiver expects."""


class MalformedMessage(SecurityError):
    """The envelope, or its payload, is not valid JSON of the expected shape."""
