"""The scheduler: dependencies, no barriers, limits, retries, timeouts, failure policies, cancellation."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cadenza import ExecutionPolicy, Executor, Plan, PlanError, RetryPolicy, Step
from cadenza._events import Event, StepFailed, StepFinished, StepRetrying, StepSkipped, StepStarted
from cadenza._ids import RunId
from cadenza._outcomes import PlanOutcome
from cadenza.engine._stream import EventStream
from support import Fail, ScriptedWorker, kinds, other_tasks

RUN = RunId("run_test")


def plan(*steps: tuple[str, str, list[str]]) -> Plan:
    return Plan(steps=tuple(Step(id=i, agent=a, instruction=f"do {i}", depends_on=tuple(d)) for i, a, d in steps))


async def run(p: Plan, workers: list[ScriptedWorker], events: list[Event], **policy: object):
    executor = Executor(ExecutionPolicy(**policy))  # type: ignore[arg-type]
    return await executor.run(p, {w.name: w for w in workers}, run_id=RUN, team="lead", events=events.append)


def outcome_of(events: list[Event], step_id: str) -> str:
    """The kind of the last event about ``step_id``."""
    return [type(e).__name__ for e in events if getattr(e, "step_id", None) == step_id][-1]


def index(events: list[Event], cls: type, step_id: str) -> int:
    return next(i for i, e in enumerate(events) if isinstance(e, cls) and e.step_id == step_id)  # type: ignore[attr-defined]


async def test_dependent_starts_only_after_all_dependencies_finish(events: list[Event]) -> None:
    w = ScriptedWorker("w")
    outcome = await run(plan(("a", "w", []), ("b", "w", []), ("c", "w", ["a", "b"])), [w], events)
    assert outcome.status == "success"
    assert index(events, StepStarted, "c") > index(events, StepFinished, "a")
    assert index(events, StepStarted, "c") > index(events, StepFinished, "b")
    # The dependent receives exactly its dependencies' outputs as context.
    task_c = next(t for t in w.seen if t.step_id == "c")
    assert task_c.context == {"a": "w:a", "b": "w:b"}


async def test_no_layer_barrier(events: list[Event]) -> None:
    """A step whose only dependency finished starts while an unrelated slow step still runs."""
    slow_release = asyncio.Event()

    async def behaviour(task):  # type: ignore[no-untyped-def]
        if task.step_id == "slow":
            await slow_release.wait()
        if task.step_id == "after_fast":
            slow_release.set()  # only possible if we started before "slow" finished
        return task.step_id

    w = ScriptedWorker("w", behaviour)
    p = plan(("fast", "w", []), ("slow", "w", []), ("after_fast", "w", ["fast"]), ("join", "w", ["slow", "after_fast"]))
    outcome = await asyncio.wait_for(run(p, [w], events), 5)
    assert outcome.status == "success"
    assert index(events, StepStarted, "after_fast") < index(events, StepFinished, "slow")


async def test_global_concurrency_limit_holds(events: list[Event]) -> None:
    async def behaviour(task):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return 1

    w = ScriptedWorker("w", behaviour)
    p = plan(*[(f"s{i}", "w", []) for i in range(20)])
    outcome = await run(p, [w], events, max_concurrency=3)
    assert outcome.status == "success"
    assert w.max_running == 3


async def test_per_agent_concurrency_limit_holds(events: list[Event]) -> None:
    async def behaviour(task):  # type: ignore[no-untyped-def]
        for _ in range(3):
            await asyncio.sleep(0)
        return 1

    a, b = ScriptedWorker("a", behaviour), ScriptedWorker("b", behaviour)
    p = plan(*[(f"a{i}", "a", []) for i in range(10)], *[(f"b{i}", "b", []) for i in range(10)])
    await run(p, [a, b], events, per_agent_concurrency={"a": 2, "b": 4})
    assert (a.max_running, b.max_running) == (2, 4)


async def test_continue_policy_skips_dependents_and_finishes_independent_branches(events: list[Event]) -> None:
    async def behaviour(task):  # type: ignore[no-untyped-def]
        if task.step_id == "bad":
            raise Fail("boom")
        return task.step_id

    w = ScriptedWorker("w", behaviour)
    p = plan(("bad", "w", []), ("child", "w", ["bad"]), ("grandchild", "w", ["child"]), ("other", "w", []), ("tail", "w", ["other"]))
    outcome = await run(p, [w], events)
    status = {sid: r.status for sid, r in outcome.records.items()}
    assert status == {"bad": "failed", "child": "skipped", "grandchild": "skipped", "other": "success", "tail": "success"}
    assert outcome.records["child"].skip_reason == "dependency 'bad' failed"
    assert outcome.records["grandchild"].skip_reason == "dependency 'child' was skipped because step 'bad' failed"
    assert outcome.status == "partial"
    assert kinds(events, "child") == ["StepSkipped"]
    assert not any(t.step_id in ("child", "grandchild") for t in w.seen)


async def test_fail_fast_cancels_running_steps_cleanly(events: list[Event]) -> None:
    started = asyncio.Event()

    async def behaviour(task):  # type: ignore[no-untyped-def]
        if task.step_id == "bad":
            await started.wait()
            raise Fail("boom")
        started.set()
        await asyncio.Event().wait()  # runs until cancelled

    w = ScriptedWorker("w", behaviour)
    p = plan(("bad", "w", []), ("long", "w", []), ("later", "w", ["long"]))
    outcome = await asyncio.wait_for(run(p, [w], events, failure_policy="fail_fast"), 5)
    assert outcome.status == "failure"
    assert {sid: r.status for sid, r in outcome.records.items()} == {"bad": "failed", "long": "cancelled", "later": "skipped"}
    assert w.cancelled == 1
    assert w.running == 0
    assert other_tasks() == []


async def test_retryable_failures_are_retried_with_backoff(events: list[Event]) -> None:
    calls = {"n": 0}

    async def behaviour(task):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] < 3:
            raise Fail("flaky", retryable=True)
        return "ok"

    w = ScriptedWorker("w", behaviour)
    retry = RetryPolicy(max_attempts=3, initial_delay=0.001, max_delay=0.002)
    outcome = await run(plan(("s", "w", [])), [w], events, retry=retry)
    record = outcome.records["s"]
    assert (record.status, record.attempts, record.output) == ("success", 3, "ok")
    assert [t.attempt for t in w.seen] == [1, 2, 3]
    assert kinds(events, "s") == ["StepStarted", "StepRetrying", "StepStarted", "StepRetrying", "StepStarted", "StepFinished"]
    delays = [e.delay for e in events if isinstance(e, StepRetrying)]
    assert 0.001 <= delays[0] <= 0.0015 and 0.002 <= delays[1] <= 0.003
    # Usage of failed attempts still counts.
    assert outcome.usage.model_calls == 3


async def test_non_retryable_failure_is_not_retried(events: list[Event]) -> None:
    async def behaviour(task):  # type: ignore[no-untyped-def]
        raise Fail("bad request", retryable=False)

    w = ScriptedWorker("w", behaviour)
    outcome = await run(plan(("s", "w", [])), [w], events, retry=RetryPolicy(max_attempts=5, initial_delay=0))
    assert outcome.records["s"].attempts == 1
    assert kinds(events) == ["StepStarted", "StepFailed"]


async def test_retries_stop_at_max_attempts(events: list[Event]) -> None:
    async def behaviour(task):  # type: ignore[no-untyped-def]
        raise Fail("always", retryable=True)

    w = ScriptedWorker("w", behaviour)
    outcome = await run(plan(("s", "w", [])), [w], events, retry=RetryPolicy(max_attempts=2, initial_delay=0))
    record = outcome.records["s"]
    assert (record.status, record.attempts) == ("failed", 2)
    failed = [e for e in events if isinstance(e, StepFailed)]
    assert failed[0].error.message == "always"


async def test_step_timeout_is_a_retryable_failure(events: list[Event]) -> None:
    async def behaviour(task):  # type: ignore[no-untyped-def]
        if task.attempt == 1:
            await asyncio.Event().wait()
        return "second try"

    w = ScriptedWorker("w", behaviour)
    outcome = await run(plan(("s", "w", [])), [w], events, step_timeout=0.05, retry=RetryPolicy(initial_delay=0))
    record = outcome.records["s"]
    assert (record.status, record.attempts, record.output) == ("success", 2, "second try")
    retry = next(e for e in events if isinstance(e, StepRetrying))
    assert retry.error.type == "StepTimeout" and "timed out after 0.05s" in retry.error.message
    assert w.cancelled == 1
    assert w.seen[0].deadline is not None


async def test_a_worker_that_raises_becomes_a_failure_result(events: list[Event]) -> None:
    async def behaviour(task):  # type: ignore[no-untyped-def]
        raise RuntimeError("contract broken")

    w = ScriptedWorker("w", behaviour)
    outcome = await run(plan(("s", "w", []), ("t", "w", [])), [w], events)
    assert outcome.records["s"].error is not None
    assert outcome.records["s"].error.type == "RuntimeError"


async def test_cancelling_a_run_cancels_every_step_and_leaves_no_orphans(events: list[Event]) -> None:
    both_running = asyncio.Event()
    w = ScriptedWorker("w")

    async def behaviour(task):  # type: ignore[no-untyped-def]
        if w.running == 2:
            both_running.set()
        await asyncio.Event().wait()

    w.behaviour = behaviour
    p = plan(("a", "w", []), ("b", "w", []), ("c", "w", ["a"]))
    run_task = asyncio.create_task(run(p, [w], events))
    await both_running.wait()
    run_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run_task
    assert w.cancelled == 2 and w.running == 0
    assert other_tasks() == []
    assert sorted(kinds(events)) == ["StepCancelled", "StepCancelled", "StepSkipped", "StepStarted", "StepStarted"]


async def test_a_chain_runs_in_a_few_tasks_and_still_lets_the_loop_run(events: list[Event]) -> None:
    """A step goes on in its predecessor's task (no task and no loop turn a step), but every 32 steps the chain
    takes a new task, so other work on the loop runs even while steps that never wait follow one another."""
    from cadenza.engine._executor import _INLINE

    tasks: list[asyncio.Task[object] | None] = []
    ticks: list[int] = []

    async def behaviour(task):  # type: ignore[no-untyped-def]
        tasks.append(asyncio.current_task())
        return len(ticks)  # never waits

    async def ticker() -> None:
        while True:
            ticks.append(1)
            await asyncio.sleep(0)

    w = ScriptedWorker("w", behaviour)
    n = 100
    ticking = asyncio.create_task(ticker())
    outcome = await run(plan(*[(f"s{i}", "w", [f"s{i - 1}"] if i else []) for i in range(n)]), [w], events)
    ticking.cancel()
    assert outcome.status == "success"
    assert len({id(t) for t in tasks}) == -(-n // (_INLINE + 1))  # 4 tasks for 100 steps
    outputs = [outcome.records[f"s{i}"].output for i in range(n)]
    assert outputs[0] < outputs[_INLINE + 1] < outputs[2 * (_INLINE + 1)]  # the ticker ran between the tasks
    assert [e.step_id for e in events if isinstance(e, StepStarted)] == [f"s{i}" for i in range(n)]


async def test_a_chain_step_run_in_its_predecessors_task_is_cancelled_with_the_run(events: list[Event]) -> None:
    started = asyncio.Event()

    async def behaviour(task):  # type: ignore[no-untyped-def]
        if task.step_id == "b":
            started.set()
            await asyncio.Event().wait()
        return 1

    w = ScriptedWorker("w", behaviour)
    run_task = asyncio.create_task(run(plan(("a", "w", []), ("b", "w", ["a"]), ("c", "w", ["b"])), [w], events))
    await started.wait()
    run_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run_task
    assert w.cancelled == 1 and other_tasks() == []
    assert sorted(kinds(events)) == ["StepCancelled", "StepFinished", "StepSkipped", "StepStarted", "StepStarted"]
    assert outcome_of(events, "b") == "StepCancelled" and outcome_of(events, "c") == "StepSkipped"


async def test_steps_made_ready_together_each_run_in_parallel(events: list[Event]) -> None:
    """One of them goes on in the finished step's task, the others get their own: all run at once."""
    all_running = asyncio.Event()
    w = ScriptedWorker("w")

    async def behaviour(task):  # type: ignore[no-untyped-def]
        if task.step_id != "root":
            if w.running == 3:
                all_running.set()
            await all_running.wait()
        return 1

    w.behaviour = behaviour
    p = plan(("root", "w", []), ("x", "w", ["root"]), ("y", "w", ["root"]), ("z", "w", ["root"]))
    outcome = await asyncio.wait_for(run(p, [w], events), 5)
    assert outcome.status == "success" and w.max_running == 3


async def test_invalid_plan_is_rejected_before_anything_runs(events: list[Event]) -> None:
    w = ScriptedWorker("w")
    with pytest.raises(PlanError) as info:
        await run(plan(("a", "w", ["b"]), ("b", "nobody", ["a"])), [w], events)
    assert len(info.value.problems) == 2
    assert w.seen == [] and events == []


@st.composite
def random_dags(draw: st.DrawFn) -> tuple[Plan, set[str]]:
    n = draw(st.integers(1, 25))
    steps = []
    for i in range(n):
        deps = draw(st.lists(st.integers(0, i - 1), max_size=4, unique=True)) if i else []
        steps.append((f"s{i}", "w", [f"s{d}" for d in deps]))
    failing = {f"s{i}" for i in draw(st.sets(st.integers(0, n - 1), max_size=3))}
    order = draw(st.permutations(range(n)))
    return plan(*[steps[i] for i in order]), failing


def fails_on(failing: set[str], *, pause_after: bool = False):  # type: ignore[no-untyped-def]
    """A behaviour that yields to the loop, fails the scripted steps, and (optionally) yields again after."""

    async def behaviour(task):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0)
        if task.step_id in failing:
            raise Fail("scripted")
        if pause_after:
            await asyncio.sleep(0)
        return task.step_id

    return behaviour


@settings(max_examples=60)
@given(random_dags(), st.sampled_from([None, 1, 3]))
def test_scheduler_properties_on_random_dags(dag: tuple[Plan, set[str]], limit: int | None) -> None:
    """Every step starts after all its dependencies finished, runs iff they all succeeded, and once."""
    p, failing = dag
    events: list[Event] = []
    w = ScriptedWorker("w", fails_on(failing))
    outcome = asyncio.run(run(p, [w], events, max_concurrency=limit))
    finished_at = {e.step_id: i for i, e in enumerate(events) if isinstance(e, StepFinished | StepFailed)}
    started_at = {e.step_id: i for i, e in enumerate(events) if isinstance(e, StepStarted)}
    for step in p.steps:
        deps_ok = all(outcome.records[d].status == "success" for d in step.depends_on)
        if deps_ok:
            assert step.id in started_at, f"{step.id} never started although its dependencies succeeded"
            assert all(finished_at[d] < started_at[step.id] for d in step.depends_on)
            assert outcome.records[step.id].status == ("failed" if step.id in failing else "success")
        else:
            assert step.id not in started_at
            assert outcome.records[step.id].status == "skipped"
    assert sorted(t.step_id or "" for t in w.seen) == sorted(started_at)
    assert sum(isinstance(e, StepSkipped) for e in events) == sum(r.status == "skipped" for r in outcome.records.values())
    if limit:
        assert w.max_running <= limit


async def test_fail_fast_with_a_limit_skips_waiting_steps_once_and_leaves_nothing_running(events: list[Event]) -> None:
    async def behaviour(task):  # type: ignore[no-untyped-def]
        if task.step_id == "a":
            raise Fail("boom")
        return task.step_id

    w = ScriptedWorker("w", behaviour)
    p = plan(("a", "w", []), ("b", "w", []), ("c", "w", []), ("d", "w", ["b"]))
    outcome = await run(p, [w], events, max_concurrency=1, failure_policy="fail_fast")
    assert other_tasks() == []
    assert {sid: r.status for sid, r in outcome.records.items()} == {"a": "failed", "b": "skipped", "c": "skipped", "d": "skipped"}
    assert kinds(events) == ["StepStarted", "StepFailed", "StepSkipped", "StepSkipped", "StepSkipped"]
    reasons = {r.skip_reason for r in outcome.records.values() if r.status == "skipped"}
    assert reasons == {"the run stopped: step 'a' failed (fail_fast)"}
    assert [t.step_id for t in w.seen] == ["a"]


@settings(max_examples=60)
@given(random_dags(), st.sampled_from([None, 1, 2, 4]))
def test_fail_fast_on_random_dags_settles_every_step_exactly_once(dag: tuple[Plan, set[str]], limit: int | None) -> None:
    p, failing = dag

    async def scenario() -> tuple[PlanOutcome, list[asyncio.Task[object]]]:
        outcome = await run(p, [w], events, max_concurrency=limit, failure_policy="fail_fast")
        return outcome, other_tasks()

    events: list[Event] = []
    w = ScriptedWorker("w", fails_on(failing, pause_after=True))
    outcome, leftover = asyncio.run(scenario())
    assert leftover == []
    terminal = [e for e in events if not isinstance(e, StepStarted | StepRetrying)]
    assert sorted(e.step_id for e in terminal) == sorted(s.id for s in p.steps)  # one ending per step
    records = outcome.records
    assert all(r.status in ("success", "failed", "skipped", "cancelled") for r in records.values())
    if any(records[s].status == "failed" for s in failing if s in records):
        assert outcome.status == "failure"
    assert w.running == 0


async def test_a_sink_that_raises_inside_a_step_task_does_not_stall_the_executor() -> None:
    seen: list[str] = []

    def sink(event: Event) -> None:
        seen.append(type(event).__name__)
        if isinstance(event, StepStarted) and event.step_id == "b":
            raise RuntimeError("sink broke inside a step task")

    executor = Executor()
    w = ScriptedWorker("w")
    outcome = await asyncio.wait_for(executor.run(plan(("a", "w", []), ("b", "w", ["a"]), ("c", "w", ["b"])),
                                                  {"w": w}, run_id=RUN, team="lead", events=sink), timeout=10)
    assert outcome.status == "success"
    assert [r.status for r in outcome.records.values()] == ["success", "success", "success"]
    assert seen[-1] == "StepStarted"  # detached once it raised
    assert not other_tasks()


async def test_a_step_task_that_breaks_stops_the_run_with_its_error_instead_of_hanging() -> None:
    class BrokenJournal:
        """A journal sink whose record of a finished step raises something that is not a StoreError (a bug)."""

        def __call__(self, event: Event) -> None:
            if isinstance(event, StepFinished):
                raise KeyError("a bug in the journal")

        async def flush(self) -> None:
            return None

    from cadenza.engine import _executor
    from cadenza.engine._run_state import RunState

    port = RunState(RUN).port()
    port.events = EventStream(journal=BrokenJournal())  # type: ignore[arg-type]
    run = _executor._PlanRun(Executor(), plan(("a", "w", []), ("b", "w", ["a"])), {"w": ScriptedWorker("w")}, RUN,
                             "lead", None, 0, port, None)
    with pytest.raises(KeyError, match="a bug in the journal"):
        await asyncio.wait_for(run.execute(), timeout=10)
    assert run.records["b"].status == "skipped"
    assert not other_tasks()
