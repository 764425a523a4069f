"""The display's running totals agree with the run's own usage, retries and nested teams included."""

from __future__ import annotations

import io

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


async def test_the_live_display_says_the_lead_is_synthesising_once_its_steps_are_done() -> None:
    from rich.console import Console

    from cadenza.cli._display import LiveDisplay

    seen: list[str] = []
    display = LiveDisplay("run_x", "w", "goal")

    def watch(event: object) -> None:
        display.view.apply(event)  # type: ignore[arg-type]
        console = Console(width=120, record=True, file=io.StringIO())
        console.print(display._frame())
        seen.append(console.export_text())

    lead = Supervisor("lead", workers=[Agent("a"), Agent("b")], synthesize="always", plan=Plan.of(
        {"id": "s1", "agent": "a", "instruction": "go"}, {"id": "s2", "agent": "b", "instruction": "go"}))
    result = await lead.run("goal", events=watch)
    assert result.usage.model_calls == 3
    shown = [frame.splitlines()[1] for frame in seen if len(frame.splitlines()) > 1]
    assert any("lead synthesising" in line for line in shown)  # after both steps, before the run ended
    assert "lead synthesising" not in shown[-1] and "lead success" in shown[-1]
    headers = [frame.splitlines()[0] for frame in seen]
    assert any(h.endswith("  1 model call") for h in headers) and headers[-1].endswith("  3 model calls")
