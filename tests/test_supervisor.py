"""The supervisor pattern: planning (with repair), execution, synthesis, hierarchy and spawning."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from cadenza import (
    Agent,
    AgentProposal,
    FunctionModel,
    HierarchyError,
    ModelRequest,
    Plan,
    PlanError,
    SpawnError,
    SpawnPolicy,
    Supervisor,
    tool,
)
from cadenza._events import AgentSpawned, Event, PlanReady, RunFinished, StepStarted
from cadenza.models.base import ToolResultMessage, UserMessage
from support import kinds, other_tasks


def plan_json(*steps: tuple[str, str, list[str]], new_agents: list[dict[str, object]] | None = None) -> str:
    body: dict[str, object] = {"steps": [{"id": i, "agent": a, "instruction": f"do {i}", "depends_on": d} for i, a, d in steps]}
    if new_agents is not None:
        body["new_agents"] = new_agents
    return json.dumps(body)


def scripted_planner(*answers: str) -> FunctionModel:
    """A lead model that answers planning requests from ``answers`` in order and synthesises by joining."""
    remaining = list(answers)

    def reply(request: ModelRequest) -> str:
        if request.output_schema is not None and request.output_schema.name == "plan":
            return remaining.pop(0)
        return "final: " + request.messages[0].content.split("Results of earlier steps")[1][:0] + "synthesised"  # type: ignore[union-attr]

    return FunctionModel(reply, name="lead")


def echo(name: str) -> Agent[str]:
    return Agent(name, f"I am {name}", model=FunctionModel(lambda r: f"{name} done", name=name))


async def test_planner_plan_is_executed_and_synthesised(events: list[Event]) -> None:
    lead_model = scripted_planner(plan_json(("s1", "a", []), ("s2", "b", []), ("s3", "a", ["s1", "s2"])))
    lead = Supervisor("lead", workers=[echo("a"), echo("b")], model=lead_model, synthesize="always")
    result = await lead.run("goal", events=events.append)
    assert result.status == "success"
    assert result.output == "final: synthesised"
    assert [r.step.id for r in result.steps] == ["s1", "s2", "s3"]
    # planner + 3 steps + synthesis, all counted
    assert result.usage.model_calls == 5
    schema = lead_model.calls[0].output_schema.json_schema  # type: ignore[union-attr]
    assert schema["properties"]["steps"]["items"]["properties"]["agent"]["enum"] == ["a", "b"]
    assert kinds(events)[:3] == ["RunStarted", "UsageRecorded", "PlanReady"]
    assert kinds(events)[-2:] == ["UsageRecorded", "RunFinished"]
    synthesis_prompt = lead_model.calls[-1].messages[0].content  # type: ignore[union-attr]
    assert '<result step="s3">\na done\n</result>' in synthesis_prompt


async def test_an_invalid_plan_is_sent_back_with_its_errors_and_repaired(events: list[Event]) -> None:
    bad = plan_json(("s1", "a", ["s2"]), ("s2", "a", ["s1"]), ("s3", "ghost", []))
    lead_model = scripted_planner(bad, plan_json(("s1", "a", [])))
    result = await Supervisor("lead", workers=[echo("a")], model=lead_model).run("goal", events=events.append)
    assert result.status == "success"
    repair = lead_model.calls[1].messages[-1]
    assert isinstance(repair, UserMessage)
    assert "dependency cycle: " in repair.content and "unknown agent 'ghost'" in repair.content
    assert next(e for e in events if isinstance(e, PlanReady)).repairs == 1


async def test_a_plan_still_invalid_after_the_repairs_is_a_clear_plan_error() -> None:
    lead_model = scripted_planner("not json at all", plan_json(("s1", "ghost", [])), plan_json(("s1", "a", ["s1"])))
    worker = echo("a")
    lead = Supervisor("lead", workers=[worker], model=lead_model, planner_repairs=2)
    with pytest.raises(PlanError) as info:
        await lead.run("goal")
    assert "after 2 repair(s)" in str(info.value)
    assert info.value.problems == ["step 's1' depends on itself"]
    assert len(lead_model.calls) == 3
    assert worker.model.calls == []  # type: ignore[attr-defined]


async def test_a_static_plan_skips_the_planner() -> None:
    lead_model = FunctionModel(lambda r: "synthesised")
    plan = Plan.of({"id": "x", "agent": "a", "instruction": "go"})
    result = await Supervisor("lead", workers=[echo("a")], model=lead_model, plan=plan).run("goal")
    assert result.output == "a done" and lead_model.calls == []  # no plan to make; its one step gave the answer
    with pytest.raises(PlanError, match="unknown agent 'b'"):
        Supervisor("lead", workers=[echo("a")], plan=Plan.of({"id": "x", "agent": "b", "instruction": "go"}))


async def test_failed_steps_make_a_partial_run_and_synthesis_is_told() -> None:
    broken = Agent("broken", model=FunctionModel(lambda r: (_ for _ in ()).throw(ValueError("kaput"))))
    lead_model = scripted_planner(plan_json(("ok", "a", []), ("bad", "broken", []), ("after", "a", ["bad"])))
    result = await Supervisor("lead", workers=[echo("a"), broken], model=lead_model).run("goal")
    assert result.status == "partial"
    assert result.error is not None and "bad" in result.error.message and "after" in result.error.message
    statuses = {r.step.id: r.status for r in result.steps}
    assert statuses == {"ok": "success", "bad": "failed", "after": "skipped"}
    prompt = lead_model.calls[-1].messages[0].content  # type: ignore[union-attr]
    assert "[failed: agent 'broken': kaput]" in prompt and "[skipped: dependency 'bad' failed]" in prompt


async def test_typed_output_from_the_synthesiser() -> None:
    class Summary(BaseModel):
        verdict: str
        confidence: float

    def reply(request: ModelRequest) -> str:
        if request.output_schema and request.output_schema.name == "plan":
            return plan_json(("s1", "a", []))
        return '{"verdict": "yes", "confidence": 0.9}'

    lead = Supervisor("lead", workers=[echo("a")], model=FunctionModel(reply), output_type=Summary)
    result = await lead.run("goal")
    assert result.output == Summary(verdict="yes", confidence=0.9)


async def test_teams_nest_and_usage_rolls_up(events: list[Event]) -> None:
    inner = Supervisor("inner", workers=[echo("x"), echo("y")], model=scripted_planner(plan_json(("i1", "x", []), ("i2", "y", ["i1"]))))
    outer = Supervisor("outer", workers=[inner, echo("z")], model=scripted_planner(plan_json(("o1", "inner", []), ("o2", "z", ["o1"]))))
    result = await outer.run("goal", events=events.append)
    assert result.status == "success"
    # outer: plan + o2 = 2; inner: plan + i1 + i2 = 3 (each plan ends in one step, whose output is the answer)
    assert result.usage.model_calls == 5
    teams = {e.team for e in events if isinstance(e, StepStarted)}
    assert teams == {"outer", "outer/o1"}  # a nested team is named by the path of the step it runs
    assert [e.team for e in events if isinstance(e, RunFinished)] == ["outer/o1", "outer"]
    inner_record = next(r for r in result.steps if r.step.id == "o1")
    assert inner_record.output == "y done"


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    level1 = Supervisor("t1", workers=[echo("a")])
    level2 = Supervisor("t2", workers=[level1])
    level3 = Supervisor("t3", workers=[level2])
    with pytest.raises(HierarchyError, match="nests 4 levels of teams, deeper than the limit of 3"):
        Supervisor("t4", workers=[level3])
    assert Supervisor("t4", workers=[level3], max_depth=4).max_depth == 4


async def test_depth_is_also_enforced_at_run_time_through_the_task() -> None:
    inner = Supervisor("inner", workers=[echo("a")], max_depth=1, plan=Plan.of({"id": "s", "agent": "a", "instruction": "go"}))
    outer = Supervisor("outer", workers=[inner], max_depth=3, plan=Plan.of({"id": "s", "agent": "inner", "instruction": "go"}))
    result = await outer.run("goal")
    record = result.steps[0]
    assert record.status == "failed" and record.error is not None
    assert record.error.type == "HierarchyError" and "deeper than the limit of 1" in record.error.message


@tool(scopes={"read"})
def read_notes(topic: str) -> str:
    """Read notes on a topic."""
    return f"notes on {topic}"


@tool(scopes={"exec"})
def delete_all() -> str:
    """Delete everything."""
    return "deleted"


def spawn_lead(*plans: str) -> tuple[Supervisor[str], FunctionModel]:
    model = scripted_planner(*plans)
    policy = SpawnPolicy(tools=[read_notes], max_agents=1, tiers={"cheap": "simulated:cheap"})
    return Supervisor("lead", workers=[echo("a")], model=model, spawn=policy), model


async def test_a_proposed_agent_is_spawned_for_the_run_and_recorded(events: list[Event]) -> None:
    proposal = {"name": "librarian", "role": "reads notes", "instructions": "read", "tools": ["read_notes"], "tier": "cheap"}
    lead, _ = spawn_lead(plan_json(("s1", "librarian", []), ("s2", "a", ["s1"]), new_agents=[proposal]))
    result = await lead.run("goal", events=events.append)
    assert result.status == "success"
    assert result.spawned == ["librarian"]
    spawned = [e for e in events if isinstance(e, AgentSpawned)]
    assert [e.proposal.tools for e in spawned] == [("read_notes",)]
    assert "librarian" not in lead.workers  # cleaned up after the run
    # The simulated model called its one tool, which was the allowlisted one.
    assert result.steps[0].status == "success"


async def test_spawning_cannot_widen_tools_or_exceed_the_cap() -> None:
    greedy = {"name": "wrecker", "role": "r", "instructions": "i", "tools": ["read_notes", "delete_all"], "tier": "cheap"}
    extra = {"name": "helper2", "role": "r", "instructions": "i", "tools": [], "tier": "cheap"}
    first = plan_json(("s1", "wrecker", []), new_agents=[greedy])
    second = plan_json(("s1", "wrecker", []), ("s2", "helper2", []), new_agents=[{**greedy, "tools": ["read_notes"]}, extra])
    third = plan_json(("s1", "wrecker", []), new_agents=[{**greedy, "tools": ["read_notes"], "tier": "premium"}])
    lead, model = spawn_lead(first, second, third)
    with pytest.raises(SpawnError) as info:
        await lead.run("goal")
    assert len(model.calls) == 3
    repairs = [m.messages[-1].content for m in model.calls[1:]]  # type: ignore[union-attr]
    assert "asks for tools outside the allowlist: delete_all (allowed: read_notes)" in repairs[0]
    assert "2 new agents proposed, but at most 1 may be spawned" in repairs[1]
    assert info.value.problems == ["new agent 'wrecker' asks for unknown model tier 'premium' (tiers: cheap)"]


async def test_teams_without_a_spawn_policy_cannot_spawn() -> None:
    proposal = {"name": "intruder", "role": "r", "instructions": "i", "tools": [], "tier": "default"}
    lead_model = scripted_planner(plan_json(("s1", "intruder", []), new_agents=[proposal]), plan_json(("s1", "a", [])))
    result = await Supervisor("lead", workers=[echo("a")], model=lead_model).run("goal")
    assert result.spawned == [] and [r.step.agent for r in result.steps] == ["a"]
    assert "may not spawn new agents" in lead_model.calls[1].messages[-1].content  # type: ignore[union-attr]


async def test_the_simulated_planner_yields_a_valid_plan_for_any_team() -> None:
    workers = [Agent(f"w{i}", f"worker {i}") for i in range(5)]
    lead = Supervisor("lead", workers=workers)
    plan = await lead.plan("Compare three papers")
    assert plan.problems({w.name for w in workers}) == []
    result = await lead.run("Compare three papers")
    assert result.status == "success" and isinstance(result.output, str)
    assert {r.status for r in result.steps} == {"success"}


async def test_simulated_workers_call_their_tools() -> None:
    agent = Agent("reader", model="simulated", tools=[read_notes])
    seen: list[ModelRequest] = []
    original = agent.model.request

    async def spy(request: ModelRequest):  # type: ignore[no-untyped-def]
        seen.append(request)
        return await original(request)

    agent.model.request = spy  # type: ignore[method-assign]
    result = await agent.run("read up")
    assert result.status == "success"
    tool_results = [m for m in seen[-1].messages if isinstance(m, ToolResultMessage)]
    assert len(tool_results) == 1 and tool_results[0].content.startswith("notes on ") and not tool_results[0].is_error


def test_workers_need_unique_names() -> None:
    from cadenza import ConfigError

    with pytest.raises(ConfigError, match="two workers named 'a'"):
        Supervisor("lead", workers=[echo("a"), echo("a")])
    with pytest.raises(ConfigError, match="has no workers"):
        Supervisor("lead", workers=[])




async def test_a_simulated_team_with_a_spawn_policy_still_plans_with_its_workers() -> None:
    lead = Supervisor("lead", workers=[Agent("a"), Agent("b")], spawn=SpawnPolicy(tools=[read_notes], max_agents=2))
    result = await lead.run("goal")
    assert result.status == "success"
    assert {r.step.agent for r in result.steps} == {"a", "b"}


async def test_a_written_plan_may_spawn_only_within_the_policy() -> None:
    librarian = AgentProposal(name="librarian", role="reads", tools=("read_notes",), tier="cheap")
    plan = Plan.of({"id": "s1", "agent": "librarian", "instruction": "read"}, new_agents=[librarian])
    with pytest.raises(SpawnError, match="no spawn policy"):
        Supervisor("lead", workers=[echo("a")], plan=plan)
    greedy = AgentProposal(name="librarian", role="reads", tools=("delete_all",), tier="cheap")
    policy = SpawnPolicy(tools=[read_notes], max_agents=1, tiers={"cheap": "simulated"})
    with pytest.raises(SpawnError, match="outside the allowlist: delete_all"):
        Supervisor("lead", workers=[echo("a")], plan=Plan.of(*plan.steps, new_agents=[greedy]), spawn=policy)
    result = await Supervisor("lead", workers=[echo("a")], plan=plan, spawn=policy).run("goal")
    assert result.status == "success" and result.spawned == ["librarian"]


def test_results_have_short_reprs_whatever_their_size() -> None:
    workers = [echo(f"w{i}") for i in range(3)]
    plan = Plan.of(*({"id": f"s{i}", "agent": f"w{i % 3}", "instruction": "go"} for i in range(300)))
    result = Supervisor("lead", workers=workers, model=FunctionModel(lambda r: "done"), plan=plan).run_sync("goal")
    text = repr(result)
    assert text.startswith(f"RunResult(run_id={result.run_id!r}, status='success', output='done', steps=300")
    assert len(text) < 200


def test_team_names_follow_the_agent_name_rule() -> None:
    from cadenza import ConfigError

    with pytest.raises(ConfigError, match="team name 'my team' is not a valid name"):
        Supervisor("my team", workers=[echo("a")])


async def test_cancelling_a_team_run_reports_it_finished_as_cancelled(events: list[Event]) -> None:
    import asyncio

    started = asyncio.Event()

    async def hang(request: ModelRequest) -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    inner = Supervisor("inner", workers=[Agent("slow", model=FunctionModel(hang))],
                       plan=Plan.of({"id": "s", "agent": "slow", "instruction": "wait"}))
    outer = Supervisor("outer", workers=[inner], plan=Plan.of({"id": "t", "agent": "inner", "instruction": "go"}))
    run = asyncio.create_task(outer.run("goal", events=events.append))
    await started.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    finished = [(e.team, e.status) for e in events if isinstance(e, RunFinished)]
    assert finished == [("outer/t", "cancelled"), ("outer", "cancelled")]
    assert other_tasks() == []
