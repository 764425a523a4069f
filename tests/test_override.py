"""``override(model=...)``: an application's tests replace every model of an agent or a team for a block."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from cadenza import (
    Agent,
    ConfigError,
    FunctionModel,
    ModelRequest,
    PeerGroup,
    ProcessBackend,
    SimulatedModel,
    SpawnPolicy,
    Supervisor,
    UnknownModelError,
)
from cadenza.models.base import ToolCall

LIBRARIAN: dict[str, object] = {"name": "librarian", "role": "reads", "instructions": "read", "tools": [], "tier": "cheap"}


def plan(*steps: tuple[str, str, list[str]], new_agents: list[dict[str, object]] | None = None) -> str:
    return json.dumps({"steps": [{"id": i, "agent": a, "instruction": f"do {i}", "depends_on": d} for i, a, d in steps],
                       **({"new_agents": new_agents} if new_agents else {})})


def offline(request: ModelRequest) -> str | list[ToolCall]:
    """Every model of the team below, answered by its agent's name (a test's own scripted replies)."""
    if request.output_schema is not None and request.output_schema.name == "plan":
        if request.agent == "lead/o1":  # the nested team's planner, named by its step's path
            return plan(("i1", "c", []))
        return plan(("o1", "inner", []), ("o2", "librarian", []), ("o3", "debate", []), ("o4", "a", ["o1", "o2", "o3"]),
                    new_agents=[LIBRARIAN])
    if request.agent in ("pro", "con"):
        return [ToolCall(id="f", name="final_answer", arguments={"answer": f"{request.agent} says yes"})]
    return f"{request.agent} (offline)"


def team() -> Supervisor[str]:
    inner = Supervisor("inner", workers=[Agent("c", "c")])
    debate = PeerGroup("debate", [Agent("pro", "argue for"), Agent("con", "argue against")], entry="pro")
    return Supervisor("lead", workers=[inner, debate, Agent("a", "a")], model="simulated:lead",
                      spawn=SpawnPolicy(max_agents=1, tiers={"cheap": "simulated:cheap"}))


async def test_an_agent_answers_from_the_override_inside_the_block_and_from_its_own_model_after() -> None:
    agent = Agent("a", "help")
    own = agent.model
    replies = FunctionModel(lambda request: f"{request.agent}: offline")
    with agent.override(model=replies):
        assert (await agent.run("go")).output == "a: offline"
    assert agent.model is own
    assert (await agent.run("go")).output != "a: offline"
    assert len(replies.calls) == 1


async def test_a_typed_agent_validates_what_the_override_replies() -> None:
    class Verdict(BaseModel):
        ok: bool

    agent = Agent("judge", "judge", output_type=Verdict)
    with agent.override(model=FunctionModel(lambda request: '{"ok": true}')):
        assert (await agent.run("go")).output == Verdict(ok=True)


async def test_every_model_of_a_team_is_replaced_and_restored() -> None:
    lead = team()
    inner, debate = lead.workers["inner"], lead.workers["debate"]
    assert isinstance(inner, Supervisor) and isinstance(debate, PeerGroup)
    before = [lead.planner.model, lead.synthesizer.model, inner.planner.model, inner.synthesizer.model,
              inner.workers["c"].model, debate.members["pro"].model, debate.members["con"].model,  # type: ignore[attr-defined]
              lead.workers["a"].model]  # type: ignore[attr-defined]
    spawn = lead.spawn
    model = FunctionModel(offline)

    with lead.override(model=model):
        result = await lead.run("goal", input={"x": 1})
        assert lead.describe().planner_model.name == "function:function"
        assert lead.synthesizer.model is model and inner.synthesizer.model is model  # not called: the plans end in one step

    assert result.status == "success", result.error
    assert {s.step.id: s.result.output for s in result.steps if s.result} == {
        "o1": "c (offline)", "o2": "librarian (offline)", "o3": "pro says yes", "o4": "a (offline)"}
    assert result.output == "a (offline)"  # the plan ends in one step: its output is the answer
    assert {r.agent for r in model.calls} == {"lead", "lead/o1", "c", "librarian", "pro", "a"}
    after = [lead.planner.model, lead.synthesizer.model, inner.planner.model, inner.synthesizer.model,
             inner.workers["c"].model, debate.members["pro"].model, debate.members["con"].model,  # type: ignore[attr-defined]
             lead.workers["a"].model]  # type: ignore[attr-defined]
    assert all(a is b for a, b in zip(after, before, strict=True))
    assert lead.spawn is spawn
    assert lead.describe().planner_model.name == "simulated:lead"


def test_the_models_come_back_when_the_block_raises_and_overrides_nest() -> None:
    agent = Agent("a", "help")
    own, outer, inner = agent.model, SimulatedModel("outer"), SimulatedModel("inner")
    with pytest.raises(RuntimeError), agent.override(model=outer):
        with agent.override(model=inner):
            assert agent.model is inner
        assert agent.model is outer
        raise RuntimeError("the test failed")
    assert agent.model is own


def test_a_model_that_does_not_resolve_changes_nothing() -> None:
    lead = team()
    planner = lead.planner.model
    with pytest.raises(UnknownModelError), lead.override(model="nosuchprovider:x"):
        pass
    with pytest.raises(ConfigError), lead.override(model="simulatd:fast"):
        pass
    assert lead.planner.model is planner


async def test_a_model_object_cannot_be_rebuilt_in_a_worker_process_and_the_run_says_so() -> None:
    lead = Supervisor("lead", workers=[Agent("a", "a")], backend=ProcessBackend(workers=1))
    with lead.override(model=FunctionModel(lambda request: "x")), pytest.raises(ConfigError, match="cannot run on its backend"):
        await lead.run("goal")


async def test_a_peer_group_alone_answers_from_the_override() -> None:
    debate = PeerGroup("debate", [Agent("pro", "argue for"), Agent("con", "argue against")], entry="pro")
    with debate.override(model=FunctionModel(offline)):
        result = await debate.run("should we?")
    assert result.output == "pro says yes"
    assert all(member.model.name.startswith("simulated") for member in debate.members.values())
