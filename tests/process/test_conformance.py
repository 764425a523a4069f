"""One behaviour on every backend: the same runs on the local backend, on worker processes and on Ray actors.

Each test runs on all three. On the process and Ray backends every agent step runs in another OS
process that rebuilt the agent from its spec and reaches its run only through the port: budgets,
tool call records, approvals, the workspace and the audit log all cross the pipe (or Ray's calls),
and every Result comes back sealed with the worker's own key. Same seed, same outputs, same stored
rows. The Ray backend runs on one local Ray instance shared by the session (`ray_instance`).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from cadenza import (
    Agent,
    Budget,
    ConfigError,
    Plan,
    ProcessBackend,
    Supervisor,
    approve,
    tool,
)
from cadenza._events import StepRetrying
from cadenza.backends.base import Backend
from cadenza.backends.local import LocalBackend
from cadenza.backends.ray import RayBackend
from cadenza.events import FinalResult, ModelDelta, TextDelta, ToolCallDelta, ToolCalled, ToolStarted
from cadenza.patterns._workflow import load_workflow
from cadenza.stores.sqlite import SQLiteStore
from process.worker_tools import EFFECTS, deploy, effects, publish, remember, send_note, where

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@asynccontextmanager
async def opened(request: pytest.FixtureRequest, name: str, workers: int) -> AsyncIterator[Any]:
    """The backend called ``name``, with ``workers`` worker processes or actors, whose tools write to this test's
    effects file."""
    if name == "local":
        yield LocalBackend()
    elif name == "ray":
        request.getfixturevalue("ray_instance")
        async with RayBackend(workers=workers, runtime_env={"env_vars": {EFFECTS: os.environ[EFFECTS]}}) as actors:
            yield actors
    else:
        async with ProcessBackend(workers=workers) as pool:
            yield pool


@pytest.fixture(params=["local", "process", "ray"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Backend]:
    monkeypatch.setenv(EFFECTS, str(tmp_path / "effects.txt"))  # before any worker process starts
    async with opened(request, request.param, 2) as found:
        yield found


def on(team: Supervisor[Any], backend: Backend) -> Supervisor[Any]:
    team.use_backend(backend)
    return team


def one_step(agent: Agent[Any], backend: Backend, step: str = "s1") -> Supervisor[str]:
    """A team that gives ``agent`` one step, on ``backend``."""
    return on(Supervisor("lead", workers=[agent], model="simulated:conf",
                         plan=Plan.of({"id": step, "agent": agent.name, "instruction": "Do it"})), backend)


def rows(snapshot: Any) -> list[tuple[Any, ...]]:
    """The stored steps, without what differs between any two runs (ids and times)."""
    found = []
    for step in sorted(snapshot.steps, key=lambda s: (s.scope, s.step_id)):
        result = json.loads(step.result_json) if step.result_json else {}
        found.append((step.scope, step.step_id, step.agent, step.status, step.attempts, step.usage_json,
                      result.get("output")))
    return found


async def test_a_workflow_gives_the_same_output_usage_and_stored_steps(backend: Backend, tmp_path: Path) -> None:
    baseline = load_workflow(str(EXAMPLES / "teams.yaml")).entry
    team = on(load_workflow(str(EXAMPLES / "teams.yaml")).entry, backend)

    async with SQLiteStore(tmp_path / "a.db") as first, SQLiteStore(tmp_path / "b.db") as second:
        expected = await baseline.run("Compare X", store=first, run_id="run_same")  # type: ignore[arg-type]
        result = await team.run("Compare X", store=second, run_id="run_same")  # type: ignore[arg-type]
        stored = (rows(await first.snapshot("run_same")), rows(await second.snapshot("run_same")))

    assert result.status == expected.status == "success"
    assert (result.output, result.usage) == (expected.output, expected.usage)
    assert stored[0] == stored[1] and len(stored[0]) > 3


async def test_a_streamed_run_tells_each_workers_answer_piece_by_piece_from_whichever_process_it_runs_in(
        backend: Backend) -> None:
    """The worker's model streams in the worker's process; its pieces and tool starts cross to the run's stream."""
    team = one_step(Agent("w", "Say where.", model="simulated:conf", tools=[where]), backend)
    events = [event async for event in team.stream("Go")]

    final = events[-1]
    assert isinstance(final, FinalResult) and final.result.status == "success"
    step = final.result.steps[0]
    told = [e.delta for e in events if isinstance(e, ModelDelta) and e.scope == "lead/s1"]
    assert "".join(d.text for d in told if isinstance(d, TextDelta)) == step.output
    calls = [d for d in told if isinstance(d, ToolCallDelta)]
    assert calls[0].name == "where" and json.loads("".join(c.arguments for c in calls)) == {}
    started = [e for e in events if isinstance(e, ToolStarted)]
    ended = [e for e in events if isinstance(e, ToolCalled)]
    assert [(e.tool, e.call_id) for e in started] == [(e.tool, e.call_id) for e in ended] and started


async def test_a_failing_step_fails_the_same_and_its_dependent_is_skipped(backend: Backend, tmp_path: Path) -> None:
    def team(on_backend: Backend | None) -> Supervisor[str]:
        short = Agent("short", "Look it up.", model="simulated:conf", tools=[where], max_turns=1)  # fails: a tool call
        steady = Agent("steady", "Answer.", model="simulated:conf")                              # needs a 2nd turn
        lead = Supervisor("lead", workers=[short, steady], model="simulated:conf",
                          plan=Plan.of({"id": "s1", "agent": "short", "instruction": "Look it up"},
                                       {"id": "s2", "agent": "steady", "instruction": "Use it", "depends_on": ["s1"]},
                                       {"id": "s3", "agent": "steady", "instruction": "Answer anyway"}))
        return lead if on_backend is None else on(lead, on_backend)

    async with SQLiteStore(tmp_path / "a.db") as first, SQLiteStore(tmp_path / "b.db") as second:
        expected = await team(None).run("Go", store=first, run_id="run_fail")  # type: ignore[arg-type]
        result = await team(backend).run("Go", store=second, run_id="run_fail")  # type: ignore[arg-type]
        stored = (rows(await first.snapshot("run_fail")), rows(await second.snapshot("run_fail")))

    assert [(s.step.id, s.status) for s in result.steps] == [("s1", "failed"), ("s2", "skipped"), ("s3", "success")]
    assert result.status == expected.status == "partial"
    assert result.steps[0].error is not None and result.steps[0].error.type == "MaxTurnsExceeded"
    assert (result.output, result.usage) == (expected.output, expected.usage)
    assert stored[0] == stored[1]


async def test_a_side_effect_is_recorded_through_the_run_and_audited(backend: Backend, tmp_path: Path) -> None:
    team = one_step(Agent("writer", "Send the note.", model="simulated:conf", tools=[send_note]), backend)

    async with SQLiteStore(tmp_path / "runs.db") as store:
        result = await team.run("Notify", store=store, run_id="run_fx")  # type: ignore[arg-type]
        snapshot = await store.snapshot("run_fx")
        audit = await store.audit("run_fx")

    assert result.status == "success" and effects() == ["sent"]
    [call] = snapshot.tool_calls
    assert (call.scope, call.tool, call.status, call.result_json) == ("lead/s1", "send_note", "finished", '"sent"')
    kinds = [r.kind for r in audit]
    assert kinds.count("tool.called") == 1 and kinds.count("model.called") >= 2
    sent = [json.loads(r.detail_json) for r in audit if r.kind == "message.sent"]
    assert sent and all(d["signed"] for d in sent)


async def test_an_approval_pauses_the_step_and_the_approved_call_runs_once(backend: Backend, tmp_path: Path) -> None:
    def team() -> Supervisor[str]:
        return one_step(Agent("ops", "Deploy.", model="simulated:conf", tools=[deploy]), backend, "ship")

    async with SQLiteStore(tmp_path / "runs.db") as store:
        waiting = await team().run("Ship", store=store, run_id="run_ok")  # type: ignore[arg-type]
        assert waiting.status == "waiting" and effects() == []
        await approve(store, "run_ok", "ship")
        done = await team().resume("run_ok", store=store)

    assert done.status == "success" and effects() == ["deployed"]


async def test_a_ceiling_above_denies_the_tool_in_whichever_process_the_agent_runs(backend: Backend) -> None:
    author = Agent("author", "Publish.", model="simulated:conf", tools=[publish])
    inner = Supervisor("desk", workers=[author], model="simulated:conf",
                       plan=Plan.of({"id": "p1", "agent": "author", "instruction": "Publish it"}))
    lead = on(Supervisor("lead", workers=[inner], model="simulated:conf", scopes={"read"},
                         plan=Plan.of({"id": "t1", "agent": "desk", "instruction": "Delegate"})), backend)

    result = await lead.run("Go")

    assert result.status == "success" and effects() == []  # the call was denied, the model told so


async def test_parallel_steps_never_spend_past_the_run_budget(backend: Backend) -> None:
    workers = [Agent(f"w{i}", "Answer.", model="simulated:conf", max_tokens=64) for i in range(12)]
    plan = Plan.of(*({"id": f"s{i}", "agent": f"w{i}", "instruction": f"Question {i}"} for i in range(12)))
    team = on(Supervisor("lead", workers=workers, model="simulated:conf", plan=plan), backend)

    result = await team.run("Answer all", budget=Budget(tokens=200))

    assert result.status == "partial" and result.usage.total_tokens <= 200
    assert 0 < sum(1 for s in result.steps if s.status == "success") < 12


async def test_a_step_cancelled_mid_call_gives_back_its_budget_reservation(backend: Backend) -> None:
    """s1's call is in flight when its timeout cancels it; s2 needs the room that call held."""
    import asyncio

    from cadenza import ExecutionPolicy, RetryPolicy
    from cadenza._worker_spec import ModelSource
    from cadenza.models import resolve_model

    slow_source = ModelSource(spec="simulated:slow", options={"latency": 5.0})
    slow = Agent("slow", "Think.", model=resolve_model(slow_source.spec, dict(slow_source.options)),
                 model_source=[slow_source], max_tokens=200)
    quick = Agent("quick", "Answer.", model="simulated:quick", max_tokens=200)
    policy = ExecutionPolicy(max_concurrency=1, step_timeout=1.0, retry=RetryPolicy(max_attempts=1))
    team = on(Supervisor("lead", workers=[slow, quick], model="simulated:conf", policy=policy,
                         plan=Plan.of({"id": "s1", "agent": "slow", "instruction": "Think hard"},
                                      {"id": "s2", "agent": "quick", "instruction": "Answer"})), backend)

    both = [Agent(f"w{i}", "Warm up.", model="simulated:conf") for i in range(2)]
    await on(Supervisor("warm", workers=both, model="simulated:conf",  # every worker process started: the
                        plan=Plan.of(*({"id": f"s{i}", "agent": f"w{i}", "instruction": "Go"} for i in range(2)))),
             backend).run("Warm up")  # timeout below is for the call, not for starting a process
    result = await asyncio.wait_for(team.run("Go", budget=Budget(tokens=450)), timeout=20)

    first, second = result.steps
    assert first.status == "failed" and first.error is not None and first.error.type == "StepTimeout"
    assert second.status == "success"


async def test_the_shared_workspace_is_reached_through_the_run(backend: Backend, tmp_path: Path) -> None:
    team = one_step(Agent("notes", "Write a note.", model="simulated:conf", tools=[remember]), backend)

    async with SQLiteStore(tmp_path / "runs.db") as store:
        result = await team.run("Note", store=store, run_id="run_ws")  # type: ignore[arg-type]
        items = await store.workspace_items("run_ws")

    assert result.status == "success"
    assert [(i.version, i.writer) for i in items] == [(1, "notes")]


# The promises of a backend whose steps run in other processes ------------------------------------------------------


@pytest.fixture(params=["process", "ray"])
async def remote(request: pytest.FixtureRequest, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ProcessBackend | RayBackend]:
    """A backend that runs agent steps in one other process: a worker process, or a Ray actor."""
    monkeypatch.setenv(EFFECTS, str(tmp_path / "effects.txt"))
    async with opened(request, request.param, 1) as found:
        yield found


def started(backend: ProcessBackend | RayBackend) -> int:
    """How many worker processes (or actors) the backend has started."""
    return len(backend._pool if isinstance(backend, ProcessBackend) else backend._actors)


async def test_a_worker_process_that_dies_mid_step_is_a_retried_failure_whose_spending_counts(
        remote: Backend) -> None:
    """The lost attempt made one model call (which asked for the tool that killed its process): the run pays for it
    and counts it, in the step's total and the run's."""
    from process.worker_tools import crash_once

    worker = Agent("fragile", "Work.", model="simulated:conf", tools=[crash_once])
    team = Supervisor("lead", workers=[worker], model="simulated:conf", backend=remote,
                      plan=Plan.of({"id": "s1", "agent": "fragile", "instruction": "Work"}))
    retried: list[StepRetrying] = []
    result = await team.run("Go", events=lambda e: retried.append(e) if isinstance(e, StepRetrying) else None)

    [step] = result.steps
    assert result.status == "success" and step.attempts == 2
    assert effects() == ["crashing", "survived"]
    [lost] = retried
    assert lost.error.type == "WorkerLost" and lost.usage.model_calls == 1
    assert step.result is not None and step.result.usage.model_calls == 2  # the attempt that finished
    assert result.usage.model_calls == 1 + 2  # the lost call and the finished attempt (whose output is the answer)


async def test_an_approved_step_whose_worker_process_dies_is_retried_on_its_approval(remote: Backend,
                                                                                      tmp_path: Path) -> None:
    from process.worker_tools import crash_once

    worker = Agent("fragile", "Work.", model="simulated:conf", tools=[crash_once], requires_approval=True)
    async with SQLiteStore(tmp_path / "runs.db") as store:
        def team() -> Supervisor[str]:
            return Supervisor("lead", workers=[worker], model="simulated:conf", backend=remote,
                              plan=Plan.of({"id": "s1", "agent": "fragile", "instruction": "Work"}))

        assert (await team().run("Go", store=store, run_id="run_crash")).status == "waiting"  # type: ignore[arg-type]
        await approve(store, "run_crash", "s1")
        result = await team().resume("run_crash", store=store)
        approvals = [(a.approval_id[:4], a.status) for a in (await store.snapshot("run_crash")).approvals]

    [step] = result.steps
    assert result.status == "success" and step.attempts == 2
    assert effects() == ["crashing", "survived"]
    assert approvals == [("apr_", "used")]  # used once, by the attempt that died; the retry ran on it


shout: Any = lambda text: text.upper()  # noqa: E731 - what is refused
shout.__annotations__ = {"text": str, "return": str}


async def test_what_a_worker_process_cannot_rebuild_is_refused_before_anything_runs(
        remote: ProcessBackend | RayBackend) -> None:
    shout_agent = Agent("loud", "Shout.", model="simulated:conf", tools=[tool(shout, name="shout")])
    team = Supervisor("lead", workers=[shout_agent], model="simulated:conf", backend=remote,
                      plan=Plan.of({"id": "s1", "agent": "loud", "instruction": "Shout"}))
    with pytest.raises(ConfigError, match=r"team 'lead' cannot run on its backend: agent 'loud': tool 'shout' "
                                          r"is a lambda"):
        await team.run("Go")
    assert started(remote) == 0  # no process was even started


async def test_a_closure_is_refused_at_submission_naming_it(remote: ProcessBackend | RayBackend) -> None:
    def make() -> Any:
        def whisper(text: str) -> str:
            """Say it quietly."""
            return text.lower()
        return whisper

    quiet = Agent("quiet", "Whisper.", model="simulated:conf", tools=[tool(make())])
    team = Supervisor("lead", workers=[quiet], model="simulated:conf", backend=remote,
                      plan=Plan.of({"id": "s1", "agent": "quiet", "instruction": "Whisper"}))
    with pytest.raises(ConfigError, match=r"agent 'quiet': tool 'whisper' is defined inside a function "
                                          r"\(.*test_conformance:.*make.<locals>.whisper\), so it cannot be imported"):
        await team.run("Go")
    assert started(remote) == 0


async def test_a_spawn_policy_a_worker_process_cannot_honour_is_refused_before_anything_runs(
        remote: ProcessBackend | RayBackend) -> None:
    from cadenza import SpawnPolicy
    from cadenza.models.function import FunctionModel

    local = FunctionModel(lambda request: "done")
    policy = SpawnPolicy(tools=[tool(shout, name="shout")], tiers={"default": "simulated:conf", "local": local})
    worker = Agent("steady", "Work.", model="simulated:conf")
    team = Supervisor("lead", workers=[worker], model="simulated:conf", backend=remote, spawn=policy)
    with pytest.raises(ConfigError) as refused:
        await team.run("Go")
    assert started(remote) == 0

    message = str(refused.value)
    assert "team 'lead' may spawn agents with the allowlisted tools, but agent 'spawned': tool 'shout' is a lambda" \
        in message
    assert "of tier 'local', but agent 'spawned': model 'function:function' was given as an object" in message
