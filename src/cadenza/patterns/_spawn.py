"""Dynamic spawning: the planner may ask for new agents, granted only within the supervisor's allowlist.

A proposal can never widen rights: tools outside the allowlist, an unknown model
tier, a clashing name or one agent too many are refused, never granted.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from .._errors import ConfigError
from .._plan import AgentProposal
from ..models.base import Model
from ..tools._tools import Tool
from ._agent import Agent

__all__ = ("SpawnPolicy",)


@dataclass(frozen=True)
class SpawnPolicy:
    """What a supervisor may grant to agents its planner proposes."""

    tools: Sequence[Tool] = ()
    """The allowlist: a spawned agent gets a subset of these and nothing else."""
    max_agents: int = 3
    """How many agents one run may spawn."""
    tiers: Mapping[str, str | Model] = field(default_factory=lambda: {"default": "simulated"})
    """Model tiers a proposal may name, e.g. ``{"cheap": "openai:gpt-5-mini", "strong": ...}``."""

    def __post_init__(self) -> None:
        if self.max_agents < 0:
            raise ConfigError(f"spawn max_agents must not be negative, got {self.max_agents}")
        if not self.tiers:
            raise ConfigError("a spawn policy needs at least one model tier")
        names = [t.name for t in self.tools]
        if len(names) != len(set(names)):
            raise ConfigError("the spawn allowlist names the same tool twice")

    @property
    def tool_names(self) -> list[str]:
        """Names of the allowlisted tools, in order."""
        return [t.name for t in self.tools]

    def problems(self, proposals: Sequence[AgentProposal], existing: Collection[str]) -> list[str]:
        """Every reason these proposals cannot all be granted; empty when they can."""
        found: list[str] = []
        if len(proposals) > self.max_agents:
            found.append(f"{len(proposals)} new agents proposed, but at most {self.max_agents} may be spawned")
        allowed = set(self.tool_names)
        seen: set[str] = set()
        for p in proposals:
            if p.name in existing or p.name in seen:
                found.append(f"new agent {p.name!r} clashes with an existing agent's name")
            seen.add(p.name)
            outside = [t for t in p.tools if t not in allowed]
            if outside:
                found.append(
                    f"new agent {p.name!r} asks for tools outside the allowlist: {', '.join(outside)} "
                    f"(allowed: {', '.join(sorted(allowed)) or 'none'})"
                )
            if p.tier not in self.tiers:
                found.append(f"new agent {p.name!r} asks for unknown model tier {p.tier!r} (tiers: {', '.join(self.tiers)})")
        return found

    def stand_ins(self) -> dict[str, Agent[str]]:
        """Agents that stand, before a run, for all this policy may spawn, so a backend can refuse what it could not
        run: one with every allowlisted tool, and one per tier whose model is an object. A tier's model string needs
        no stand-in (any process rebuilds it from the string), so nothing is resolved here and no key is needed."""
        found: dict[str, Agent[str]] = {}
        if self.tools:
            found["with the allowlisted tools"] = Agent("spawned", "Stands for a spawned agent.", model="simulated",
                                                        tools=list(self.tools))
        for tier, model in self.tiers.items():
            if not isinstance(model, str):
                found[f"of tier {tier!r}"] = Agent("spawned", "Stands for a spawned agent.", model=model)
        return found

    def build(self, proposal: AgentProposal) -> Agent[str]:
        """Create the agent for an already-checked proposal."""
        by_name = {t.name: t for t in self.tools}
        return Agent(
            proposal.name,
            proposal.instructions or proposal.role,
            model=self.tiers[proposal.tier],
            tools=[by_name[name] for name in proposal.tools],
            description=proposal.role,
        )
