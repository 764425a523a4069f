"""The store contract: every run is recorded as it happens, so it can be shown, exported and resumed.

Two implementations pass one conformance suite (``tests/stores``): `SQLiteStore`, the
embedded default, and `PostgresStore`, for many processes and machines. The orchestrator is
the only writer of a run; it hands the store batches of writes (`Store.apply`) so that many
steps finishing together cost one commit. Everything a row holds that is a message or a
value is JSON text, encoded once by the caller, so both stores keep it byte for byte.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Literal, Self

from .._ids import ScopePath
from .._status import RunStatus
from .._workspace_entry import WorkspaceEntry

__all__ = (
    "SCHEMA_VERSION",
    "AddAudit",
    "AddMessage",
    "AddSpawn",
    "ApprovalRow",
    "ApprovalStatus",
    "AuditHead",
    "AuditRecord",
    "MessageRow",
    "PlanRow",
    "PutApproval",
    "PutAuditHead",
    "PutPlan",
    "PutReservation",
    "PutRun",
    "PutStep",
    "PutToolCall",
    "PutUsage",
    "ReservationRow",
    "ReservationStatus",
    "RunRow",
    "RunSnapshot",
    "RunState",
    "SpawnRow",
    "StepRow",
    "Store",
    "ToolCallRow",
    "ToolCallStatus",
    "UsageRow",
    "WorkspaceEntry",
    "Write",
)

SCHEMA_VERSION = 3
"""The version of the tables this cadenza writes; a store written by a newer one is refused on open."""

RunState = RunStatus
"""The stored state of a run: a `cadenza._status.RunStatus` (``running`` also for a run whose process died)."""

ToolCallStatus = Literal["started", "finished", "failed", "uncertain"]
ApprovalStatus = Literal["pending", "approved", "rejected", "used"]
ReservationStatus = Literal["open", "settled"]


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True, slots=True)
class RunRow:
    """One run: what was asked, of which team, and how it ended."""

    run_id: str
    workflow: str
    """The workflow's (or top team's) name."""
    goal: str
    status: RunState
    started_at: datetime
    finished_at: datetime | None = None
    source: str | None = None
    """The workflow file the run came from, as given on the command line; None for Python-built teams."""
    input_json: str = "null"
    fingerprint_json: str = "{}"
    """The team as it was (agents, instructions, models, tools, written plans): compared on resume."""
    fingerprint_hash: str = ""
    usage_json: str = "{}"
    """Totals so far (a `Usage` as JSON)."""
    output_json: str | None = None
    error_json: str | None = None
    """An `ErrorInfo` as JSON, when the run failed, is partial, or waits."""
    cadenza_version: str = ""


@dataclass(frozen=True, slots=True)
class PlanRow:
    """The plan one team ran; ``scope`` is the team's path in the run (``lead``, ``lead/review``)."""

    run_id: str
    scope: ScopePath
    plan_json: str
    plan_hash: str
    source: Literal["planner", "static"]


@dataclass(frozen=True, slots=True)
class StepRow:
    """One step of one team's plan, as it stands."""

    run_id: str
    scope: ScopePath
    """The path of the step's team; the step's own path is that, then ``step_id``."""
    step_id: str
    agent: str
    status: str
    """A `StepStatus` (``pending``, ``running``, ``success``, ``partial``, ``failed``, ``skipped``,
    ``cancelled``, ``waiting``)."""
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    result_json: str | None = None
    """The final `Result` of the step, once it has one."""
    error_json: str | None = None
    skip_reason: str | None = None
    usage_json: str = "{}"
    """Everything the step spent, retried attempts included."""


@dataclass(frozen=True, slots=True)
class MessageRow:
    """A message that crossed between agents (a `Task`, a `Result`, a `PeerMessage`), or a peer's note that it
    handled one (``handled``: the message id and the agent), in the order they were recorded."""

    run_id: str
    scope: ScopePath
    """A team's path for a Task or Result; a peer group's path for its messages."""
    step_id: str | None
    kind: Literal["task", "result", "message", "handled"]
    body_json: str
    at: datetime
    seq: int = 0
    """Assigned by the store on insert (ascending per run); ignored when writing."""


@dataclass(frozen=True, slots=True)
class SpawnRow:
    """An agent a planner proposed and the spawn policy granted, for this run only."""

    run_id: str
    scope: ScopePath
    name: str
    proposal_json: str


@dataclass(frozen=True, slots=True)
class UsageRow:
    """What a team spent outside its steps: ``source`` is ``planner`` or ``synthesizer``."""

    run_id: str
    scope: ScopePath
    source: str
    usage_json: str


@dataclass(frozen=True, slots=True)
class ToolCallRow:
    """A tool call with side effects, recorded before it runs (``started``) and when it ends.

    ``key`` is the idempotency key: stable for the same call of the same step in the same run.
    """

    run_id: str
    key: str
    scope: ScopePath
    """The path of the step that made the call (its team's path, then ``step_id``)."""
    step_id: str
    agent: str
    tool: str
    side_effect: str
    arguments_digest: str
    status: ToolCallStatus
    at: datetime
    result_json: str | None = None


@dataclass(frozen=True, slots=True)
class ApprovalRow:
    """A decision a human must make before a call runs; bound to one call (tool and argument digest)."""

    run_id: str
    approval_id: str
    scope: ScopePath
    """The path of the step that asked (its team's path, then ``step_id``)."""
    step_id: str
    agent: str
    tool: str
    arguments_digest: str
    arguments_json: str
    reason: str
    """Why it was asked: ``approval required`` or ``uncertain: ...`` for an interrupted at-most-once call."""
    status: ApprovalStatus
    requested_at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class ReservationRow:
    """The worst case of one model call under the run's budget, durable before the call starts.

    A provider bills a call once it has the request, whether or not the caller lives to read the
    reply. So a call is reserved (``open``) before it is sent and ``settled`` with what it really
    cost; a reservation still open when its process died counts at its worst case when the run is
    resumed, so what a run is billed across all its processes stays within its budget.
    """

    run_id: str
    reservation_id: str
    agent: str
    """Who made the call (the request's agent, or the model's name)."""
    worst_tokens: int
    worst_usd: float
    status: ReservationStatus
    tokens: int = 0
    """What the call really used, once settled."""
    usd: float = 0.0


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One entry of a run's append-only audit log, chained to the one before it by ``prev_hash``.

    Written by `cadenza._audit.AuditLog`, which assigns ``seq`` and computes the hashes, so the
    chain is defined by the run's writer and the store only keeps it (see `cadenza._audit`).
    """

    run_id: str
    seq: int
    """0, 1, 2, ... per run, without gaps."""
    at: datetime
    kind: str
    """What happened: ``message.sent``, ``tool.called``, ``approval.decided``, ... (an `AuditKind`)."""
    actor: str
    """The agent path that acted (``lead/writer``), or ``user`` for a human."""
    subject: str
    """What it acted on: the tool, the recipient, the approval id."""
    detail_json: str
    """A JSON object, in the canonical encoding the hash covers."""
    prev_hash: str
    """The previous record's ``hash``; for seq 0 the genesis value derived from the run id."""
    hash: str
    """sha256 (hex) over the canonical encoding of every other field."""


@dataclass(frozen=True, slots=True)
class AuditHead:
    """The last record of a run's audit log, stored beside it: truncating the log leaves the head behind."""

    run_id: str
    seq: int
    hash: str


@dataclass(frozen=True, slots=True)
class RunSnapshot:
    """Everything needed to show, export or resume a run (messages are read separately: they are many)."""

    run: RunRow
    plans: list[PlanRow]
    steps: list[StepRow]
    spawned: list[SpawnRow]
    usage: list[UsageRow]
    tool_calls: list[ToolCallRow]
    approvals: list[ApprovalRow]
    reservations: list[ReservationRow] = field(default_factory=list)


# --------------------------------------------------------------------------- writes


@dataclass(frozen=True, slots=True)
class PutRun:
    """Insert the run, or replace every field of it."""

    row: RunRow


@dataclass(frozen=True, slots=True)
class PutPlan:
    """Insert or replace the plan of ``(run_id, scope)``."""

    row: PlanRow


@dataclass(frozen=True, slots=True)
class PutStep:
    """Insert or replace the step ``(run_id, scope, step_id)``."""

    row: StepRow


@dataclass(frozen=True, slots=True)
class AddMessage:
    """Append a message."""

    row: MessageRow


@dataclass(frozen=True, slots=True)
class AddSpawn:
    """Insert a spawned agent (a second insert of the same ``(run_id, scope, name)`` replaces it)."""

    row: SpawnRow


@dataclass(frozen=True, slots=True)
class PutUsage:
    """Insert or replace ``(run_id, scope, source)``."""

    row: UsageRow


@dataclass(frozen=True, slots=True)
class PutToolCall:
    """Insert or replace the tool call ``(run_id, key)``."""

    row: ToolCallRow


@dataclass(frozen=True, slots=True)
class PutApproval:
    """Insert an approval request; one that exists already (same ``(run_id, approval_id)``) is kept as it is."""

    row: ApprovalRow


@dataclass(frozen=True, slots=True)
class PutReservation:
    """Insert or replace the reservation ``(run_id, reservation_id)``."""

    row: ReservationRow


@dataclass(frozen=True, slots=True)
class AddAudit:
    """Append an audit record; one whose ``(run_id, seq)`` is stored already fails the whole batch.

    Append-only is enforced, not assumed: a second writer of one run's log (or a writer started
    from a stale head) gets a `StoreError` instead of silently keeping or replacing a record.
    """

    row: AuditRecord


@dataclass(frozen=True, slots=True)
class PutAuditHead:
    """Insert or replace the head of ``run_id``'s audit log; written in the batch of the records it covers."""

    row: AuditHead


Write = (
    PutRun | PutPlan | PutStep | AddMessage | AddSpawn | PutUsage | PutToolCall | PutApproval | AddAudit | PutAuditHead
    | PutReservation
)


# --------------------------------------------------------------------------- the contract


class Store(ABC):
    """Durable runs. Open it (``async with store:``) before use.

    Every method raises `StoreError` (or a subclass) for a problem of the store itself:
    unreachable, locked, corrupt, or written by a newer cadenza. Nothing already stored is
    lost or overwritten by a failed call: writes are transactions.
    """

    url: str
    """Where the store is, with any password removed: safe to print."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @abstractmethod
    async def open(self) -> None:
        """Connect and bring the tables to `SCHEMA_VERSION` (migrating older ones; refusing newer ones)."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections; idempotent."""

    @abstractmethod
    async def apply(self, writes: Sequence[Write]) -> None:
        """Apply ``writes`` in order, in one transaction: all are durable when this returns, or none."""

    @abstractmethod
    async def get_run(self, run_id: str) -> RunRow:
        """The run. Raises `RunNotFound` naming the id."""

    @abstractmethod
    async def list_runs(self, *, limit: int = 50) -> list[RunRow]:
        """The newest runs first."""

    @abstractmethod
    async def snapshot(self, run_id: str) -> RunSnapshot:
        """The run with its plans, steps (in insertion order), spawned agents, usage, tool calls and approvals."""

    @abstractmethod
    async def messages(self, run_id: str) -> list[MessageRow]:
        """Every message of the run in the order recorded (ascending ``seq``)."""

    @abstractmethod
    async def audit(self, run_id: str) -> list[AuditRecord]:
        """Every audit record of the run, ascending ``seq``; empty for a run without any (or no such run)."""

    @abstractmethod
    async def audit_head(self, run_id: str) -> AuditHead | None:
        """The head of the run's audit log (its last record's seq and hash), or None before its first record."""

    @abstractmethod
    async def workspace_get(self, run_id: str, key: str) -> WorkspaceEntry | None:
        """The latest version of ``key``, or None."""

    @abstractmethod
    async def workspace_items(self, run_id: str) -> list[WorkspaceEntry]:
        """The latest version of every key, sorted by key."""

    @abstractmethod
    async def workspace_history(self, run_id: str, key: str) -> list[WorkspaceEntry]:
        """Every version of ``key``, oldest first: who wrote what, when."""

    @abstractmethod
    async def workspace_put(
        self, run_id: str, key: str, value_json: str, *, expected_version: int, writer: str
    ) -> WorkspaceEntry:
        """Write version ``expected_version + 1`` of ``key`` if its latest version is ``expected_version``.

        ``expected_version`` is 0 for a key that must not exist yet. Raises `WorkspaceConflict`
        (with the current version) when another writer got there first; nothing is overwritten.
        """

    @abstractmethod
    async def decide_approval(
        self, run_id: str, approval_id: str, *, approved: bool, by: str, note: str | None = None
    ) -> ApprovalRow:
        """Record a human's decision on a pending approval. Raises `ApprovalError` if it is not pending."""

    @abstractmethod
    async def use_approval(self, run_id: str, approval_id: str) -> bool:
        """Mark an approved approval as used; True only for the one caller that used it (an approval is used once)."""
