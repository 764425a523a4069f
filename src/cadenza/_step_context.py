"""Where a piece of work runs within its run: the value every worker is handed with its Task.

A worker must be runnable from what it is given, in this process or another: so the run's
state reaches it as a frozen value (`StepContext`) and a port (``_port.RunPort``) through which
it asks the run for anything stateful. Nothing is looked up in a global or a context variable.

Every field is required: a context that arrives without one (a serialised context from an
older sender, a hand-built one) is refused when it is read, never filled with a default that
would fail open (no ceiling, no record of the calls an earlier process made).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import TypeAdapter

from ._ids import ScopePath, split_path

__all__ = ("PriorCall", "StepContext")

CallStatus = Literal["started", "finished", "failed", "uncertain"]


@dataclass(frozen=True, slots=True)
class PriorCall:
    """A tool call of this step that an earlier attempt recorded, in this process or an earlier one."""

    key: str
    """The call's idempotency key."""
    status: CallStatus
    result_json: str | None
    """What a finished call returned, as JSON."""


@dataclass(frozen=True, slots=True)
class StepContext:
    """One attempt of one step, as its worker sees it: where it is, what it may do, what came before."""

    run_id: str
    scope: ScopePath
    """The step's path in the run: its team's path, a slash, the step id (``lead/review``); a team's own
    work (planning, synthesis) and a lone agent's run use the team's or agent's path."""
    step_id: str
    agent: str
    """The worker the step is assigned to."""
    attempt: int
    task_id: str
    """The Task of this attempt (log lines and audit records carry it)."""
    ceiling: frozenset[str] | None
    """The most any agent here may hold: the intersection of every ceiling of the teams above (None: no team
    above set one). An agent holds its own grant within it."""
    budgets: tuple[str, ...]
    """The budgets covering the step, outermost first (``run``, ``team 'lead'``): each model call reserves its
    worst case on them through the port. Empty when none does (an agent's own budget is the agent's to claim)."""
    prior_calls: tuple[PriorCall, ...]
    """Tool calls of this step that earlier attempts recorded, in any process of the run (empty on a first attempt)."""
    trace: tuple[tuple[str, str], ...]
    """The W3C trace context of the step's span (empty when tracing is off), so work done elsewhere joins it."""
    turn: str | None
    """The id of the peer message a member of a peer group is handling; None for other work. A member takes
    many turns at one path, so its tool calls are told apart (and found again on resume) by the message."""

    @property
    def team(self) -> ScopePath:
        """The path of the team that runs the step (a top team's or lone agent's own path for its own work)."""
        return split_path(self.scope)[0] or self.scope

    @classmethod
    def alone(cls, run_id: str, worker: str, task_id: str, budgets: tuple[str, ...]) -> StepContext:
        """The context of a worker that is the whole run (a lone agent's or peer group's run, a plan made on its
        own): at the top of the run under its own name, on its first attempt, with no team's ceiling above it."""
        return cls(run_id=run_id, scope=ScopePath(worker), step_id=worker, agent=worker, attempt=1, task_id=task_id,
                   ceiling=None, budgets=budgets, prior_calls=(), trace=(), turn=None)

    @property
    def calls_at(self) -> str:
        """Where this work's tool calls are, for their idempotency keys: the step's path, and for a peer group
        member's turn the message it handles."""
        return self.scope if self.turn is None else f"{self.scope}#{self.turn}"

    def prior_call(self, key: str) -> PriorCall | None:
        """What an earlier attempt recorded of the call with idempotency ``key``, if anything."""
        for call in self.prior_calls:
            if call.key == key:
                return call
        return None

    def effective_scopes(self, granted: frozenset[str]) -> frozenset[str]:
        """What an agent granted ``granted`` holds here: its grant, within the ceilings above it."""
        return granted if self.ceiling is None else granted & self.ceiling

    def to_json(self) -> bytes:
        """The context as JSON, for a worker in another process."""
        return _ADAPTER.dump_json(self)

    @classmethod
    def from_json(cls, data: str | bytes) -> StepContext:
        """A context read back from `to_json`.

        Raises:
            pydantic.ValidationError: a field is missing or malformed; the error names it.
        """
        return _ADAPTER.validate_json(data)


_ADAPTER: TypeAdapter[StepContext] = TypeAdapter(StepContext)
