"""A run's observers cannot stall or break it: a sink that raises is logged once and detached."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from cadenza import Agent, FunctionModel, Plan, Supervisor
from cadenza._events import Event
from cadenza.engine._stream import isolated
from cadenza.stores import open_store


def team() -> Supervisor[str]:
    """A lead over a diamond of four steps, one of them a nested team: events come from every layer."""
    def echo(name: str) -> Agent[str]:
        return Agent(name, f"I am {name}", model=FunctionModel(lambda r: f"{name} done", name=name))

    inner = Supervisor("inner", workers=[echo("c")], model=FunctionModel(lambda r: "inner done", name="inner"),
                       plan=Plan.of({"id": "c1", "agent": "c", "instruction": "go"}))
    return Supervisor("lead", workers=[echo("a"), echo("b"), inner],
                      model=FunctionModel(lambda r: "lead done", name="lead"),
                      plan=Plan.of({"id": "s1", "agent": "a", "instruction": "go"},
                                   {"id": "s2", "agent": "b", "instruction": "go", "depends_on": ["s1"]},
                                   {"id": "s3", "agent": "inner", "instruction": "go", "depends_on": ["s1"]},
                                   {"id": "s4", "agent": "a", "instruction": "go", "depends_on": ["s2", "s3"]}))


class Breaks:
    """Raises on its ``at``-th event; counts every call."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.calls = 0

    def __call__(self, event: Event) -> None:
        self.calls += 1
        if self.calls == self.at:
            raise RuntimeError(f"sink broke on event {self.at}")


async def count_events() -> int:
    seen: list[Event] = []
    await team().run("goal", events=seen.append)
    return len(seen)


async def test_a_sink_that_raises_on_any_event_neither_stalls_nor_changes_the_run(
        caplog: pytest.LogCaptureFixture) -> None:
    total = await count_events()
    assert total >= 16  # the run, the nested team, and four steps each have events
    for at in range(1, total + 1):
        caplog.clear()
        sink = Breaks(at)
        with caplog.at_level(logging.WARNING, logger="cadenza.events"):
            result = await asyncio.wait_for(team().run("goal", events=sink), timeout=10)
        assert result.status == "success", at
        assert result.output == "a done"  # s4's, the diamond's last step
        assert sink.calls == at  # detached after it raised: no second chance to break the run
        warnings = [r for r in caplog.records if r.name == "cadenza.events"]
        assert len(warnings) == 1, at
        assert "RuntimeError" in warnings[0].getMessage() and "detached" in warnings[0].getMessage()


async def test_a_recorded_run_with_a_broken_sink_is_recorded_as_it_ended(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    result = await asyncio.wait_for(team().run("goal", events=Breaks(5), store=path), timeout=10)
    assert result.status == "success"
    async with open_store(path) as store:
        snapshot = await store.snapshot(result.run_id)
    assert snapshot.run.status == "success"
    assert {s.step_id for s in snapshot.steps if s.scope == "lead"} == {"s1", "s2", "s3", "s4"}


def test_isolated_wraps_once_and_keeps_none() -> None:
    def sink(event: Event) -> None:
        return None

    wrapped = isolated(sink)
    assert isolated(wrapped) is wrapped
    assert isolated(None) is None
