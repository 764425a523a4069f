"""Plans: steps with dependencies, checked to be a DAG before anything runs.

A `Plan` can come from the planner model or be written by hand (Python or YAML);
either way `Plan.check` names every problem at once, not only the first.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from ._errors import PlanError
from ._names import NAME_PATTERN

__all__ = ("DEFAULT_MAX_STEPS", "AgentProposal", "Plan", "PlanProblem", "Step")

DEFAULT_MAX_STEPS = 100_000
"""Plans larger than this are refused; a model emitting more is almost surely looping."""


class Step(BaseModel):
    """One unit of work in a plan, assigned to one agent."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    """Unique within its plan."""
    agent: str = Field(min_length=1)
    """The worker (or spawned agent) that does the step."""
    instruction: str
    """What the worker is asked to do."""
    depends_on: tuple[str, ...] = ()
    """Ids of the steps whose outputs this one needs; it starts when the last of them succeeds."""
    input: Any = None
    """Optional typed input handed to the worker with the instruction."""


class AgentProposal(BaseModel):
    """A new agent the planner asks for when no worker fits; granted only within the allowlist."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    role: str = ""
    """One line saying what the agent is for; shown to the planner and in the trace."""
    instructions: str = ""
    tools: tuple[str, ...] = ()
    """Names of tools from the supervisor's spawn allowlist."""
    tier: str = "default"
    """Model tier name from the supervisor's spawn policy."""


@dataclass(frozen=True, slots=True)
class PlanProblem:
    """One reason a plan is invalid, and where: the step's index and field, or the whole plan."""

    message: str
    step: int | None = None
    field: Literal["id", "agent", "depends_on"] | None = None


class Plan(BaseModel):
    """A DAG of steps, plus any agents the planner proposes to spawn for it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    steps: tuple[Step, ...]
    new_agents: tuple[AgentProposal, ...] = ()
    _by_id: dict[str, Step] = PrivateAttr(default_factory=dict)
    _valid_for: frozenset[str] | None = PrivateAttr(default=None)
    """The last agent set the plan passed its structural checks against (a cache, not part of identity)."""

    def __eq__(self, other: object) -> bool:
        # Compare fields only: pydantic's default would also compare the private caches above.
        if not isinstance(other, Plan):
            return NotImplemented
        return self.steps == other.steps and self.new_agents == other.new_agents

    def __hash__(self) -> int:
        return hash((self.steps, self.new_agents))

    @classmethod
    def of(cls, *steps: Step | Mapping[str, Any], new_agents: Iterable[AgentProposal] = ()) -> Plan:
        """Build a plan from steps or step mappings (a convenience for hand-written plans)."""
        return cls(steps=tuple(s if isinstance(s, Step) else Step.model_validate(s) for s in steps),
                   new_agents=tuple(new_agents))

    def problems(self, agents: Collection[str] | None = None, *, max_steps: int = DEFAULT_MAX_STEPS) -> list[str]:
        """Every way this plan is invalid, in words; empty when it is a valid DAG over ``agents``.

        Args:
            agents: names the steps may be assigned to; ``None`` skips that check.
            max_steps: the size limit.
        """
        return [problem.message for problem in self.diagnose(agents, max_steps=max_steps)]

    def diagnose(self, agents: Collection[str] | None = None, *, max_steps: int = DEFAULT_MAX_STEPS) -> list[PlanProblem]:
        """`problems`, each with the step and field it is about, for tools that point into a file.

        The structural checks are remembered for the last agent set that passed, so a plan
        checked by its supervisor is not walked again by the executor on every run.
        """
        found: list[PlanProblem] = []
        if len(self.steps) > max_steps:
            found.append(PlanProblem(f"the plan has {len(self.steps)} steps, more than the limit of {max_steps}"))
        allowed = None if agents is None else frozenset(agents)
        if allowed is None or allowed != self._valid_for:
            structural = self._structural_problems(allowed)
            if not structural and allowed is not None:
                self._valid_for = allowed
            found = structural + found
        return found

    def _structural_problems(self, allowed: frozenset[str] | None) -> list[PlanProblem]:
        found: list[PlanProblem] = []
        if not self.steps:
            found.append(PlanProblem("the plan has no steps"))
        ids: set[str] = set()
        for index, step in enumerate(self.steps):
            if step.id in ids:
                found.append(PlanProblem(f"duplicate step id {step.id!r}", index, "id"))
            ids.add(step.id)
        for index, step in enumerate(self.steps):
            if allowed is not None and step.agent not in allowed:
                known = ", ".join(sorted(allowed)) or "(none)"
                found.append(PlanProblem(
                    f"step {step.id!r} is assigned to unknown agent {step.agent!r} (known: {known})", index, "agent"))
            for dep in step.depends_on:
                if dep == step.id:
                    found.append(PlanProblem(f"step {step.id!r} depends on itself", index, "depends_on"))
                elif dep not in ids:
                    found.append(PlanProblem(f"step {step.id!r} depends on unknown step {dep!r}", index, "depends_on"))
        cycle = self._find_cycle()
        if cycle:
            found.append(PlanProblem("dependency cycle: " + " -> ".join(cycle)))
        return found

    def check(self, agents: Collection[str] | None = None, *, max_steps: int = DEFAULT_MAX_STEPS) -> Plan:
        """Return the plan unchanged if valid.

        Raises:
            PlanError: listing every problem found.
        """
        found = self.problems(agents, max_steps=max_steps)
        if found:
            detail = "\n".join(f"  - {p}" for p in found)
            raise PlanError(f"invalid plan ({len(found)} problem{'s' * (len(found) > 1)}):\n{detail}", problems=found)
        return self

    def _find_cycle(self) -> list[str]:
        """One dependency cycle as a closed path of ids, or [] (iterative DFS, so deep plans are fine)."""
        deps = {s.id: [d for d in s.depends_on if d != s.id] for s in self.steps}
        state: dict[str, int] = {}  # 1 = on the current path, 2 = done
        for root in deps:
            if root in state:
                continue
            path: list[str] = [root]
            iters = [iter(deps[root])]
            state[root] = 1
            while iters:
                nxt = next(iters[-1], None)
                if nxt is None:
                    state[path.pop()] = 2
                    iters.pop()
                elif nxt not in deps or state.get(nxt) == 2:
                    continue
                elif state.get(nxt) == 1:
                    # A step depends on something on the current path: report it in execution order.
                    cycle = [*path[path.index(nxt):], nxt]
                    return cycle[::-1]
                else:
                    state[nxt] = 1
                    path.append(nxt)
                    iters.append(iter(deps[nxt]))
        return []

    def sinks(self) -> list[str]:
        """Ids of the steps no other step depends on, in plan order: the plan's last steps."""
        needed = {d for s in self.steps for d in s.depends_on}
        return [s.id for s in self.steps if s.id not in needed]

    def layers(self) -> list[list[str]]:
        """Step ids grouped by depth (for display only: the executor never waits for a layer)."""
        depth: dict[str, int] = {}
        for step_id in self.topological_order():
            step = self.step(step_id)
            depth[step_id] = 1 + max((depth[d] for d in step.depends_on), default=-1)
        out: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
        for step in self.steps:
            out[depth[step.id]].append(step.id)
        return out

    def topological_order(self) -> list[str]:
        """Step ids such that every step comes after its dependencies (stable: plan order breaks ties)."""
        index = {s.id: i for i, s in enumerate(self.steps)}
        if len(index) != len(self.steps):
            raise PlanError("the plan has duplicate step ids; call check() for every problem")
        remaining = {s.id: len(set(s.depends_on)) for s in self.steps}
        dependents: dict[str, list[str]] = {s.id: [] for s in self.steps}
        for s in self.steps:
            for d in set(s.depends_on):
                if d not in dependents:
                    raise PlanError(f"step {s.id!r} depends on unknown step {d!r}; call check() for every problem")
                dependents[d].append(s.id)
        ready = [(index[i], i) for i, n in remaining.items() if n == 0]
        heapq.heapify(ready)
        order: list[str] = []
        while ready:
            _, step_id = heapq.heappop(ready)
            order.append(step_id)
            for child in dependents[step_id]:
                remaining[child] -= 1
                if remaining[child] == 0:
                    heapq.heappush(ready, (index[child], child))
        if len(order) != len(self.steps):
            raise PlanError("the plan has a dependency cycle; call check() for details")
        return order

    def critical_path(self, duration: Callable[[Step], float] | Mapping[str, float] | None = None) -> tuple[list[str], float]:
        """The longest chain of dependent steps and its total duration.

        Args:
            duration: seconds per step, as a mapping by id or a function of the step; 1 each by default.
        """
        def cost(step: Step) -> float:
            if duration is None:
                return 1.0
            if isinstance(duration, Mapping):
                return float(duration.get(step.id, 0.0))
            return duration(step)

        finish: dict[str, float] = {}
        via: dict[str, str | None] = {}
        for step_id in self.topological_order():
            step = self.step(step_id)
            best = max(step.depends_on, key=lambda d: finish[d], default=None)
            via[step_id] = best
            finish[step_id] = (finish[best] if best else 0.0) + cost(step)
        if not finish:
            return [], 0.0
        last = max(finish, key=lambda k: finish[k])
        total = finish[last]
        path: list[str] = []
        end: str | None = last
        while end is not None:
            path.append(end)
            end = via[end]
        return path[::-1], total

    def step(self, step_id: str) -> Step:
        """The step with this id."""
        if not self._by_id:
            self._by_id = {s.id: s for s in self.steps}
        try:
            return self._by_id[step_id]
        except KeyError:
            raise PlanError(f"no step {step_id!r} in the plan") from None
