"""Workers describe themselves as data: fingerprints, depth checks, the plan view and rebuilding read the spec.

Nothing asks which class a worker is. A spec is JSON both ways, and names what another process
could not rebuild (a lambda, a closure, a model object) with the worker it belongs to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter

from cadenza import Agent, Budget, FunctionModel, MCPServer, Plan, SpawnPolicy, Supervisor, tool
from cadenza._fingerprint import describe, digest
from cadenza._supervisor import team_depth
from cadenza._worker_spec import AgentSpec, OtherSpec, TeamSpec, WorkerSpec, rebuild_problems
from cadenza._workflow import load_workflow
from cadenza.cli._plan_view import plan_json
from support import ScriptedWorker

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


class Finding(BaseModel):
    claim: str
    source: str


@tool(scopes={"network"})
def search(query: str) -> str:
    """Search the web."""
    return f"results for {query}"


def lookup(term: str) -> str:
    """Look a term up."""
    return term


shout: Any = lambda text: text.upper()  # noqa: E731 - what the test is about
shout.__annotations__ = {"text": str, "return": str}


def research_team() -> Supervisor[str]:
    analyst = Agent("analyst", "Find facts.", model="simulated:analyst", tools=[search], output_type=Finding,
                    max_tokens=200, budget=Budget(tokens=5000), scopes={"network", "read"})
    writer = Agent("writer", "Write.", model=["simulated:a", "simulated:b"], max_turns=4)
    inner = Supervisor("desk", workers=[analyst], model="simulated:desk",
                       plan=Plan.of({"id": "find", "agent": "analyst", "instruction": "Find it"}), scopes={"network"})
    spawn = SpawnPolicy(tools=[search], tiers={"cheap": "simulated:cheap"}, max_agents=2)
    return Supervisor("lead", workers=[inner, writer, ScriptedWorker("checker")], model="simulated:lead",
                      spawn=spawn, budget=Budget(usd=1.0))


@pytest.mark.parametrize(("workflow", "recorded"), [
    ("research.yaml", "98928acd7a822f078b5f09ab437cfa7f7f2a54bdfd3c7d65097e01f55bf40004"),
    ("teams.yaml", "0f3f7404691448f4bec60d193f3e43f5f8799e754a3d31eded33a92eadc367b9"),
])
def test_fingerprints_are_those_earlier_versions_recorded(workflow: str, recorded: str) -> None:
    """Read from specs now, a team's fingerprint is what cadenza stored before: its runs resume without --force."""
    assert digest(describe(load_workflow(str(EXAMPLES / workflow)).entry)) == recorded


def test_a_team_spec_survives_json() -> None:
    spec = research_team().describe()

    back = TypeAdapter(WorkerSpec).validate_json(spec.model_dump_json())

    assert back == spec and isinstance(back, TeamSpec)
    desk, writer, checker = back.workers
    assert isinstance(desk, TeamSpec) and desk.plan is not None and desk.scopes == ("network",)
    analyst = desk.workers[0]
    assert isinstance(analyst, AgentSpec)
    assert analyst.output_type == f"{__name__}:Finding" and analyst.output_schema is not None
    assert [(t.name, t.function, t.scopes) for t in analyst.tools] == [("search", f"{__name__}:search", ("network",))]
    assert (analyst.model.spec, analyst.max_tokens, analyst.budget) == ("simulated:analyst", 200, Budget(tokens=5000))
    assert isinstance(writer, AgentSpec) and writer.model.spec == ("simulated:a", "simulated:b")
    assert checker == OtherSpec(name="checker", description="a scripted test worker", type="support:ScriptedWorker")
    assert back.spawn is not None and back.spawn.tiers == {"cheap": "simulated:cheap"}


def test_depth_is_read_from_specs_for_any_worker() -> None:
    team = research_team()

    assert team_depth(team) == 2 and team_depth(ScriptedWorker("x")) == 0
    assert team_depth(Agent("a", model="simulated")) == 0


def test_the_plan_view_reads_teams_and_other_workers_from_their_specs() -> None:
    team = research_team()
    plan = Plan.of({"id": "s1", "agent": "desk", "instruction": "Research"},
                   {"id": "s2", "agent": "checker", "instruction": "Check", "depends_on": ["s1"]},
                   {"id": "s3", "agent": "writer", "instruction": "Write", "depends_on": ["s2"]})

    shown = plan_json(plan, team)

    assert [s["worker"] for s in shown["steps"]] == ["team", "worker", "agent"]
    assert shown["steps"][0]["plan"]["steps"][0]["agent"] == "analyst"


def test_what_can_be_rebuilt_elsewhere_has_no_problems() -> None:
    assert rebuild_problems(research_team().describe()) == []


def test_what_cannot_be_rebuilt_is_named_with_its_worker() -> None:
    def local_helper(term: str) -> str:
        """Defined inside this test."""
        return term

    made = Agent("maker", model=FunctionModel(lambda request: "x"),
                 tools=[tool(shout, name="shout"), tool(local_helper), tool(lookup)],
                 output_type=list[str])
    served = Agent("served", model="simulated", mcp_servers=[MCPServer("files", command=["npx", "files"])])
    team = Supervisor("lead", workers=[made, served], model="simulated")

    problems = rebuild_problems(team.describe())

    assert len(problems) == 5, problems
    assert "agent 'lead/maker': model 'function:function' was given as an object" in problems[0]
    assert "agent 'lead/maker': tool 'shout' is a lambda" in problems[1]
    assert "tool 'local_helper' is defined inside a function" in problems[2]
    assert "agent 'lead/maker': its output type (list[str]) is not a class" in problems[3]
    assert "agent 'lead/served': MCP server 'files' is an open session" in problems[4]


def test_a_worker_defined_in_a_script_cannot_be_rebuilt_elsewhere() -> None:
    spec = OtherSpec(name="w", description="", type="__main__:Mine")

    assert rebuild_problems(spec) == [
        "worker 'w' (a Mine) is defined in the script being run (__main__:Mine); move it to a module another "
        "process can import"]


def test_a_spec_is_refused_with_unknown_fields() -> None:
    data: dict[str, Any] = research_team().describe().model_dump(mode="json")
    data["workers"][1]["temperature"] = 0.3

    with pytest.raises(ValueError, match="temperature"):
        TypeAdapter(WorkerSpec).validate_python(data)
