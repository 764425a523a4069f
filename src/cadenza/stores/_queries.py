"""The reads and the workspace and approval statements, written once for both dialects.

They are written with ``?`` and numbered (``$1``, ``$2``) for PostgreSQL by `Queries.build`.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, fields

from .._errors import ApprovalError, StoreError
from ._tables import (
    APPROVALS,
    AUDIT,
    AUDIT_HEADS,
    MESSAGES,
    PLANS,
    RESERVATIONS,
    RUNS,
    SPAWNS,
    STEPS,
    TOOL_CALLS,
    USAGE,
    WORKSPACE,
    Dialect,
)

__all__ = ("Queries", "approval_error", "audit_conflict")

_WS = ", ".join(WORKSPACE.columns)


@dataclass(frozen=True, slots=True)
class Queries:
    """Every statement a store runs besides the inserts of `apply`."""

    run: str = f"SELECT {', '.join(RUNS.columns)} FROM runs WHERE run_id = ?"
    list_runs: str = f"SELECT {', '.join(RUNS.columns)} FROM runs ORDER BY {RUNS.order} LIMIT ?"
    plans: str = PLANS.select("sqlite")
    steps: str = STEPS.select("sqlite")
    spawns: str = SPAWNS.select("sqlite")
    usage: str = USAGE.select("sqlite")
    tool_calls: str = TOOL_CALLS.select("sqlite")
    approvals: str = APPROVALS.select("sqlite")
    reservations: str = RESERVATIONS.select("sqlite")
    messages: str = MESSAGES.select("sqlite")
    audit: str = AUDIT.select("sqlite")
    audit_head: str = AUDIT_HEADS.select("sqlite")
    workspace_latest: str = f"SELECT {_WS} FROM workspace WHERE run_id = ? AND key = ? ORDER BY version DESC LIMIT 1"
    workspace_items: str = (
        f"SELECT {_WS} FROM workspace AS w WHERE run_id = ? AND version = "
        "(SELECT max(version) FROM workspace WHERE run_id = w.run_id AND key = w.key) ORDER BY key"
    )
    workspace_history: str = WORKSPACE.select("sqlite", ("run_id", "key"))
    workspace_version: str = "SELECT coalesce(max(version), 0) FROM workspace WHERE run_id = ? AND key = ?"
    workspace_insert: str = WORKSPACE.insert("sqlite")
    approval: str = APPROVALS.select("sqlite", ("run_id", "approval_id"))
    approval_status: str = "SELECT status FROM approvals WHERE run_id = ? AND approval_id = ?"
    decide: str = (
        "UPDATE approvals SET status = ?, decided_at = ?, decided_by = ?, note = ? "
        "WHERE run_id = ? AND approval_id = ? AND status = 'pending'"
    )
    use: str = "UPDATE approvals SET status = 'used' WHERE run_id = ? AND approval_id = ? AND status = 'approved'"

    @classmethod
    def build(cls, dialect: Dialect) -> Queries:
        """The statements with the placeholders of ``dialect``."""
        if dialect == "sqlite":
            return cls()
        return cls(**{f.name: _numbered(getattr(cls(), f.name)) for f in fields(cls)})


def _numbered(sql: str) -> str:
    counter = itertools.count(1)
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)


def approval_error(run_id: str, approval_id: str, status: str | None) -> ApprovalError:
    """Why the approval cannot be decided: it does not exist, or it is not pending any more."""
    if status is None:
        return ApprovalError(f"cannot decide approval {approval_id!r}: run {run_id!r} has no such approval")
    return ApprovalError(
        f"cannot decide approval {approval_id!r} of run {run_id!r}: it is {status!r}, not 'pending' "
        "(an approval is decided once)"
    )


def audit_conflict(where: str, detail: str = "") -> StoreError:
    """An audit record was written at a seq that holds one already: the batch was refused, as append-only demands."""
    return StoreError(
        f"the store {where} refused an audit record: the run's audit log already has a record at that seq"
        f"{f' ({detail})' if detail else ''}; the log is append-only, so nothing of the batch was written. "
        "Two writers appended to one run's log, or the log's head was removed: "
        "check it with `cadenza audit verify RUN_ID`"
    )
