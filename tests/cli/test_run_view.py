"""The display's running totals agree with the run's own usage, retries and nested teams included."""

from __future__ import annotations

from cadenza import Agent, ExecutionPolicy, Plan, RetryPolicy, Supervisor, Task
from cadenza.cli._display import RunView
from support import Fail, ScriptedWorker


async def test_live_totals_count_retried_attempts_and_nested_teams_once() -> None:
    async def flaky(task: Task) -> str:
        if task.attempt == 1:
            raise Fail("overloaded", retryable=True)  # a failed attempt that still spent a model call
        return "ok"

    retry = ExecutionPolicy(retry=RetryPolicy(initial_delay=0))
    inner = Supervisor("inner", workers=[Agent("steady")], plan=Plan.of({"id": "i", "agent": "steady", "instruction": "go"}))
    lead = Supervisor("lead", workers=[ScriptedWorker("flaky", flaky), inner], policy=retry, plan=Plan.of(
        {"id": "a", "agent": "flaky", "instruction": "go"}, {"id": "b", "agent": "inner", "instruction": "go"}))
    view = RunView()
    result = await lead.run("goal", events=view.apply)
    assert result.status == "success"
    assert result.steps[0].attempts == 2
    # flaky: 2 calls (one failed), inner: its step (its one step's output is its answer), lead: its synthesis
    assert result.usage.model_calls == 4
    assert (view.calls, view.tokens) == (result.usage.model_calls, result.usage.total_tokens)
