"""The shared workspace of a run: versioned JSON values that its agents read and write.

Parallel workers that share notes must never silently overwrite each other, so every
write is a compare-and-set against the version the writer read, and every version is
kept with the name of its writer. Agents reach it through tools they are granted:
`workspace_tools` gives readers ``read_workspace`` and ``list_workspace``, and writers
``write_workspace`` as well.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .._errors import ToolError, WorkspaceConflict
from ._tools import Tool, ToolContext

if TYPE_CHECKING:
    from .._workspace_entry import WorkspaceEntry

__all__ = ("Workspace", "WorkspaceAccess", "WorkspaceValue", "workspace_tools")


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


def _workspace(context: ToolContext) -> Workspace:
    if context.workspace is None:
        raise ToolError("this run has no shared workspace: it is not recorded in a store")
    return context.workspace


async def read_workspace(key: str, context: ToolContext) -> dict[str, Any]:
    """Read a key of the team's shared workspace.

    Args:
        key: the key to read.
    """
    found = await _workspace(context).get(key)
    if found is None:
        return {"key": key, "exists": False, "version": 0}
    return {"key": key, "exists": True, "version": found.version, "value": found.value, "writer": found.writer}


async def list_workspace(context: ToolContext) -> list[dict[str, Any]]:
    """List every key of the team's shared workspace with its version and last writer."""
    return [{"key": v.key, "version": v.version, "writer": v.writer} for v in await _workspace(context).items()]


async def write_workspace(key: str, value: Any, expected_version: int, context: ToolContext) -> dict[str, Any]:
    """Write a key of the team's shared workspace, if nobody changed it since you read it.

    Args:
        key: the key to write.
        value: any JSON value.
        expected_version: the version you read (0 for a new key); a mismatch means someone else wrote first.
    """
    try:
        written = await _workspace(context).put(key, value, expected_version=expected_version)
    except WorkspaceConflict as exc:
        raise ToolError(f"{exc}; read it again and write against version {exc.actual}") from None
    return {"key": key, "version": written.version}


def workspace_tools(*, write: bool = True) -> list[Tool]:
    """Tools over the run's shared workspace: reading and listing, plus writing when ``write`` is true."""
    tools = [Tool(read_workspace, scopes={"read"}), Tool(list_workspace, scopes={"read"})]
    if write:
        tools.append(Tool(write_workspace, scopes={"write"}, side_effect="idempotent"))
    return tools
