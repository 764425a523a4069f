"""What a team is, as data: stored with each run and compared when the run is resumed.

Resuming reuses finished steps, which is only sound if the team that would redo them
is the team that did them. The fingerprint holds everything that shapes a step's
output (instructions, models, tools, output types, written plans, nested teams) and
nothing that only shapes how fast it runs (limits, timeouts, retries), so a user may
resume with more concurrency but not with a different writer.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .backends.base import Worker

__all__ = ("describe", "diff", "digest")

Json = dict[str, Any]


def describe(worker: Worker) -> Json:
    """The fingerprint of an agent, a team, or any other worker."""
    from ._agent import Agent
    from ._supervisor import Supervisor

    if isinstance(worker, Supervisor):
        return _team(worker)
    if isinstance(worker, Agent):
        return _agent(worker)
    return {"kind": type(worker).__name__, "description": worker.description}


def _agent(agent: Any) -> Json:
    tools = {
        name: {"description": t.description, "parameters": t.spec.parameters, "scopes": sorted(t.scopes)}
        for name, t in sorted(agent.tools.items())
    }
    return {
        "kind": "agent",
        "instructions": agent.instructions,
        "model": agent.model.name,
        "tools": tools,
        "output": agent._output_schema.json_schema if agent._output_schema is not None else "str",
        "max_turns": agent.max_turns,
    }


def _team(team: Any) -> Json:
    spawn = team.spawn
    return {
        "kind": "team",
        "planner_model": team.planner.model.name,
        "synthesizer": _agent(team.synthesizer),
        "plan": team.static_plan.model_dump(mode="json") if team.static_plan is not None else None,
        "spawn": None if spawn is None else {
            "max_agents": spawn.max_agents,
            "tiers": {tier: m if isinstance(m, str) else m.name for tier, m in sorted(spawn.tiers.items())},
            "tools": spawn.tool_names,
        },
        "workers": {name: describe(w) for name, w in team.workers.items()},
    }


def digest(value: Json) -> str:
    """A stable hash of a JSON value (keys sorted), for a quick equality check."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def diff(old: Any, new: Any, path: str = "") -> list[str]:
    """Every difference between two fingerprints, as ``key.path: what changed`` lines."""
    where = path or "(team)"
    if isinstance(old, dict) and isinstance(new, dict):
        changes: list[str] = []
        for key in old:
            sub = f"{path}.{key}" if path else str(key)
            if key not in new:
                changes.append(f"{sub}: removed")
            else:
                changes.extend(diff(old[key], new[key], sub))
        changes.extend(f"{path}.{key}: added" if path else f"{key}: added" for key in new if key not in old)
        return changes
    if old == new:
        return []
    if isinstance(old, (str, int, float, bool)) and isinstance(new, (str, int, float, bool)) and not (
            (isinstance(old, str) and len(old) > 60) or (isinstance(new, str) and len(new) > 60)):
        return [f"{where}: {old!r} -> {new!r}"]
    return [f"{where}: changed"]
