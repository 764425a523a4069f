"""One version of one key of a run's shared workspace: the value a store keeps and a port carries.

It lives below both, so that a worker reading the workspace through its port needs nothing from `stores`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ("WorkspaceEntry",)


@dataclass(frozen=True, slots=True)
class WorkspaceEntry:
    """One version of one key of a run's shared workspace."""

    run_id: str
    key: str
    version: int
    """1 for the first write of a key; each write adds one."""
    value_json: str
    writer: str
    """The agent (or ``user``) that wrote this version."""
    at: datetime
