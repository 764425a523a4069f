"""Conformance: what `apply` writes is what the reads return, with the upserts each Write type documents."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC

import pytest

from cadenza._errors import RunNotFound, StoreError
from cadenza.stores import (
    AddMessage,
    AddSpawn,
    PutApproval,
    PutPlan,
    PutRun,
    PutStep,
    PutToolCall,
    PutUsage,
    Store,
    Write,
)
from stores.rows import (
    T0,
    approval_row,
    at,
    finished_step,
    full_run_row,
    message,
    plan_row,
    run_row,
    spawn_row,
    step_row,
    tool_call_row,
    usage_row,
)


async def test_a_run_comes_back_with_every_field_and_utc_datetimes(store: Store) -> None:
    row = full_run_row()
    await store.apply([PutRun(row)])

    got = await store.get_run("run-1")

    assert got == row
    for value in (got.started_at, got.finished_at):
        assert value is not None and value.tzinfo is not None and value.utcoffset() is not None
        assert value.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert got.started_at == row.started_at.astimezone(UTC)
    assert got.goal == row.goal


async def test_put_run_replaces_every_field(store: Store) -> None:
    await store.apply([PutRun(full_run_row())])
    second = run_row(status="success", goal="another goal", output_json='"ok"')

    await store.apply([PutRun(second)])

    assert await store.get_run("run-1") == second  # fields set before (error_json, source...) are cleared


async def test_plans_spawns_usage_and_tool_calls_are_replaced_by_key(store: Store) -> None:
    await store.apply(
        [
            PutRun(run_row()),
            PutPlan(plan_row(scope="lead")),
            PutPlan(plan_row(scope="lead/review", source="static")),
            AddSpawn(spawn_row("critic", proposal='{"v": 1}')),
            AddSpawn(spawn_row("editor")),
            PutUsage(usage_row("planner", '{"t": 1}')),
            PutUsage(usage_row("synthesizer", '{"t": 2}')),
            PutToolCall(tool_call_row("call-1")),
            PutToolCall(tool_call_row("call-2")),
        ]
    )
    await store.apply(
        [
            PutPlan(plan_row(scope="lead", plan_json='{"steps": [1]}', plan_hash="hash-2")),
            AddSpawn(spawn_row("critic", proposal='{"v": 2}')),
            PutUsage(usage_row("planner", '{"t": 10}')),
            PutToolCall(tool_call_row("call-1", status="finished", at=at(9), result_json='"sent"')),
        ]
    )

    snap = await store.snapshot("run-1")

    assert snap.plans == [
        plan_row(scope="lead", plan_json='{"steps": [1]}', plan_hash="hash-2"),
        plan_row(scope="lead/review", source="static"),
    ]
    assert snap.spawned == [spawn_row("critic", proposal='{"v": 2}'), spawn_row("editor")]
    assert snap.usage == [usage_row("planner", '{"t": 10}'), usage_row("synthesizer", '{"t": 2}')]
    assert snap.tool_calls == [
        tool_call_row("call-1", status="finished", at=at(9), result_json='"sent"'),
        tool_call_row("call-2"),
    ]


async def test_a_replaced_step_keeps_its_place(store: Store) -> None:
    await store.apply([PutRun(run_row()), *(PutStep(step_row(s)) for s in "abc")])
    await store.apply([PutStep(finished_step("a")), PutStep(step_row("b", status="running", attempts=1))])

    steps = (await store.snapshot("run-1")).steps

    assert [s.step_id for s in steps] == ["a", "b", "c"]
    assert steps[0] == finished_step("a")
    assert steps[1] == step_row("b", status="running", attempts=1)


async def test_writes_of_one_key_in_one_batch_apply_in_order(store: Store) -> None:
    await store.apply(
        [
            PutRun(run_row()),
            PutStep(step_row("x", status="running")),
            PutStep(step_row("y")),
            PutStep(finished_step("x")),
            PutApproval(approval_row("ap-1")),
            PutApproval(approval_row("ap-1", reason="a second request")),
            PutRun(run_row(status="waiting")),
        ]
    )

    snap = await store.snapshot("run-1")

    assert [(s.step_id, s.status) for s in snap.steps] == [("x", "success"), ("y", "pending")]
    assert snap.approvals == [approval_row("ap-1")]
    assert snap.run.status == "waiting"


async def test_an_approval_written_again_is_kept_as_it_is(store: Store) -> None:
    await store.apply([PutRun(run_row()), PutApproval(approval_row())])
    decided = await store.decide_approval("run-1", "ap-1", approved=True, by="ana")

    await store.apply([PutApproval(approval_row(reason="asked again"))])

    assert (await store.snapshot("run-1")).approvals == [decided]


async def test_messages_come_back_in_the_order_recorded_with_ascending_seq(store: Store) -> None:
    await store.apply([PutRun(run_row("run-1")), PutRun(run_row("run-2"))])
    expected: dict[str, list[str]] = {"run-1": [], "run-2": []}
    for batch in range(5):
        writes: list[Write] = []
        for n in range(3):
            run_id = random.choice(["run-1", "run-2"])
            body = f"{batch}.{n}"
            expected[run_id].append(body)
            writes.append(AddMessage(replace(message(body, run_id), seq=999)))
        await store.apply(writes)

    for run_id, bodies in expected.items():
        got = await store.messages(run_id)
        assert [m.body_json for m in got] == [f'{{"n": "{b}"}}' for b in bodies]
        seqs = [m.seq for m in got]
        assert seqs == sorted(set(seqs)) and 999 not in seqs
        assert all(m.at == T0 and m.run_id == run_id for m in got)
    assert await store.messages("no-such-run") == []


async def test_a_snapshot_holds_only_its_own_run(store: Store) -> None:
    for run_id in ("run-1", "run-2"):
        await store.apply(
            [
                PutRun(run_row(run_id)),
                PutPlan(plan_row(run_id)),
                PutStep(step_row("a", run_id)),
                AddSpawn(spawn_row("critic", run_id)),
                PutUsage(usage_row("planner", "{}", run_id)),
                PutToolCall(tool_call_row("k", run_id)),
                PutApproval(approval_row("ap", run_id)),
            ]
        )

    snap = await store.snapshot("run-2")

    assert snap.run == run_row("run-2")
    assert snap.plans == [plan_row("run-2")]
    assert snap.steps == [step_row("a", "run-2")]
    assert snap.spawned == [spawn_row("critic", "run-2")]
    assert snap.usage == [usage_row("planner", "{}", "run-2")]
    assert snap.tool_calls == [tool_call_row("k", "run-2")]
    assert snap.approvals == [approval_row("ap", "run-2")]


async def test_a_batch_with_an_object_that_is_not_a_write_stores_nothing(store: Store) -> None:
    await store.apply([PutRun(run_row("run-1"))])
    bad: list[object] = [
        PutRun(run_row("run-1", status="failure")),
        PutRun(run_row("run-2")),
        PutStep(step_row("a")),
        "not a write",
    ]

    with pytest.raises(TypeError, match="Write"):
        await store.apply(bad)  # type: ignore[arg-type]

    assert (await store.get_run("run-1")).status == "running"
    with pytest.raises(RunNotFound):
        await store.get_run("run-2")
    assert (await store.snapshot("run-1")).steps == []


async def test_a_batch_that_fails_in_the_database_stores_nothing(store: Store) -> None:
    await store.apply([PutRun(run_row("run-1"))])
    missing_agent = step_row("b", agent=None)  # NOT NULL: only the database finds out

    with pytest.raises(StoreError):
        await store.apply(
            [
                PutRun(run_row("run-1", status="failure")),
                PutStep(step_row("a")),
                AddMessage(message("lost")),
                PutStep(missing_agent),
            ]
        )

    assert (await store.get_run("run-1")).status == "running"
    assert (await store.snapshot("run-1")).steps == []
    assert await store.messages("run-1") == []
    await store.apply([PutStep(step_row("a"))])  # the store is still usable
    assert [s.step_id for s in (await store.snapshot("run-1")).steps] == ["a"]


async def test_a_large_fan_out_batch_round_trips_in_order(store: Store) -> None:
    writes: list[Write] = [PutRun(run_row())]
    for i in range(500):
        writes += [PutStep(step_row(f"s{i}")), AddMessage(message(str(i)))]

    await store.apply(writes)

    assert [s.step_id for s in (await store.snapshot("run-1")).steps] == [f"s{i}" for i in range(500)]
    assert [m.body_json for m in await store.messages("run-1")] == [f'{{"n": "{i}"}}' for i in range(500)]


async def test_an_empty_batch_is_a_no_op(store: Store) -> None:
    await store.apply([])
    assert await store.list_runs() == []


async def test_list_runs_is_newest_first_and_limited(store: Store) -> None:
    starts = list(range(6))
    random.shuffle(starts)
    await store.apply([PutRun(run_row(f"run-{s}", started_at=at(s * 60))) for s in starts])

    assert [r.run_id for r in await store.list_runs()] == [f"run-{s}" for s in (5, 4, 3, 2, 1, 0)]
    assert [r.run_id for r in await store.list_runs(limit=2)] == ["run-5", "run-4"]
    assert await store.list_runs(limit=0) == []


async def test_a_missing_run_raises_run_not_found_naming_it_and_the_store(store: Store) -> None:
    for read in (store.get_run, store.snapshot):
        with pytest.raises(RunNotFound, match="nope") as caught:
            await read("nope")
        assert caught.value.run_id == "nope"
        assert store.url in str(caught.value)
        assert isinstance(caught.value, StoreError)


async def test_a_store_that_is_not_open_says_so(store: Store) -> None:
    await store.close()
    await store.close()  # idempotent

    with pytest.raises(StoreError, match="store is not open"):
        await store.apply([PutRun(run_row())])
    with pytest.raises(StoreError, match="store is not open"):
        await store.get_run("run-1")
    with pytest.raises(StoreError, match="store is not open"):
        await store.workspace_get("run-1", "k")
