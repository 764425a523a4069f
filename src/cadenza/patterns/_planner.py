"""LLM task decomposition: a goal and a team go in, a validated plan comes out.

The model answers with structured output under a per-team schema (worker names
as an enum). An invalid answer is sent back with its errors a bounded number of
times; after that, `PlanError` lists what was still wrong.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._errors import CadenzaError, PlanError, SpawnError
from .._names import NAME_PATTERN, summarise_validation
from .._plan import AgentProposal, Plan, Step
from .._step_context import StepContext
from .._usage import Usage
from .._worker import Worker
from ..engine._accounts import call_model
from ..models.base import AssistantMessage, Model, ModelMessage, ModelRequest, OutputSchema, UserMessage
from ._spawn import SpawnPolicy

if TYPE_CHECKING:
    from .._port import RunPort

__all__ = ("PlannedOutcome", "Planner", "plan_schema")

PLANNER_INSTRUCTIONS = """You are the planner of a team of AI agents. Break the user's goal into steps.
Each step is done by exactly one team member and may depend on earlier steps, whose results it receives.
Steps without a dependency between them run in parallel, so only add a dependency when a step really
needs another's result. Answer with JSON that fits the given schema and nothing else."""


class _DraftStep(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1)
    agent: str = Field(min_length=1)
    instruction: str
    depends_on: list[str] = Field(default_factory=list)


class _Draft(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: list[_DraftStep]
    new_agents: list[AgentProposal] = Field(default_factory=list)


def plan_schema(workers: Sequence[str], *, max_steps: int, spawn: SpawnPolicy | None = None) -> dict[str, Any]:
    """The JSON schema a planner's answer must fit for this team.

    Worker names are an enum unless spawning is allowed (then new names are possible too).
    The ``x-cadenza-plan`` mark lets the simulated model answer with a coherent plan.
    """
    agent: dict[str, Any] = {"description": "Name of the team member who does this step."}
    if spawn is None or spawn.max_agents == 0:
        agent["enum"] = list(workers)
    else:
        agent["anyOf"] = [{"enum": list(workers)}, {"type": "string"}]
        agent["description"] += " A team member, or the name of a proposed new agent."
    step = {
        "type": "object",
        "properties": {
            "id": {"type": "string", "minLength": 1, "description": "Unique step id, e.g. s1."},
            "agent": agent,
            "instruction": {"type": "string", "description": "What the team member must do."},
            "depends_on": {"type": "array", "items": {"type": "string"}, "description": "Ids of steps whose results this step needs."},
        },
        "required": ["id", "agent", "instruction", "depends_on"],
        "additionalProperties": False,
    }
    properties: dict[str, Any] = {"steps": {"type": "array", "items": step, "minItems": 1, "maxItems": max_steps}}
    if spawn is not None and spawn.max_agents > 0:
        tool_enum: dict[str, Any] = {"enum": spawn.tool_names} if spawn.tool_names else {"type": "string"}
        properties["new_agents"] = {
            "type": "array",
            "maxItems": spawn.max_agents,
            "description": "New agents to create when no team member fits a step. Leave empty otherwise.",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "pattern": NAME_PATTERN},
                    "role": {"type": "string"},
                    "instructions": {"type": "string"},
                    "tools": {"type": "array", "items": tool_enum, "uniqueItems": True},
                    "tier": {"enum": list(spawn.tiers)},
                },
                "required": ["name", "role", "instructions", "tools", "tier"],
                "additionalProperties": False,
            },
        }
    return {
        "title": "Plan",
        "type": "object",
        "properties": properties,
        "required": ["steps"],
        "additionalProperties": False,
        "x-cadenza-plan": True,
    }


@dataclass(frozen=True, slots=True)
class PlannedOutcome:
    """A checked plan and what producing it cost."""

    plan: Plan
    usage: Usage
    repairs: int
    """How many times the model was sent its plan's problems before it was valid."""


class Planner:
    """Asks a model for a plan and repairs it until it is valid, or gives up clearly."""

    def __init__(self, model: Model, *, max_repairs: int = 2, max_steps: int = 50,
                 instructions: str = PLANNER_INSTRUCTIONS, one_last_step: bool = False) -> None:
        self.model = model
        self.max_repairs = max_repairs
        self.max_steps = max_steps
        self.instructions = instructions
        self.one_last_step = one_last_step
        """The plan must end in one step, every other leading to it: its output is the team's answer."""

    async def plan(self, goal: str, workers: Sequence[Worker], *, spawn: SpawnPolicy | None = None, team: str = "planner",
                   within: tuple[StepContext, RunPort] | None = None) -> PlannedOutcome:
        """A valid plan for ``goal`` over ``workers`` (and any agents ``spawn`` allows).

        ``within`` is the team's place in its run and the run's port: the planner's calls count against the
        run's budgets. Without it the plan is made outside any run, and no budget covers it.

        Raises:
            PlanError: the model's answer was still invalid after ``max_repairs`` repairs.
            SpawnError: what was still wrong were only refused spawn proposals.
        """
        names = [w.name for w in workers]
        schema = plan_schema(names, max_steps=self.max_steps, spawn=spawn)
        messages: list[ModelMessage] = [UserMessage(content=self._brief(goal, workers, spawn))]
        usage = Usage()
        problems: list[str] = []
        spawn_only = False
        ctx, port = within if within is not None else _outside_a_run(team)
        for attempt in range(self.max_repairs + 1):
            request = ModelRequest(system=self.instructions, messages=messages, output_schema=OutputSchema(name="plan", json_schema=schema), agent=team)
            try:
                response = await call_model(self.model, request, ctx, port)
            except CadenzaError as exc:  # the attempts before this one were billed: the run counts them
                exc.spent = usage + exc.spent if exc.spent is not None else usage
                raise
            usage = usage + response.usage
            text = response.text or ""
            plan, problems, spawn_only = self._read(text, names, spawn)
            if plan is not None:
                return PlannedOutcome(plan=plan, usage=usage, repairs=attempt)
            messages = [*messages, AssistantMessage(text=text), UserMessage(content=(
                "That plan cannot be used:\n" + "\n".join(f"- {p}" for p in problems) + "\nReply with a corrected plan as JSON only."
            ))]
        error = SpawnError if spawn_only else PlanError
        detail = "\n".join(f"  - {p}" for p in problems)
        failed = error(f"the planner gave no valid plan after {self.max_repairs} repair(s):\n{detail}", problems=problems)
        failed.spent = usage
        raise failed

    def _read(self, text: str, names: list[str], spawn: SpawnPolicy | None) -> tuple[Plan | None, list[str], bool]:
        try:
            draft = _Draft.model_validate_json(text)
        except ValidationError as exc:
            return None, ["the answer does not fit the plan schema: " + summarise_validation(exc, limit=10)], False
        spawn_problems: list[str] = []
        if draft.new_agents:
            if spawn is None or spawn.max_agents == 0:
                spawn_problems.append("this team may not spawn new agents; use only: " + ", ".join(names))
            else:
                spawn_problems = spawn.problems(draft.new_agents, names)
        plan = Plan(
            steps=tuple(Step(id=s.id, agent=s.agent, instruction=s.instruction, depends_on=tuple(s.depends_on)) for s in draft.steps),
            new_agents=tuple(draft.new_agents),
        )
        plan_problems = plan.problems([*names, *(p.name for p in draft.new_agents)], max_steps=self.max_steps)
        if self.one_last_step and not plan_problems and len(last := plan.sinks()) > 1:
            plan_problems.append(f"the plan ends in {len(last)} steps ({', '.join(last)}); it must end in one step "
                                 "that depends, directly or not, on every other, and whose result is the answer")
        problems = spawn_problems + plan_problems
        if problems:
            return None, problems, bool(spawn_problems) and not plan_problems
        return plan, [], False

    def _brief(self, goal: str, workers: Sequence[Worker], spawn: SpawnPolicy | None) -> str:
        team = "\n".join(f"- {w.name}: {w.description or '(no description)'}" for w in workers)
        text = f"Goal:\n{goal}\n\nTeam members:\n{team}\n\nUse at most {self.max_steps} steps."
        if self.one_last_step:
            text += " End with one step that depends on every other step: its result is the final answer."
        if spawn is not None and spawn.max_agents > 0:
            tools = json.dumps(spawn.tool_names)
            text += (f"\n\nIf no team member fits a step, you may propose up to {spawn.max_agents} new agents "
                     f"in new_agents, each with tools chosen only from {tools} and a tier from {json.dumps(list(spawn.tiers))}.")
        return text


def _outside_a_run(team: str) -> tuple[StepContext, RunPort]:
    """The context and port of a plan made on its own (``cadenza plan``): a run of its own, with no budget."""
    from .._ids import new_run_id, new_task_id
    from ..engine._run_state import RunState

    state = RunState(new_run_id())
    return StepContext.alone(state.run_id, team, new_task_id(), ()), state.port()
