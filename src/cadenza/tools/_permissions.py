"""Who may call which tool: scopes granted to agents, ceilings set by teams, checked by the runtime on every call.

A tool declares the scopes it needs (``read``, ``write``, ``network``, ``exec`` or custom names);
an agent is granted scopes; a call runs only if the agent holds every scope the tool needs.
The model's request is never the authority: the check happens in the agent loop, after the
model asked and before anything runs, and a denied call goes back to the model as a denial.

Delegation never widens rights. A team may carry a ceiling (``Supervisor(scopes=...)``): every
agent under it, nested teams and spawned agents included, holds at most the intersection of
its own grant and every ceiling above it. Each team narrows the ceiling it was given by its own
(`narrowed`) and hands the result to its steps in their `StepContext`, so an agent holds what the
teams that run it allow, wherever it runs.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ("denial", "narrowed")


def narrowed(ceiling: frozenset[str] | None, scopes: Iterable[str] | None) -> frozenset[str] | None:
    """A team's ``scopes`` as a ceiling within the ``ceiling`` already in force (None: no ceiling)."""
    if scopes is None:
        return ceiling
    return frozenset(scopes) if ceiling is None else ceiling & frozenset(scopes)


def denial(agent: str, tool: str, needs: frozenset[str], granted: frozenset[str],
           ceiling: frozenset[str] | None) -> str | None:
    """Why ``agent``, granted ``granted`` under ``ceiling``, may not call ``tool``, or None when it may."""
    held = granted if ceiling is None else granted & ceiling
    missing = needs - held
    if not missing:
        return None
    capped = sorted(missing & granted)
    why = f" (granted, but above the ceiling of its team: {', '.join(capped)})" if capped else ""
    return (f"permission denied: agent {agent!r} may not call {tool!r}: it needs scope "
            f"{', '.join(sorted(missing))}, and the agent holds {', '.join(sorted(held)) or 'no scopes'}{why}")
