"""Budgets: reserved before each call, so a fan-out of parallel agents never spends past them."""

from __future__ import annotations

import asyncio

import pytest

from cadenza import Agent, Budget, BudgetExceeded, FunctionModel, ModelRequest, ModelResponse, Plan, Supervisor, Usage
from cadenza.engine._accounts import BudgetAccount, call_model, input_token_bound
from cadenza.engine._run_state import RunState
from cadenza.models.pricing import Prices
from cadenza.models.simulated import SimulatedModel
from support import step_context

FAN_OUT = 100


def fan_out_team(*, budget: Budget | None = None, worker_budget: Budget | None = None,
                 latency: float = 0.02) -> Supervisor[str]:
    model = SimulatedModel("budget", seed=3, latency=(latency, latency))
    workers = [Agent(f"w{i}", "Answer briefly.", model=model, max_tokens=64, budget=worker_budget)
               for i in range(FAN_OUT)]
    plan = Plan.of(*({"id": f"s{i}", "agent": f"w{i}", "instruction": f"Part {i} of the job"} for i in range(FAN_OUT)))
    return Supervisor("lead", workers=workers, plan=plan, model=model, budget=budget)


async def test_a_run_budget_stops_a_100_way_fan_out_without_overshoot() -> None:
    team = fan_out_team()
    unlimited = await team.run("Do the job")
    limit = 1_000
    assert unlimited.usage.total_tokens > 1.5 * limit  # the budget really binds

    result = await team.run("Do the job", budget=Budget(tokens=limit))

    assert result.status == "partial"
    assert result.error is not None and result.error.type == "BudgetExceeded"
    assert "run budget of 1,000 tokens is spent" in result.error.message
    assert result.usage.total_tokens <= limit
    done = [r for r in result.steps if r.status == "success"]
    skipped = [r for r in result.steps if r.status == "skipped"]
    refused = [r for r in result.steps if r.status == "failed"]
    assert done and len(done) < FAN_OUT - 10 and (skipped or refused)
    assert all(r.error is not None and r.error.type == "BudgetExceeded" for r in refused)
    assert all(r.skip_reason and r.skip_reason.startswith("not started: the run budget") for r in skipped)
    # what was left when it stopped was too little for one more call's worst case, not merely crowded
    assert limit - result.usage.total_tokens < 400  # about one call's worst case: 64 out, ~200 bytes in
    assert result.output == {r.step.id: r.output for r in done}  # the partial results, unsynthesised
    assert result.usage.model_calls == len(done)  # no refused call was made


async def test_a_budget_that_refuses_only_the_synthesis_returns_the_step_outputs() -> None:
    team = fan_out_team(latency=0.0)
    unlimited = await team.run("Do the job")
    steps_cost = sum(r.result.usage.total_tokens for r in unlimited.steps if r.result is not None)

    result = await team.run("Do the job", budget=Budget(tokens=steps_cost + 3_000))

    assert result.status == "partial"
    assert all(r.status == "success" for r in result.steps)
    assert result.error is not None and "the next call may need" in result.error.message
    assert unlimited.status == "success" and result.usage.model_calls == FAN_OUT  # the synthesis was not made
    assert result.output == {r.step.id: r.output for r in result.steps}


async def test_parallel_calls_wait_for_room_rather_than_overshoot() -> None:
    """Every call's worst case is held while it runs: the budget admits a few at a time, and all finish."""
    in_flight = peak = 0

    async def reply(request: ModelRequest) -> ModelResponse:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return ModelResponse(text="ok", usage=Usage(input_tokens=10, output_tokens=10, model_calls=1))

    model = FunctionModel(reply)
    request = ModelRequest(system="s", max_tokens=1000)
    worst = input_token_bound(request) + 1000
    account = BudgetAccount("run", Budget(tokens=3 * worst + 500))
    port = RunState("run_test", budget=account).port()
    await asyncio.gather(*(call_model(model, request, step_context(budgets=port.budgets), port) for _ in range(20)))

    assert len(model.calls) == 20
    assert peak == 3  # three worst cases fit at once (what was spent is small beside them)
    assert account.spent_tokens == 400 and account.reserved_tokens == 0


async def test_a_team_budget_covers_its_planner_steps_and_synthesis() -> None:
    model = SimulatedModel("team", seed=1)
    worker = Agent("w", "Work.", model=model, max_tokens=50)
    team = Supervisor("lead", workers=[worker], model=model, budget=Budget(tokens=1))

    with pytest.raises(BudgetExceeded, match="team 'lead' budget of 1 tokens is spent"):
        await team.run("Anything at all")  # even the plan cannot be paid for: nothing runs


async def test_an_agent_budget_spans_its_steps_and_leaves_others_running() -> None:
    model = SimulatedModel("agents", seed=5)
    thrifty = Agent("thrifty", "Work.", model=model, max_tokens=40, budget=Budget(tokens=300))
    free = Agent("free", "Work.", model=model, max_tokens=40)
    plan = Plan.of(*({"id": f"t{i}", "agent": "thrifty", "instruction": f"Task {i}",
                      "depends_on": [f"t{i - 1}"] if i else []} for i in range(6)),
                   *({"id": f"f{i}", "agent": "free", "instruction": f"Task {i}"} for i in range(6)))
    team = Supervisor("lead", workers=[thrifty, free], plan=plan, model=model)

    result = await team.run("Work")

    by_id = {r.step.id: r for r in result.steps}
    assert all(by_id[f"f{i}"].status == "success" for i in range(6))  # the team was not stopped
    thrifty_done = [i for i in range(6) if by_id[f"t{i}"].status == "success"]
    assert thrifty_done and len(thrifty_done) < 6
    failed = by_id[f"t{len(thrifty_done)}"]
    assert failed.error is not None and "agent 'thrifty' budget of 300 tokens" in failed.error.message
    spent = sum(by_id[f"t{i}"].result.usage.total_tokens for i in thrifty_done)  # type: ignore[union-attr]
    assert spent <= 300


async def test_a_usd_budget_needs_prices_for_its_models() -> None:
    class Unpriced:
        name = "custom:unpriced"

        async def request(self, request: ModelRequest) -> ModelResponse:
            return ModelResponse(text="ok")

    agent = Agent("a", "Work.", model=Unpriced())
    result = await agent.run("go", budget=Budget(usd=1.0))
    assert result.status == "failure"
    assert result.error is not None and "'custom:unpriced' has no price" in result.error.message
    assert "prices:" in result.error.message


def test_prices_longest_prefix_and_overrides() -> None:
    from cadenza.models.pricing import PRICES, Price

    assert PRICES.lookup("openai:gpt-5-mini-2025-08-07") == PRICES.lookup("openai:gpt-5-mini")
    assert PRICES.lookup("openai:gpt-5-mini") != PRICES.lookup("openai:gpt-5")
    usage = Usage(input_tokens=1_000_000, output_tokens=2_000_000, cache_read_tokens=1_000_000,
                  cache_write_tokens=1_000_000)
    assert PRICES.cost("anthropic:claude-haiku-4-5-20251001", usage) == pytest.approx(1.0 + 10.0 + 0.1 + 1.25)
    mine = PRICES.override(Prices({"openai:gpt-5-mini": Price(input=1, output=1)}))
    assert mine.cost("openai:gpt-5-mini", usage) == pytest.approx(1 + 2 + 1 + 1)  # cache at the input price
    assert PRICES.lookup("openai-compatible:llama3@http://x") is None


async def test_a_resumed_run_counts_what_earlier_processes_spent(tmp_path: object) -> None:
    from pathlib import Path

    from cadenza import approve

    assert isinstance(tmp_path, Path)
    db = tmp_path / "runs.db"
    model = SimulatedModel("resume", seed=9)
    workers = [Agent(f"w{i}", "Work.", model=model, max_tokens=40) for i in range(5)]
    gate = Agent("gate", "Decide.", model=model, max_tokens=40, requires_approval=True)
    plan = Plan.of(*({"id": f"s{i}", "agent": f"w{i}", "instruction": f"Part {i}"} for i in range(5)),
                   {"id": "last", "agent": "gate", "instruction": "Sign off", "depends_on": [f"s{i}" for i in range(5)]})
    team = Supervisor("lead", workers=[*workers, gate], plan=plan, model=model)
    first = await team.run("Work", store=db)
    assert first.status == "waiting"
    earlier = sum(r.result.usage.total_tokens for r in first.steps if r.result is not None)
    assert earlier > 0
    await approve(db, first.run_id, "last")

    resumed = await team.resume(first.run_id, store=db, budget=Budget(tokens=earlier + 150))

    assert resumed.status == "partial"
    assert resumed.error is not None
    assert f"{earlier:,} used" in resumed.error.message  # the first process's spending was charged to the run


class _Declaring:
    """A model of a user's own that states its output bound and price, as the vendor adapters do."""

    def __init__(self, name: str, max_tokens: int | None, price: object) -> None:
        self.name, self._max_tokens, self._price = name, max_tokens, price

    def facts(self) -> tuple[object, ...]:
        from cadenza.models.base import ModelFacts

        return (ModelFacts(self.name, "http://model.test", self._max_tokens, self._price),)  # type: ignore[arg-type]

    async def request(self, request: ModelRequest) -> ModelResponse:
        return ModelResponse(text="ok")


def test_a_claim_reserves_what_the_models_of_a_chain_declare() -> None:
    from cadenza.engine._accounts import claim_for
    from cadenza.models.pricing import Price
    from cadenza.models.resilience import FallbackModel, ResilientModel

    dear, cheap = Price(input=10.0, output=40.0), Price(input=1.0, output=2.0)
    chain = FallbackModel([ResilientModel(_Declaring("own:first", None, dear)),
                           _Declaring("own:second", 77, cheap), SimulatedModel("plain")])

    request, claim = claim_for(chain, ModelRequest(agent="a"))

    assert request.max_tokens == claim.output_tokens == 77  # the first bound a reachable model declares
    assert [(m.model, m.price) for m in claim.models] == [("own:first", dear), ("own:second", cheap),
                                                          ("simulated:plain", None)]
