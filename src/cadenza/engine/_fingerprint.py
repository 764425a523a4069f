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

from .._worker import Worker
from .._worker_spec import AgentSpec, PeersSpec, TeamSpec, WorkerSpec

__all__ = ("describe", "diff", "digest")

Json = dict[str, Any]


def describe(worker: Worker) -> Json:
    """The fingerprint of an agent, a team, or any other worker, from what it says it is (`Worker.describe`)."""
    return _fingerprint(worker.describe())


def _fingerprint(spec: WorkerSpec) -> Json:
    if isinstance(spec, TeamSpec):
        return _team(spec)
    if isinstance(spec, AgentSpec):
        return _agent(spec)
    if isinstance(spec, PeersSpec):
        return _peers(spec)
    return {"kind": spec.type.rpartition(":")[2].rpartition(".")[2], "description": spec.description}


def _agent(agent: AgentSpec) -> Json:
    tools = {t.name: {"description": t.description, "parameters": t.parameters, "scopes": list(t.scopes)}
             for t in sorted(agent.tools, key=lambda t: t.name)}
    return {
        "kind": "agent",
        "instructions": agent.instructions,
        "model": agent.model.name,
        "tools": tools,
        "output": agent.output_schema if agent.output_schema is not None else "str",
        "max_turns": agent.max_turns,
    }


def _team(team: TeamSpec) -> Json:
    spawn = team.spawn
    return {
        "kind": "team",
        "planner_model": team.planner_model.name,
        "synthesizer": _agent(team.synthesizer),
        "plan": team.plan.model_dump(mode="json") if team.plan is not None else None,
        "spawn": None if spawn is None else {
            "max_agents": spawn.max_agents, "tiers": dict(sorted(spawn.tiers.items())), "tools": list(spawn.tools),
        },
        "workers": {w.name: _fingerprint(w) for w in team.workers},
    }


def _peers(group: PeersSpec) -> Json:
    """Who talks, to whom, and who answers; not the limits, which only decide how long it may go on."""
    return {
        "kind": "peers",
        "members": {m.name: _agent(m) for m in group.members},
        "entry": group.entry,
        "talks_to": {name: sorted(peers) for name, peers in sorted(group.talks_to.items())},
        "answer_by": sorted(group.answer_by),
        "quorum": group.quorum,
        "history": group.history,
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
