"""Who may call which tool: scopes granted to agents, ceilings set by teams, checked by the runtime on every call.

A tool declares the scopes it needs (``read``, ``write``, ``network``, ``exec`` or custom names);
an agent is granted scopes; a call runs only if the agent holds every scope the tool needs.
The model's request is never the authority: the check happens in the agent loop, after the
model asked and before anything runs, and a denied call goes back to the model as a denial.

Delegation never widens rights. A team may carry a ceiling (``Supervisor(scopes=...)``): every
agent under it, nested teams and spawned agents included, holds at most the intersection of
its own grant and every ceiling above it. Ceilings travel in a context variable, set by each
team around its steps, so an agent sees the ceilings of the team that runs it in this run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ("ceiling", "current_ceiling", "denial", "effective_scopes")

current_ceiling: ContextVar[frozenset[str] | None] = ContextVar("cadenza_scope_ceiling", default=None)
"""The most any agent in the running team may hold; None for no ceiling."""


@contextmanager
def ceiling(scopes: Iterable[str] | None) -> Iterator[None]:
    """Run the body under ``scopes`` as a ceiling, within any ceiling already in force."""
    if scopes is None:
        yield
        return
    outer = current_ceiling.get()
    limit = frozenset(scopes) if outer is None else outer & frozenset(scopes)
    token = current_ceiling.set(limit)
    try:
        yield
    finally:
        current_ceiling.reset(token)


def effective_scopes(granted: frozenset[str]) -> frozenset[str]:
    """What an agent granted ``granted`` holds here, under the ceilings of the teams running it."""
    limit = current_ceiling.get()
    return granted if limit is None else granted & limit


def denial(agent: str, tool: str, needs: frozenset[str], granted: frozenset[str]) -> str | None:
    """Why ``agent`` may not call ``tool``, or None when it may."""
    held = effective_scopes(granted)
    missing = needs - held
    if not missing:
        return None
    capped = sorted(missing & granted)
    why = f" (granted, but above the ceiling of its team: {', '.join(capped)})" if capped else ""
    return (f"permission denied: agent {agent!r} may not call {tool!r}: it needs scope "
            f"{', '.join(sorted(missing))}, and the agent holds {', '.join(sorted(held)) or 'no scopes'}{why}")
