"""The tools through which agents reach a run's shared workspace (`cadenza._workspace`).

`workspace_tools` gives readers ``read_workspace`` and ``list_workspace``, and writers ``write_workspace`` as
well: a compare-and-set whose conflict the model is told, so that it reads again instead of overwriting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._errors import ToolError, WorkspaceConflict
from ._tools import Tool, ToolContext

if TYPE_CHECKING:
    from .._workspace import Workspace

__all__ = ("list_workspace", "read_workspace", "workspace_tools", "write_workspace")


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
