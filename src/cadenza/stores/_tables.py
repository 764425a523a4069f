"""The tables a store reads and writes, described once for both SQL dialects.

A table's columns are the fields of its row dataclass, in order, so a read builds the row
with ``Row(*values)`` and a write passes the fields positionally. Only the DDL that creates
the columns lives elsewhere (`_schema`), frozen per schema version, since a migration must
never change once released.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Generic, Literal, TypeVar

from .base import (
    AddAudit,
    AddMessage,
    AddSpawn,
    ApprovalRow,
    AuditHead,
    AuditRecord,
    MessageRow,
    PlanRow,
    PutApproval,
    PutAuditHead,
    PutPlan,
    PutReservation,
    PutRun,
    PutStep,
    PutToolCall,
    PutUsage,
    ReservationRow,
    RunRow,
    SpawnRow,
    StepRow,
    ToolCallRow,
    UsageRow,
    WorkspaceEntry,
)

__all__ = (
    "APPROVALS",
    "AUDIT",
    "AUDIT_HEADS",
    "MESSAGES",
    "PLANS",
    "RESERVATIONS",
    "RUNS",
    "SPAWNS",
    "STEPS",
    "TIMESTAMPS",
    "TOOL_CALLS",
    "USAGE",
    "WORKSPACE",
    "WRITES",
    "Dialect",
    "Table",
)

Dialect = Literal["sqlite", "postgres"]

TIMESTAMPS = frozenset({"started_at", "finished_at", "at", "requested_at", "decided_at"})
"""Columns holding datetimes: ISO-8601 text in SQLite, ``timestamptz`` in PostgreSQL."""

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Table(Generic[R]):
    """One table: its row type, its key and what a second write of the same key does."""

    name: str
    row: type[R]
    key: tuple[str, ...]
    on_conflict: Literal["replace", "keep", "append"]
    """``replace`` every non-key column, ``keep`` the stored row, or ``append``: always a new row, and a second
    write of its key (if it has one) is an error, in a batch of its own or in the same batch."""
    order: str
    """The ORDER BY of a read of one run: ``ord`` is the position of the first insert."""
    assigned: tuple[str, ...] = ()
    """Columns the store assigns on insert (a message's ``seq``): in the row, never written."""
    columns: tuple[str, ...] = field(init=False)
    """Every column, in the order of the row's fields."""
    written: tuple[str, ...] = field(init=False)
    """The columns a write gives: every column but the ``assigned`` ones."""

    def __post_init__(self) -> None:
        names = tuple(f.name for f in fields(self.row))  # type: ignore[arg-type]
        object.__setattr__(self, "columns", names)
        object.__setattr__(self, "written", tuple(n for n in names if n not in self.assigned))

    def insert(self, dialect: Dialect) -> str:
        """The statement a write of one row runs, with the upsert its Write type documents."""
        names = ", ".join(self.written)
        return f"INSERT INTO {self.name} ({names}) VALUES ({placeholders(dialect, len(self.written))}){self.upsert()}"

    def upsert(self) -> str:
        """The ``ON CONFLICT`` clause (with a leading space) of an insert into this table; empty to append."""
        if self.on_conflict == "replace":
            updates = ", ".join(f"{c} = excluded.{c}" for c in self.written if c not in self.key)
            return f" ON CONFLICT ({', '.join(self.key)}) DO UPDATE SET {updates}"
        if self.on_conflict == "keep":
            return f" ON CONFLICT ({', '.join(self.key)}) DO NOTHING"
        return ""

    def select(self, dialect: Dialect, where: tuple[str, ...] = ("run_id",)) -> str:
        """Every column of the rows matching ``where`` (all equalities), in this table's order."""
        mark = placeholders(dialect, len(where)).split(", ")
        condition = " AND ".join(f"{c} = {m}" for c, m in zip(where, mark, strict=True))
        return f"SELECT {', '.join(self.columns)} FROM {self.name} WHERE {condition} ORDER BY {self.order}"


def placeholders(dialect: Dialect, count: int) -> str:
    """``?, ?`` for SQLite, ``$1, $2`` for PostgreSQL."""
    if dialect == "sqlite":
        return ", ".join("?" * count)
    return ", ".join(f"${i}" for i in range(1, count + 1))


RUNS = Table("runs", RunRow, ("run_id",), "replace", "started_at DESC, run_id DESC")
PLANS = Table("plans", PlanRow, ("run_id", "scope"), "replace", "ord")
STEPS = Table("steps", StepRow, ("run_id", "scope", "step_id"), "replace", "ord")
MESSAGES = Table("messages", MessageRow, (), "append", "seq", assigned=("seq",))
SPAWNS = Table("spawns", SpawnRow, ("run_id", "scope", "name"), "replace", "ord")
USAGE = Table("usage", UsageRow, ("run_id", "scope", "source"), "replace", "ord")
TOOL_CALLS = Table("tool_calls", ToolCallRow, ("run_id", "key"), "replace", "ord")
APPROVALS = Table("approvals", ApprovalRow, ("run_id", "approval_id"), "keep", "ord")
WORKSPACE = Table("workspace", WorkspaceEntry, ("run_id", "key", "version"), "append", "key, version")
AUDIT = Table("audit", AuditRecord, ("run_id", "seq"), "append", "seq")
"""``seq`` comes from the writer (it is part of the hash chain), so it is written, and never twice."""
AUDIT_HEADS = Table("audit_heads", AuditHead, ("run_id",), "replace", "run_id")
RESERVATIONS = Table("reservations", ReservationRow, ("run_id", "reservation_id"), "replace", "ord")

WRITES: dict[type[Any], Table[Any]] = {
    PutRun: RUNS,
    PutPlan: PLANS,
    PutStep: STEPS,
    AddMessage: MESSAGES,
    AddSpawn: SPAWNS,
    PutUsage: USAGE,
    PutToolCall: TOOL_CALLS,
    PutApproval: APPROVALS,
    AddAudit: AUDIT,
    PutAuditHead: AUDIT_HEADS,
    PutReservation: RESERVATIONS,
}
"""The table each Write type goes to."""
