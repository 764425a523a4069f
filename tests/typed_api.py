"""Pins the public generics; checked by mypy in CI (``mypy --strict src tests/typed_api.py``), never run."""

from __future__ import annotations

from typing import assert_type

from pydantic import BaseModel

from cadenza import Agent, FunctionModel, RunResult, Supervisor, Tool, tool
from cadenza.events import FinalResult


class Report(BaseModel):
    title: str


async def typed_usage() -> None:
    plain = Agent("a")
    assert_type(plain, Agent[str])
    typed = Agent("b", output_type=Report)
    assert_type(typed, Agent[Report])
    result = await typed.run("go")
    assert_type(result, RunResult[Report])
    assert_type(result.output, Report | None)
    team = Supervisor("lead", workers=[plain, typed], output_type=Report)
    assert_type(team, Supervisor[Report])
    assert_type((await team.run("go")).output, Report | None)
    assert_type(Supervisor("lead", workers=[team]).run_sync("go").output, str | None)
    with team.override(model=FunctionModel(lambda request: '{"title": "t"}')), typed.override(model="simulated"):
        assert_type((await team.run("go")).output, Report | None)
    async for event in team.stream("go", budget=None, store=None):
        if isinstance(event, FinalResult):
            assert_type(event.result.output, Report | None)
    async for told in typed.stream("go"):
        if isinstance(told, FinalResult):
            assert_type(told.result, RunResult[Report])


def send(to: str) -> str:
    return to


def typed_tools() -> None:
    assert_type(tool(send), Tool)
    assert_type(tool(send, side_effect="at_most_once", requires_approval=True), Tool)
    assert_type(tool(side_effect="idempotent")(send), Tool)
