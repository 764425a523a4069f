"""Every state a run and a step pass through moves along the tables of `cadenza._status`, written down once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cadenza import ExecutionPolicy, Plan, RetryPolicy, Supervisor
from cadenza._events import (
    Event,
    RunFinished,
    RunStarted,
    StepCancelled,
    StepFailed,
    StepFinished,
    StepRestored,
    StepRetrying,
    StepSkipped,
    StepStarted,
    StepWaiting,
)
from cadenza._messages import Task
from cadenza._status import FINISHED_RUN, FINISHED_STEP, RUN_MOVES, STEP_MOVES, RunStatus, StepStatus
from support import Fail, ScriptedWorker


def step_status(event: Event) -> StepStatus | None:
    if isinstance(event, StepStarted | StepRetrying):
        return "running"
    if isinstance(event, StepFinished | StepRestored):
        return "failed" if event.status == "failure" else event.status
    if isinstance(event, StepFailed):
        return "failed"
    if isinstance(event, StepSkipped):
        return "skipped"
    if isinstance(event, StepCancelled):
        return "cancelled"
    if isinstance(event, StepWaiting):
        return "waiting"
    return None


def check_moves(events: list[Event], runs: dict[str, RunStatus], steps: dict[tuple[str, str], StepStatus]) -> None:
    """Follow every run and step through ``events`` from where ``runs`` and ``steps`` left them."""
    for event in events:
        if isinstance(event, RunStarted | RunFinished):
            now: RunStatus = "running" if isinstance(event, RunStarted) else event.status
            before = runs.get(event.team)
            assert before is None or now in RUN_MOVES[before], f"run {event.team}: {before} -> {now}"
            runs[event.team] = now
            continue
        moved = step_status(event)
        if moved is None:
            continue
        key = (event.team, getattr(event, "step_id", ""))
        was = steps.get(key, "pending")
        read_back = isinstance(event, StepRestored) and was in ("pending", moved)  # a finished step, read back
        assert moved in STEP_MOVES[was] or read_back, f"step {key}: {was} -> {moved}"
        steps[key] = moved


def diamond_lead(flaky: ScriptedWorker, broken: ScriptedWorker, slow: ScriptedWorker, **policy: object) -> Supervisor[str]:
    return Supervisor("lead", workers=[flaky, broken, slow], plan=Plan.of(
        {"id": "a", "agent": "flaky", "instruction": "go"},
        {"id": "b", "agent": "broken", "instruction": "go", "depends_on": ["a"]},
        {"id": "c", "agent": "slow", "instruction": "go", "depends_on": ["a"]},
        {"id": "d", "agent": "flaky", "instruction": "go", "depends_on": ["b", "c"]}),
        policy=ExecutionPolicy(retry=RetryPolicy(max_attempts=3, initial_delay=0.0, jitter=0.0), **policy))  # type: ignore[arg-type]


def workers() -> tuple[ScriptedWorker, ScriptedWorker, ScriptedWorker]:
    tries: dict[str, int] = {}

    async def flaky(task: Task) -> str:
        tries[task.step_id or ""] = tries.get(task.step_id or "", 0) + 1
        if tries[task.step_id or ""] < 2:
            raise Fail("try again", retryable=True)
        return "ok"

    async def broken(task: Task) -> str:
        raise Fail("no")

    async def slow(task: Task) -> str:
        await asyncio.sleep(0.05)
        return "ok"

    return ScriptedWorker("flaky", flaky), ScriptedWorker("broken", broken), ScriptedWorker("slow", slow)


async def test_retries_failures_skips_and_cancellations_move_along_the_tables() -> None:
    for failure_policy in ("continue", "fail_fast"):
        events: list[Event] = []
        result = await diamond_lead(*workers(), failure_policy=failure_policy).run("go", events=events.append)
        runs: dict[str, RunStatus] = {}
        steps: dict[tuple[str, str], StepStatus] = {}
        check_moves(events, runs, steps)
        assert runs["lead"] == result.status and result.status in FINISHED_RUN
        assert {s for (_, s) in steps} == {"a", "b", "c", "d"}
        assert steps["lead", "b"] == "failed" and steps["lead", "d"] == "skipped"
        if failure_policy == "fail_fast":  # c is cancelled while it runs, or skipped if it had not begun
            assert steps["lead", "c"] in ("cancelled", "skipped")


async def test_a_cancelled_run_resumes_along_the_tables(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    first: list[Event] = []
    b_started = asyncio.Event()

    def sink(event: Event) -> None:
        first.append(event)
        if isinstance(event, StepStarted) and event.step_id == "b":
            b_started.set()

    lead = Supervisor("lead", workers=[ScriptedWorker("w", _waits_once())],  # type: ignore[arg-type]
                      plan=Plan.of({"id": "a", "agent": "w", "instruction": "go"},
                                   {"id": "b", "agent": "w", "instruction": "go", "depends_on": ["a"]}))
    run = asyncio.create_task(lead.run("go", events=sink, store=path))
    await asyncio.wait_for(b_started.wait(), timeout=10)
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)
    runs: dict[str, RunStatus] = {}
    steps: dict[tuple[str, str], StepStatus] = {}
    check_moves(first, runs, steps)
    assert runs["lead"] == "cancelled" and steps["lead", "b"] == "cancelled"

    run_id = next(e.run_id for e in first)
    again: list[Event] = []
    result = await lead.resume(run_id, store=path, events=again.append)
    check_moves(again, runs, steps)
    assert result.status == "success" and runs["lead"] == "success"
    assert steps["lead", "a"] in FINISHED_STEP and steps["lead", "b"] == "success"


def _waits_once() -> object:
    calls = {"b": 0}

    async def behaviour(task: Task) -> str:
        if task.step_id == "b":
            calls["b"] += 1
            if calls["b"] == 1:
                await asyncio.Event().wait()  # cancelled here
        return "ok"

    return behaviour
