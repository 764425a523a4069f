"""Run stores: the contract (`Store` and its rows and writes), SQLite by default, PostgreSQL as an extra.

`PostgresStore` loads on first use, so importing this package never imports asyncpg.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ._url import classify
from .base import (
    SCHEMA_VERSION,
    AddAudit,
    AddMessage,
    AddSpawn,
    ApprovalRow,
    ApprovalStatus,
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
    RunSnapshot,
    RunState,
    SpawnRow,
    StepRow,
    Store,
    ToolCallRow,
    ToolCallStatus,
    UsageRow,
    WorkspaceEntry,
    Write,
)
from .sqlite import SQLiteStore

if TYPE_CHECKING:
    from .postgres import PostgresStore

__all__ = (
    "DEFAULT_STORE",
    "SCHEMA_VERSION",
    "STORE_ENV",
    "AddAudit",
    "AddMessage",
    "AddSpawn",
    "ApprovalRow",
    "ApprovalStatus",
    "AuditHead",
    "AuditRecord",
    "MessageRow",
    "PlanRow",
    "PostgresStore",
    "PutApproval",
    "PutAuditHead",
    "PutPlan",
    "PutReservation",
    "PutRun",
    "PutStep",
    "PutToolCall",
    "PutUsage",
    "ReservationRow",
    "RunRow",
    "RunSnapshot",
    "RunState",
    "SQLiteStore",
    "SpawnRow",
    "StepRow",
    "Store",
    "ToolCallRow",
    "ToolCallStatus",
    "UsageRow",
    "WorkspaceEntry",
    "Write",
    "open_store",
)

DEFAULT_STORE = ".cadenza/runs.db"
"""Where runs go when nothing else is said: relative to the current directory."""
STORE_ENV = "CADENZA_STORE"
"""The environment variable naming the store when no URL is given."""


def open_store(url: str | os.PathLike[str] | None = None) -> Store:
    """The store ``url`` names; it is only constructed: open it with ``async with store:``.

    Without ``url``, the ``CADENZA_STORE`` environment variable names it, else `DEFAULT_STORE`.
    Accepted: a file path, ``sqlite:///absolute/path.db``, ``sqlite:relative/path.db``,
    ``postgresql://user@host:port/database`` or ``postgres://...``, with an optional
    ``?schema=NAME`` for PostgreSQL.

    Raises:
        StoreError: any other form, saying which forms are accepted.
    """
    if url is None:
        url = os.environ.get(STORE_ENV) or DEFAULT_STORE
    if isinstance(url, os.PathLike):
        return SQLiteStore(url)
    kind, location = classify(url)
    if kind == "postgres":
        return _postgres_store()(location)
    return SQLiteStore(location)


def _postgres_store() -> type[PostgresStore]:
    from .postgres import PostgresStore

    return PostgresStore


def __getattr__(name: str) -> Any:
    if name == "PostgresStore":
        return _postgres_store()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
