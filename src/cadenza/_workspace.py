"""The shared workspace of a run: versioned JSON values that its agents read and write.

Parallel workers that share notes must never silently overwrite each other, so every
write is a compare-and-set against the version the writer read, and every version is
kept with the name of its writer. Agents reach it through tools they are granted
(`tools._workspace_tools`); the run hands a worker its `Workspace` through the port.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._workspace_entry import WorkspaceEntry

__all__ = ("Workspace", "WorkspaceAccess", "WorkspaceValue")


@dataclass(frozen=True, slots=True)
class WorkspaceValue:
    """One version of one key: the value, its version, and who wrote it."""

    key: str
    value: Any
    version: int
    writer: str

    @classmethod
    def from_entry(cls, entry: WorkspaceEntry) -> WorkspaceValue:
        return cls(entry.key, json.loads(entry.value_json), entry.version, entry.writer)


class WorkspaceAccess(Protocol):
    """Where a workspace's versions are kept: the run's `Store`, or a worker process's port back to the run."""

    async def workspace_get(self, run_id: str, key: str) -> WorkspaceEntry | None: ...

    async def workspace_items(self, run_id: str) -> list[WorkspaceEntry]: ...

    async def workspace_put(self, run_id: str, key: str, value_json: str, *, expected_version: int,
                            writer: str) -> WorkspaceEntry: ...


class Workspace:
    """A run's workspace in its store, as seen by one writer (an agent, or ``user``)."""

    __slots__ = ("run_id", "store", "writer")

    def __init__(self, store: WorkspaceAccess, run_id: str, *, writer: str = "user") -> None:
        self.store = store
        self.run_id = run_id
        self.writer = writer

    async def get(self, key: str) -> WorkspaceValue | None:
        """The latest version of ``key``, or None if nobody wrote it."""
        entry = await self.store.workspace_get(self.run_id, key)
        return None if entry is None else WorkspaceValue.from_entry(entry)

    async def items(self) -> list[WorkspaceValue]:
        """The latest version of every key."""
        return [WorkspaceValue.from_entry(e) for e in await self.store.workspace_items(self.run_id)]

    async def put(self, key: str, value: Any, *, expected_version: int) -> WorkspaceValue:
        """Write ``value`` if ``key`` is still at ``expected_version`` (0: it must not exist yet).

        Raises:
            WorkspaceConflict: another writer changed the key first; nothing was overwritten.
        """
        text = json.dumps(value, ensure_ascii=False)
        entry = await self.store.workspace_put(self.run_id, key, text, expected_version=expected_version,
                                               writer=self.writer)
        return WorkspaceValue.from_entry(entry)
