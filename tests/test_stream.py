"""``team.stream`` and ``agent.stream``: a run's events as they happen, each model answer piece by piece, the result
last, and a run cancelled when its reader leaves early."""

from __future__ import annotations

import asyncio
import gc
import inspect
import json
from contextlib import aclosing
from pathlib import Path

import pytest
from pydantic import BaseModel

from cadenza import Agent, Budget, FunctionModel, ModelError, ModelRequest, PeerGroup, PlanError, Supervisor, tool
from cadenza.events import (
    ApprovalRequested,
    Event,
    FinalResult,
    ModelCalled,
    ModelDelta,
    OutputReset,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolCalled,
    ToolStarted,
)
from cadenza.models.base import ToolCall
from cadenza.models.resilience import ModelRetry, ResilientModel
from cadenza.patterns._streamed import RunOptions
from cadenza.stores import open_store

DEADLINE = 10.0


def plan(*steps: tuple[str, str, list[str]]) -> str:
    return json.dumps({"steps": [{"id": i, "agent": a, "instruction": f"do {i}", "depends_on": d} for i, a, d in steps]})


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def scripted(request: ModelRequest) -> str | list[ToolCall]:
    """The lead plans two steps; the calculator calls ``add`` once, then answers; the writer writes."""
    if request.output_schema is not None and request.output_schema.name == "plan":
        return plan(("s1", "calc", []), ("s2", "writer", ["s1"]))
    if request.agent == "calc" and not any(m.kind == "tool_result" for m in request.messages):
        return [ToolCall(id="call-1", name="add", arguments={"a": 2, "b": 40})]
    if request.agent == "calc":
        return "the sum is 42"
    return f"{request.agent} wrote this in several words"


def team(model: FunctionModel) -> Supervisor[str]:
    return Supervisor("lead", workers=[Agent("calc", "adds", tools=[add], model=model), Agent("writer", "writes", model=model)],
                      model=model, synthesize="never")


async def read(stream: object) -> list[StreamEvent]:
    async with asyncio.timeout(DEADLINE):
        return [event async for event in stream]  # type: ignore[attr-defined]


def text_of(events: list[StreamEvent], scope: str) -> str:
    return "".join(e.delta.text for e in events
                   if isinstance(e, ModelDelta) and e.scope == scope and isinstance(e.delta, TextDelta))


def test_stream_takes_every_keyword_argument_of_run_but_events() -> None:
    for run in (Supervisor.run, PeerGroup.run):
        assert set(inspect.signature(run).parameters) - {"self", "goal", "events"} == set(RunOptions.__annotations__)


async def test_a_team_stream_tells_every_event_in_order_each_answer_piece_by_piece_and_the_result_last() -> None:
    events = await read(team(FunctionModel(scripted)).stream("add, then write"))

    assert isinstance(events[0], RunStarted)
    assert isinstance(events[-2], RunFinished) and isinstance(events[-1], FinalResult)
    result = events[-1].result
    assert result.status == "success"
    finished = {e.step_id: e for e in events if isinstance(e, StepFinished)}
    assert text_of(events, "lead/s1") == finished["s1"].result.output == "the sum is 42"
    assert text_of(events, "lead/s2") == finished["s2"].result.output == "writer wrote this in several words"
    assert len([e for e in events if isinstance(e, ModelDelta) and e.scope == "lead/s2"]) == 6  # a word a piece
    plan_text = text_of(events, "lead")
    assert json.loads(plan_text)["steps"][0]["id"] == "s1"  # the planner's answer streams too

    kinds = [type(e) for e in events if getattr(e, "scope", None) == "lead/s2" or getattr(e, "step_id", None) == "s2"]
    assert kinds.index(StepStarted) < kinds.index(ModelDelta) < kinds.index(ModelCalled) < kinds.index(StepFinished)


async def test_a_tool_call_streams_its_name_then_its_arguments_and_is_told_as_it_starts_and_as_it_ends() -> None:
    events = await read(team(FunctionModel(scripted)).stream("add, then write"))

    pieces = [e.delta for e in events if isinstance(e, ModelDelta) and isinstance(e.delta, ToolCallDelta)]
    assert (pieces[0].index, pieces[0].id, pieces[0].name) == (0, "call-1", "add")
    assert json.loads("".join(p.arguments for p in pieces)) == {"a": 2, "b": 40}
    assert all(p.index == 0 and p.name is None for p in pieces[1:]) and len(pieces) > 2
    started = next(i for i, e in enumerate(events) if isinstance(e, ToolStarted))
    ended = next(i for i, e in enumerate(events) if isinstance(e, ToolCalled))
    assert started < ended
    assert events[started].call_id == events[ended].call_id == "call-1"  # type: ignore[union-attr]
    assert events[started].arguments == {"a": 2, "b": 40}  # type: ignore[union-attr]
    assert events[ended].outcome == "ok"  # type: ignore[union-attr]


async def test_the_streamed_result_equals_the_result_of_the_same_run_not_streamed() -> None:
    streamed = (await read(team(FunctionModel(scripted)).stream("add, then write")))[-1]
    ran = await team(FunctionModel(scripted)).run("add, then write")
    assert isinstance(streamed, FinalResult)
    assert (streamed.result.status, streamed.result.output, streamed.result.usage) == (ran.status, ran.output, ran.usage)
    assert [s.output for s in streamed.result.steps] == [s.output for s in ran.steps]


async def test_a_run_that_nobody_streams_asks_no_model_to_stream() -> None:
    model = FunctionModel(scripted)
    streams: list[str] = []
    original = model.stream

    async def counted(request: ModelRequest, deltas: object) -> object:
        streams.append(request.agent or "")
        return await original(request, deltas)  # type: ignore[arg-type]

    model.stream = counted  # type: ignore[method-assign]
    seen: list[Event] = []
    await team(model).run("add, then write", events=seen.append)
    assert streams == [] and not any(isinstance(e, (ModelDelta, ToolStarted)) for e in seen)
    await read(team(model).stream("add, then write"))
    assert sorted(set(streams)) == ["calc", "lead", "writer"]


@tool(side_effect="at_most_once", requires_approval=True)
def wire(amount: int) -> str:
    """Wire money, with a human's approval."""
    return f"wired {amount}"


async def test_a_stream_tells_budget_and_approval_events_and_ends_with_the_waiting_result(tmp_path: Path) -> None:
    def reply(request: ModelRequest) -> str | list[ToolCall]:
        if request.output_schema is not None:
            return plan(("s1", "payer", []))
        return [ToolCall(id="pay-1", name="wire", arguments={"amount": 5})]

    model = FunctionModel(reply)
    payer = Agent("payer", "pays", model=model, tools=[wire])
    events = await read(Supervisor("lead", workers=[payer], model=model).stream(
        "pay", store=str(tmp_path / "runs.db"), budget=Budget(tokens=100_000)))

    kinds = [type(e).__name__ for e in events if not isinstance(e, ModelDelta)]
    assert kinds.index("BudgetReserved") < kinds.index("BudgetSettled") < kinds.index("ToolStarted") \
        < kinds.index("ApprovalRequested") < kinds.index("StepWaiting") < kinds.index("FinalResult")
    asked = next(e for e in events if isinstance(e, ApprovalRequested))
    assert (asked.tool, asked.agent, json.loads(asked.arguments_json)) == ("wire", "payer", {"amount": 5})
    final = events[-1]
    assert isinstance(final, FinalResult) and final.result.status == "waiting"


class Verdict(BaseModel):
    guilty: bool
    reason: str


async def test_an_agent_stream_ends_with_its_typed_result() -> None:
    model = FunctionModel(lambda request: '{"guilty": false, "reason": "no evidence"}')
    events = await read(Agent("judge", "judge", model=model, output_type=Verdict).stream("the case"))
    final = events[-1]
    assert isinstance(final, FinalResult) and final.result.output == Verdict(guilty=False, reason="no evidence")
    assert "".join(e.delta.text for e in events if isinstance(e, ModelDelta) and isinstance(e.delta, TextDelta)) \
        == '{"guilty": false, "reason": "no evidence"}'
    assert [type(e) for e in events if not isinstance(e, ModelDelta)] == [ModelCalled, FinalResult]


async def test_a_run_that_fails_raises_from_the_loop_after_the_events_before_it() -> None:
    seen: list[StreamEvent] = []
    with pytest.raises(PlanError):
        async with asyncio.timeout(DEADLINE):
            async for event in team(FunctionModel(lambda request: "not a plan")).stream("go"):
                seen.append(event)
    assert isinstance(seen[0], RunStarted) and any(isinstance(e, ModelDelta) for e in seen)
    assert not any(isinstance(e, FinalResult) for e in seen)


class Blocking:
    """Answers the planner and step s1, and keeps step s2's model call waiting until it is cancelled."""

    def __init__(self) -> None:
        self.waiting = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.model = FunctionModel(self.reply)

    async def reply(self, request: ModelRequest) -> str:
        if request.output_schema is not None:
            return plan(("s1", "writer", []), ("s2", "slow", ["s1"]))
        if request.agent == "slow":
            self.waiting.set()
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        return "done"

    def team(self) -> Supervisor[str]:
        return Supervisor("lead", workers=[Agent("writer", "w", model=self.model), Agent("slow", "s", model=self.model)],
                          model=self.model, synthesize="never")


async def test_leaving_a_closed_stream_early_cancels_the_run_and_records_it_cancelled(tmp_path: Path) -> None:
    blocking = Blocking()
    url = str(tmp_path / "runs.db")
    async with asyncio.timeout(DEADLINE):
        async with aclosing(blocking.team().stream("go", store=url)) as events:
            async for event in events:
                if isinstance(event, StepStarted) and event.step_id == "s2":
                    await blocking.waiting.wait()
                    run_id = event.run_id
                    break
        assert blocking.cancelled.is_set()  # at once: closing the stream waited for the run to end
    async with open_store(url) as store:
        row = await store.get_run(run_id)
        snapshot = await store.snapshot(run_id)
    assert row.status == "cancelled"
    assert {s.step_id: s.status for s in snapshot.steps}["s1"] == "success"  # what finished stays


async def test_breaking_out_of_a_stream_that_is_not_closed_cancels_the_run_on_the_loops_next_turns() -> None:
    blocking = Blocking()
    async with asyncio.timeout(DEADLINE):
        async for event in blocking.team().stream("go"):
            if isinstance(event, StepStarted) and event.step_id == "s2":
                await blocking.waiting.wait()
                break
        gc.collect()  # the abandoned stream is finalised (CPython does it at once; this makes it certain)
        await blocking.cancelled.wait()
        closing = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        await asyncio.wait(closing)  # the loop's closing of the stream ends, with the run: nothing is left behind
    assert all(t.done() for t in asyncio.all_tasks() if t is not asyncio.current_task())


async def test_a_retried_call_voids_what_its_failed_attempt_streamed_before_the_retry_streams_again() -> None:
    attempts: list[int] = []

    class Flaky:
        name = "flaky:test"

        async def request(self, request: ModelRequest) -> object:
            raise AssertionError("a streamed call asks for a stream")

        async def stream(self, request: ModelRequest, deltas: object) -> object:
            from cadenza.models.base import ModelResponse

            attempts.append(1)
            deltas(TextDelta("half "))  # type: ignore[operator]
            if len(attempts) == 1:
                raise ModelError("connection reset mid-stream", retryable=True)
            deltas(TextDelta("whole answer"))  # type: ignore[operator]
            return ModelResponse(text="half whole answer")

    model = ResilientModel(Flaky(), retry=ModelRetry(max_attempts=2, initial=0, jitter=0))  # type: ignore[arg-type]
    events = await read(Agent("a", "a", model=model).stream("go"))
    deltas = [e.delta for e in events if isinstance(e, ModelDelta)]
    assert [type(d) for d in deltas] == [TextDelta, OutputReset, TextDelta, TextDelta]
    assert "connection reset mid-stream" in deltas[1].reason  # type: ignore[union-attr]
    assert isinstance(events[-1], FinalResult) and events[-1].result.output == "half whole answer"
