"""Recording a run as it happens, and resuming one in the same process (the crash tests kill real processes)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from cadenza import Agent, ConfigError, Plan, ResumeError, RunNotFound, StoreError, Supervisor
from cadenza._ids import RunId
from cadenza._messages import Result, Task
from cadenza.models.base import ModelRequest
from cadenza.models.function import FunctionModel
from cadenza.stores.base import PutRun, Store, Write
from cadenza.stores.sqlite import SQLiteStore
from support import ScriptedWorker, kinds


async def until_step(store: Store, run_id: str, step_id: str, status: str) -> None:
    """Wait until the store shows ``step_id`` with ``status``: the state, not a guess at timing."""
    while True:
        try:
            snap = await store.snapshot(run_id)
        except RunNotFound:
            snap = None
        if snap is not None and any(s.step_id == step_id and s.status == status for s in snap.steps):
            return
        await asyncio.sleep(0.001)


def diamond() -> Plan:
    return Plan.of(
        {"id": "a", "agent": "w", "instruction": "A"},
        {"id": "b", "agent": "w", "instruction": "B", "depends_on": ["a"]},
        {"id": "c", "agent": "w", "instruction": "C", "depends_on": ["a"]},
        {"id": "d", "agent": "w", "instruction": "D", "depends_on": ["b", "c"]},
    )


async def test_a_run_is_recorded_step_by_step(store: Store) -> None:
    worker = ScriptedWorker("w")
    result = await Supervisor("lead", workers=[worker], plan=diamond()).run("goal", store=store, input={"n": 1})
    snap = await store.snapshot(result.run_id)
    assert snap.run.status == "success" and snap.run.goal == "goal" and json.loads(snap.run.input_json) == {"n": 1}
    assert snap.run.finished_at is not None and snap.run.workflow == "lead"
    assert [p.scope for p in snap.plans] == ["lead"] and Plan.model_validate_json(snap.plans[0].plan_json) == diamond()
    assert [(s.step_id, s.status, s.attempts) for s in snap.steps] == [(i, "success", 1) for i in "abcd"]
    outputs = {s.step_id: Result.model_validate_json(s.result_json or "").output for s in snap.steps}
    assert outputs == {i: f"w:{i}" for i in "abcd"}
    messages = await store.messages(result.run_id)
    assert sorted((m.step_id, m.kind) for m in messages) == sorted((i, k) for i in "abcd" for k in ("task", "result"))
    task_d = next(Task.model_validate_json(m.body_json) for m in messages if m.step_id == "d" and m.kind == "task")
    assert task_d.context == {"b": "w:b", "c": "w:c"}
    assert json.loads(snap.run.usage_json)["model_calls"] == result.usage.model_calls


async def test_the_run_row_and_each_result_are_durable_before_dependents_start(tmp_path: Path) -> None:
    """Each step reads the store from another connection: its dependencies' results are already there."""
    seen: dict[str, list[tuple[str, str]]] = {}

    async def check(task: Task) -> str:
        async with SQLiteStore(tmp_path / "runs.db") as reader:
            snap = await reader.snapshot(task.run_id)
            seen[task.step_id or ""] = [(s.step_id, s.status) for s in snap.steps if s.status == "success"]
            assert snap.run.status == "running"
        return "ok"

    async with SQLiteStore(tmp_path / "runs.db") as store:
        await Supervisor("lead", workers=[ScriptedWorker("w", check)], plan=diamond()).run("goal", store=store)
    assert seen["a"] == []
    assert ("a", "success") in seen["b"] and ("a", "success") in seen["c"]
    assert {("b", "success"), ("c", "success")} <= set(seen["d"])


async def test_a_cancelled_run_resumes_without_redoing_finished_steps(store: Store) -> None:
    gate, c_started = asyncio.Event(), asyncio.Event()
    calls: list[str] = []

    async def behaviour(task: Task) -> str:
        calls.append(task.step_id or "")
        if task.step_id == "c" and not gate.is_set():
            c_started.set()
            await asyncio.Event().wait()  # in flight when the run is cancelled
        return f"out-{task.step_id}"

    lead = Supervisor("lead", workers=[ScriptedWorker("w", behaviour)], plan=diamond())
    run = asyncio.create_task(lead.run("goal", store=store, run_id=RunId("run_resume1")))
    await until_step(store, "run_resume1", "b", "success")
    await c_started.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    snap = await store.snapshot("run_resume1")
    assert snap.run.status == "cancelled"
    assert json.loads(snap.run.usage_json)["model_calls"] == 2  # what a and b spent before the cancellation
    assert {s.step_id: s.status for s in snap.steps} == {"a": "success", "b": "success", "c": "cancelled",
                                                         "d": "skipped"}

    gate.set()
    calls.clear()
    events: list[object] = []
    result = await lead.resume("run_resume1", store=store, events=events.append)  # type: ignore[arg-type]
    assert result.status == "success" and calls == ["c", "d"]  # a and b were read back, not run
    assert kinds(events, "a") == ["StepRestored"] and kinds(events, "c") == ["StepStarted", "StepFinished"]
    assert {r.step.id: r.output for r in result.steps} == {i: f"out-{i}" for i in "abcd"}
    assert (await store.get_run("run_resume1")).status == "success"


async def test_resume_refuses_a_changed_team_and_says_what_changed(store: Store) -> None:
    def team(instructions: str) -> Supervisor[str]:
        model = FunctionModel(lambda request: "fine")
        return Supervisor("lead", workers=[Agent("w", instructions, model=model)], plan=diamond(), model=model)

    await store.apply([])  # an empty batch is fine
    run = asyncio.create_task(team("old").run("goal", store=store, run_id=RunId("run_changed")))
    await run
    row = await store.get_run("run_changed")
    from dataclasses import replace

    await store.apply([PutRun(replace(row, status="running"))])  # as if the process had died
    with pytest.raises(ResumeError) as caught:
        await team("new").resume("run_changed", store=store)
    assert caught.value.changes == ["workers.w.instructions: 'old' -> 'new'"]
    assert "--force" in str(caught.value)
    forced = await team("new").resume("run_changed", store=store, force=True)
    assert forced.status == "success"


async def test_resuming_a_finished_or_unknown_run_is_a_clear_error(store: Store) -> None:
    lead = Supervisor("lead", workers=[ScriptedWorker("w")], plan=diamond())
    done = await lead.run("goal", store=store)
    with pytest.raises(ResumeError, match=r"already finished \(success"):
        await lead.resume(done.run_id, store=store)
    with pytest.raises(RunNotFound, match="no run 'run_nope'"):
        await lead.resume("run_nope", store=store)


async def test_nested_teams_record_their_steps_under_the_parent_step(store: Store) -> None:
    inner = Supervisor("inner", workers=[ScriptedWorker("x")], plan=Plan.of(
        {"id": "i1", "agent": "x", "instruction": "one"}, {"id": "i2", "agent": "x", "instruction": "two"}))
    outer = Supervisor("lead", workers=[ScriptedWorker("w"), inner], plan=Plan.of(
        {"id": "prep", "agent": "w", "instruction": "prep"},
        {"id": "sub", "agent": "inner", "instruction": "delegate", "depends_on": ["prep"]}))
    result = await outer.run("goal", store=store)
    snap = await store.snapshot(result.run_id)
    assert sorted(p.scope for p in snap.plans) == ["lead", "lead/sub"]
    assert sorted((s.scope, s.step_id) for s in snap.steps) == [
        ("lead", "prep"), ("lead", "sub"), ("lead/sub", "i1"), ("lead/sub", "i2")]


async def test_a_store_that_fails_mid_run_stops_the_run_and_keeps_what_was_written(tmp_path: Path) -> None:
    class FailingAfter(SQLiteStore):
        budget = 3

        async def apply(self, writes: list[Write]) -> None:  # type: ignore[override]
            self.budget -= 1
            if self.budget < 0:
                raise StoreError("disk full (simulated)")
            await super().apply(writes)

    chain = Plan.of(*({"id": f"s{i}", "agent": "w", "instruction": str(i),
                       **({"depends_on": [f"s{i - 1}"]} if i else {})} for i in range(6)))
    worker = ScriptedWorker("w")
    async with FailingAfter(tmp_path / "runs.db") as store:
        with pytest.raises(StoreError, match="disk full"):
            await Supervisor("lead", workers=[worker], plan=chain).run("goal", store=store, run_id=RunId("run_fail"))
    assert len(worker.seen) < 6  # the run stopped instead of running on without a record
    async with SQLiteStore(tmp_path / "runs.db") as reader:
        snap = await reader.snapshot("run_fail")
    assert snap.run.status == "running"  # resumable: nothing claims it finished
    assert [s.step_id for s in snap.steps if s.status == "success"] == ["s0"]


async def test_planned_runs_resume_with_the_stored_plan_not_a_new_one(store: Store) -> None:
    plans: list[int] = []

    def planner(request: ModelRequest) -> str:
        if request.output_schema is not None and request.output_schema.json_schema.get("x-cadenza-plan"):
            plans.append(1)
            return json.dumps({"steps": [{"id": "only", "agent": "w", "instruction": "go", "depends_on": []}]})
        return "synthesised"

    model = FunctionModel(planner)
    blocker = asyncio.Event()

    async def slow(task: Task) -> str:
        if not blocker.is_set():
            await asyncio.Event().wait()
        return "done"

    lead = Supervisor("lead", workers=[ScriptedWorker("w", slow)], model=model)
    run = asyncio.create_task(lead.run("goal", store=store, run_id=RunId("run_planned")))
    await until_step(store, "run_planned", "only", "running")
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    blocker.set()
    result = await lead.resume("run_planned", store=store)
    assert result.status == "success" and plans == [1]
    # the resumed run's usage counts the planning done by the first process: the planner and the step (whose
    # output is the answer)
    assert result.usage.model_calls == len(model.calls) + 1 == 2


def test_run_sync_records_in_a_store_given_by_path(tmp_path: Path) -> None:
    lead = Supervisor("lead", workers=[ScriptedWorker("w")], plan=diamond())
    result = lead.run_sync("goal", store=tmp_path / "sync.db")
    assert result.ok

    async def read() -> list[str]:
        async with SQLiteStore(tmp_path / "sync.db") as reader:
            return [s.status for s in (await reader.snapshot(result.run_id)).steps]

    assert asyncio.run(read()) == ["success"] * 4


async def test_a_new_run_never_overwrites_a_stored_one(store: Store) -> None:
    lead = Supervisor("lead", workers=[ScriptedWorker("w")], plan=diamond())
    await lead.run("first", store=store, run_id=RunId("run_taken"))
    with pytest.raises(ConfigError, match="run 'run_taken' already exists"):
        await lead.run("second", store=store, run_id=RunId("run_taken"))
    assert (await store.get_run("run_taken")).goal == "first"


async def test_durability_wraps_any_engine_from_outside(store: Store) -> None:
    """The durable layer records and closes a run around whatever engine it is given; it never reaches into a team."""
    from cadenza._events import UsageRecorded
    from cadenza._messages import utcnow
    from cadenza._result import RunResult
    from cadenza._usage import Usage
    from cadenza.engine._durable import record_run
    from cadenza.engine._run_state import LocalPort, RunState

    ran: list[str] = []

    async def engine(task: Task, port: LocalPort) -> RunResult[str]:
        ran.append(task.instruction)
        port.events.emit(UsageRecorded(task.run_id, "solo", "planner", Usage(input_tokens=7, model_calls=1)))
        return RunResult(run_id=task.run_id, status="success", output="engine output", usage=Usage(input_tokens=7),
                         started_at=utcnow(), finished_at=utcnow())

    task = Task(task_id="t1", run_id=RunId("run_engine"), sender="user", recipient="solo", instruction="Go")
    result = await record_run(Agent("solo", model=FunctionModel(lambda r: "x", name="m")), engine, task, store,
                              state=RunState("run_engine"), events=None, source=None, options=None)
    snapshot = await store.snapshot("run_engine")

    assert ran == ["Go"] and result.output == "engine output"
    assert (snapshot.run.status, json.loads(snapshot.run.output_json or "null")) == ("success", "engine output")
    assert [(u.scope, u.source) for u in snapshot.usage] == [("solo", "planner")]  # the engine's events, journaled
