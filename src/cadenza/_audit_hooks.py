"""Where the runtime reports what the audit log records; a no-op until a run has an audit log.

(Placeholder wiring: replaced by the run's `AuditLog` once it lands.)
"""

from __future__ import annotations

from typing import Any

__all__ = ("audit_tool_call",)


def audit_tool_call(agent: str, tool: str, arguments: dict[str, Any], outcome: str, detail: str = "") -> None:
    """Record one tool call (denied ones too) in the running run's audit log, if it has one."""
    return None
