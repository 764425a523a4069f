"""What a RunResult hands out: nested teams' own step records, and typed step outputs of their declared type."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from cadenza import Agent, FunctionModel, Plan, Step, StepRecord, Supervisor


class Report(BaseModel):
    title: str
    pages: int


def plan(*steps: tuple[str, str, list[str]]) -> Plan:
    return Plan(steps=tuple(Step(id=i, agent=a, instruction=f"do {i}", depends_on=tuple(d)) for i, a, d in steps))


def writer(name: str = "writer") -> Agent[Report]:
    return Agent(name, "write", output_type=Report,
                 model=FunctionModel(lambda request: '{"title": "t", "pages": 3}', name=name))


def ids(records: tuple[StepRecord, ...] | list[StepRecord]) -> list[str]:
    return [r.step.id for r in records]


async def test_a_nested_teams_steps_hang_under_the_step_that_ran_it_at_every_depth() -> None:
    innermost = Supervisor("innermost", workers=[Agent("z", "z")], plan=plan(("z1", "z", [])))
    inner = Supervisor("inner", workers=[Agent("x", "x"), innermost],
                       plan=plan(("i1", "x", []), ("i2", "innermost", ["i1"])))
    outer = Supervisor("outer", workers=[inner, Agent("y", "y")], plan=plan(("o1", "inner", []), ("o2", "y", ["o1"])))

    result = await outer.run("goal")

    assert result.status == "success"
    o1, o2 = result.steps
    assert ids(o1.steps) == ["i1", "i2"] and o2.steps == ()
    i1, i2 = o1.steps
    assert i1.status == "success" and i1.output and i1.steps == ()
    assert ids(i2.steps) == ["z1"] and i2.steps[0].output
    assert o1.output == i2.output  # the nested team's answer is its last step's


@pytest.mark.parametrize("recorded", [False, True], ids=["python", "stored"])
async def test_a_typed_agents_step_output_has_the_type_the_team_output_has(tmp_path: Path, recorded: bool) -> None:
    team = Supervisor("lead", workers=[writer(), Agent("note", "note")], output_type=Report,
                      plan=plan(("w", "writer", []), ("n", "note", []), ("last", "writer", ["w", "n"])))

    result = await team.run("goal", store=tmp_path / "runs.db" if recorded else None)

    assert result.output == Report(title="t", pages=3)
    w, n, last = result.steps
    assert w.output == last.output == result.output and type(w.output) is Report
    assert isinstance(n.output, str)  # an untyped agent's output stays text


async def test_a_typed_nested_teams_step_output_has_its_type() -> None:
    inner = Supervisor("inner", workers=[writer()], plan=plan(("i", "writer", [])), output_type=Report)
    outer = Supervisor("outer", workers=[inner], plan=plan(("o", "inner", [])), output_type=Report)

    result = await outer.run("goal")

    assert type(result.steps[0].output) is Report and type(result.steps[0].steps[0].output) is Report

