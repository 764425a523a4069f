"""Workers describe themselves as data: fingerprints, depth checks, the plan view and rebuilding read the spec.

Nothing asks which class a worker is. A spec is JSON both ways, and names what another process
could not rebuild (a lambda, a closure, a model object) with the worker it belongs to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter

from cadenza import Agent, Budget, ConfigError, FunctionModel, MCPServer, Plan, SpawnPolicy, Supervisor, Task, tool
from cadenza._worker_spec import AgentSpec, ModelSource, OtherSpec, TeamSpec, ToolRef, WorkerSpec, rebuild_problems
from cadenza.cli._plan_view import plan_json
from cadenza.engine._fingerprint import describe, digest
from cadenza.patterns._rebuild import build_agent
from cadenza.patterns._supervisor import team_depth
from cadenza.patterns._workflow import load_workflow
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
    assert (analyst.model.sources, analyst.max_tokens, analyst.budget) == (
        (ModelSource(spec="simulated:analyst"),), 200, Budget(tokens=5000))
    assert isinstance(writer, AgentSpec)
    assert writer.model.sources == (ModelSource(spec="simulated:a"), ModelSource(spec="simulated:b"))
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


# Rebuilding, as a worker process does --------------------------------------------------------------------------------


async def test_an_agent_rebuilt_from_its_spec_is_the_same_agent_and_answers_the_same() -> None:
    from cadenza.engine._run_state import RunState
    from support import step_context

    original = Agent("analyst", "Find facts.", model="simulated:analyst", tools=[search, tool(lookup)],
                     output_type=Finding, max_tokens=200, scopes={"network"})
    rebuilt = build_agent(TypeAdapter(WorkerSpec).validate_json(original.describe().model_dump_json()))
    task = Task(task_id="task_1", run_id="run_1", sender="lead", recipient="analyst", instruction="Find X")

    assert rebuilt.describe() == original.describe() and rebuilt.tools["search"] is search
    first = await original.execute(task, step_context(agent="analyst"), RunState("run_1").port())
    second = await rebuilt.execute(task, step_context(agent="analyst"), RunState("run_1").port())
    assert first.status == "success" and (first.output, first.usage) == (second.output, second.usage)


def test_a_workflows_agents_carry_where_their_models_came_from(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shared model objects, fallback chains, vendor options and the file's prices: all rebuild the same."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    for workflow in ("research.yaml", "providers.yaml"):
        team = load_workflow(str(EXAMPLES / workflow)).entry
        agents = [w for w in team.workers.values() if isinstance(w, Agent)]
        assert agents and rebuild_problems(team.describe()) == []
        for agent in agents:
            rebuilt = build_agent(agent.describe())
            assert rebuilt.describe() == agent.describe() and rebuilt.model.name == agent.model.name
    researcher = load_workflow(str(EXAMPLES / "providers.yaml")).entry.workers["researcher_1"]
    sources = researcher.describe().model.sources  # type: ignore[union-attr]
    assert sources is not None and [s.spec for s in sources] == ["anthropic:claude-haiku-4-5", "openai:gpt-5-mini"]
    assert sources[0].options["max_attempts"] == 5


def test_a_tool_that_differs_in_the_rebuilding_process_is_refused() -> None:
    spec = Agent("a", model="simulated", tools=[search]).describe()
    changed = spec.model_copy(update={"tools": (spec.tools[0].model_copy(update={"scopes": ("read",)}),)})

    with pytest.raises(ConfigError, match=r"tool 'search': .*search in this process is not the tool the run "
                                          r"described \(its scopes differ\)"):
        build_agent(changed)


def test_a_tool_that_cannot_be_imported_is_refused_naming_it() -> None:
    spec = Agent("a", model="simulated", tools=[search]).describe()
    gone = ToolRef(**{**spec.tools[0].model_dump(), "function": "tests_no_such_module:search"})

    with pytest.raises(ConfigError, match="agent 'a': tool 'search': cannot import tests_no_such_module:search"):
        build_agent(spec.model_copy(update={"tools": (gone,)}))


def test_only_agents_are_rebuilt_in_a_worker_process() -> None:
    with pytest.raises(ConfigError, match="team 'lead' cannot be rebuilt in a worker process"):
        build_agent(research_team().describe())
