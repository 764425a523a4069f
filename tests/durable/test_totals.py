"""Every model call counts in a recorded run's totals, also when the run fails before any step."""

from __future__ import annotations

import json

import pytest

from cadenza import Agent, ModelError, PlanError, Supervisor
from cadenza._ids import RunId
from cadenza.cli._runs import runs_json
from cadenza.models.base import ModelRequest
from cadenza.models.function import FunctionModel
from cadenza.recorded import show_json, spent
from cadenza.stores.base import Store


def never_a_plan(request: ModelRequest) -> str:
    return '{"steps": []}'  # an empty plan is refused every time


async def audited_tokens(store: Store, run_id: str) -> tuple[int, int]:
    calls = [json.loads(r.detail_json) for r in await store.audit(run_id) if r.kind == "model.called"]
    return len(calls), sum(int(c.get("tokens", 0)) for c in calls)


async def test_a_planner_that_gives_up_is_still_counted_in_the_runs_totals(store: Store) -> None:
    lead = Supervisor("lead", workers=[Agent("a", "do")], model=FunctionModel(never_a_plan, name="lead"),
                      planner_repairs=2)
    with pytest.raises(PlanError) as raised:
        await lead.run("goal", store=store, run_id=RunId("run_planfail"))
    assert raised.value.spent is not None and raised.value.spent.model_calls == 3  # one try and two repairs

    snapshot = await store.snapshot("run_planfail")
    calls, tokens = await audited_tokens(store, "run_planfail")
    assert calls == 3 and tokens > 0
    assert snapshot.run.status == "failure"
    assert spent(snapshot).model_calls == 3 and spent(snapshot).total_tokens == tokens  # cadenza show
    assert show_json(snapshot)["usage"]["model_calls"] == 3
    listed = runs_json(await store.list_runs())
    assert [r["total_tokens"] for r in listed if r["run_id"] == "run_planfail"] == [tokens]  # cadenza runs


async def test_a_planner_whose_model_fails_after_a_repair_counts_the_calls_made(store: Store) -> None:
    answers = iter(['{"steps": []}'])

    def then_down(request: ModelRequest) -> str:
        try:
            return next(answers)
        except StopIteration:
            raise ModelError("the provider is down") from None

    lead = Supervisor("lead", workers=[Agent("a", "do")], model=FunctionModel(then_down, name="lead"))
    with pytest.raises(ModelError):
        await lead.run("goal", store=store, run_id=RunId("run_down"))
    snapshot = await store.snapshot("run_down")
    assert spent(snapshot).model_calls == 1 and spent(snapshot).total_tokens > 0

