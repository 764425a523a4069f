"""The port: how a worker asks its run for anything stateful.

A worker is handed a frozen `StepContext` (where it is, what it may do) and a `RunPort`. Whatever
changes the run's state goes through the port: budget reservations around each model call, the
record of a tool call with side effects, a human's approval, the shared workspace, and the events of
what the worker did (its model and tool calls), which the run's sinks turn into audit records,
metrics and log lines. The run decides and writes; the worker never holds the store, the run's budgets
or its keyring. A port that cannot do what is asked raises (fail closed): an operation is
refused with the reason, never skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Protocol

from .models.pricing import Price

if TYPE_CHECKING:
    from ._budget import Budget
    from ._events import Progress, Report
    from ._step_context import StepContext
    from ._usage import Usage
    from ._workspace import Workspace

__all__ = ("STEP", "ApprovalAsk", "Claim", "Lease", "ModelPrice", "RunPort", "ToolCallRecord", "ToolServer")

STEP = "(step)"
"""The name approvals of whole steps carry where a tool call's carry the tool's."""


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """A model a call may reach, and the price it declares for itself (None: the run's price table decides)."""

    model: str
    price: Price | None


@dataclass(frozen=True, slots=True)
class Claim:
    """The most one model call may spend, as the worker works it out before the call."""

    agent: str
    input_tokens: int
    """At most this many input tokens (the request's bytes and a margin per message)."""
    output_tokens: int
    """The call's output bound (``max_tokens``), which the provider enforces."""
    models: tuple[ModelPrice, ...]
    """Every model the call may reach (a fallback chain has several): its worst case in USD is the dearest."""

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class Lease:
    """The reservation the run granted one model call, until it is settled. Only the issuing port reads it."""

    held: Any = None
    """The issuing port's record of the reservation (None: no budget covers the call)."""
    reservation: str | None = None
    """The id its sinks know the reservation by (None: nobody was told of it)."""


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    """One moment of a guarded tool call, as the worker reports it for the run to record."""

    key: str
    """The call's idempotency key."""
    tool: str
    side_effect: str
    arguments_digest: str
    status: Literal["started", "finished", "failed"]
    result_json: str | None = None


@dataclass(frozen=True, slots=True)
class ApprovalAsk:
    """A decision a call (or a whole step) needs from a human, bound to that exact call."""

    name: str
    """The tool's name, or `STEP` for a step."""
    arguments: Mapping[str, Any]
    arguments_digest: str
    key: str
    """The idempotency key of the call the decision is for."""
    uncertain: bool
    """The call was in flight when an earlier process stopped: the decision is whether to run it again."""
    failed: bool = False
    """The call ran before, on an approval that it used, and failed: the decision is whether to run it again."""


class ToolServer(Protocol):
    """A server a step draws tools from (an MCP server): the run opens it once and closes it when the run ends."""

    @property
    def name(self) -> str: ...

    @property
    def is_open(self) -> bool: ...

    async def __aenter__(self) -> Any: ...

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None: ...


class RunPort(Protocol):
    """The run, as a worker reaches it. One port serves every step of a team; each call names its step."""

    @property
    def observed(self) -> bool:
        """Whether any of the run's sinks wants what a worker does (model and tool calls): it reports them only then."""
        ...

    @property
    def streaming(self) -> bool:
        """Whether any of the run's sinks wants each step's progress as it happens (a stream's reader): a worker
        streams its model's answers and tells its tool calls as they start only then."""
        ...

    def report(self, event: Report) -> None:
        """Tell the run how a model or tool call ended; its sinks (the audit log, metrics) record it."""
        ...

    def progress(self, event: Progress) -> None:
        """Tell the run's readers what a worker is doing as it does it; nothing records it."""
        ...

    async def reserve(self, ctx: StepContext, claim: Claim, budget: Budget | None) -> Lease:
        """Hold the worst case of one model call on every budget covering the step (``ctx.budgets``) and the
        agent's own ``budget``, waiting for calls in flight if need be.

        Raises:
            BudgetExceeded: a covering budget has no room; the call must not be made.
            ConfigError: a USD budget covers the call and a model it may reach has no price.
        """
        ...

    async def settle(self, lease: Lease, usage: Usage | None) -> None:
        """The call of ``lease`` ended: replace its reservation with what it cost (None: it failed before
        any cost was reported, or was cancelled and may have been billed)."""
        ...

    async def record_call(self, ctx: StepContext, call: ToolCallRecord) -> None:
        """Record a guarded tool call; returns once a ``started`` or ``finished`` record is durable."""
        ...

    async def approve(self, ctx: StepContext, ask: ApprovalAsk) -> None:
        """Return if a human approved this exact call, using the approval up.

        Raises:
            ApprovalRequired: no decision yet (the step pauses; the request is recorded).
            ToolError: it was rejected, its approval was used already, or the run cannot keep approvals.
        """
        ...

    def workspace(self, ctx: StepContext, writer: str) -> Workspace | None:
        """The run's shared workspace as ``writer`` sees it; None when the run keeps none."""
        ...

    async def open_servers(self, servers: Sequence[ToolServer]) -> None:
        """Open each closed server for the rest of the run (the run closes what it opened when it ends)."""
        ...
