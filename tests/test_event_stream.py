"""One stream per run: each change of state is one event, told once, and the run's records are sinks of it.

The journal writes the store from the events, the audit log appends from them, metrics count them,
and a caller's sink sees the same stream. Reports of each message and call go only to sinks that
want them, and workers in other processes send theirs to the run.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from cadenza import Agent, Budget, FunctionModel, ModelRequest, Plan, ProcessBackend, Supervisor, tool
from cadenza._events import (
    ApprovalRequested,
    BudgetReserved,
    BudgetSettled,
    Event,
    Kept,
    MessageSent,
    ModelCalled,
    StepFinished,
    StepStarted,
    ToolCalled,
    ToolCallRecorded,
)
from cadenza.models.base import ToolCall
from cadenza.security._audit import verify_run
from cadenza.stores.sqlite import SQLiteStore


@tool
def lookup(term: str) -> str:
    """Look a term up."""
    return f"{term}: found"


@tool(side_effect="at_most_once")
def send(to: str) -> str:
    """Send a message, once."""
    return f"sent to {to}"


@tool(side_effect="at_most_once", requires_approval=True)
def wire(amount: int) -> str:
    """Wire money, with a human's approval."""
    return f"wired {amount}"


def calls(name: str, **arguments: Any) -> FunctionModel:
    def reply(request: ModelRequest) -> str | list[ToolCall]:
        if len(request.messages) == 1:
            return [ToolCall(id="1", name=name, arguments=arguments)]
        return "done"

    return FunctionModel(reply, name=f"calls-{name}")


def looks_up() -> FunctionModel:
    return calls("lookup", term="x")


def one_step(agent: Agent[Any], *, step: str = "s1") -> Supervisor[str]:
    return Supervisor("lead", workers=[agent], model=FunctionModel(lambda r: "summary", name="lead"),
                      plan=Plan.of({"id": step, "agent": agent.name, "instruction": "Do it"}))


class Everything:
    """A sink that wants the reports of each message and call too."""

    wants_reports = True

    def __init__(self) -> None:
        self.seen: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.seen.append(event)


def of_step(events: list[Event], path: str) -> list[str]:
    """The events about the step at ``path`` (a team's path, then the step's id), by class name."""
    team, _, step = path.rpartition("/")
    found = []
    for e in events:
        if isinstance(e, ModelCalled | ToolCalled):
            mine = e.scope == path
        else:
            mine = getattr(e, "step_id", None) == step and getattr(e, "team", None) == team
        if mine:
            found.append(type(e).__name__)
    return found


async def test_a_step_is_one_ordered_sequence_of_events_each_told_once() -> None:
    sink = Everything()

    result = await one_step(Agent("w", model=looks_up(), tools=[lookup])).run("Go", events=sink)

    assert result.status == "success"
    assert of_step(sink.seen, "lead/s1") == ["StepStarted", "MessageSent", "ModelCalled", "ToolCalled", "ModelCalled",
                                             "MessageSent", "StepFinished"]
    sent = [(e.kind, e.sender, e.recipient) for e in sink.seen if isinstance(e, MessageSent)]
    assert sent == [("task", "lead", "w"), ("result", "w", "lead")]
    called = next(e for e in sink.seen if isinstance(e, ToolCalled))
    assert (called.agent, called.tool, called.outcome, called.result_preview) == ("w", "lookup", "ok", "x: found")


async def test_a_sink_that_does_not_ask_for_reports_gets_runs_plans_and_steps_only() -> None:
    seen: list[Event] = []

    await one_step(Agent("w", model=looks_up(), tools=[lookup])).run("Go", events=seen.append)

    assert not [e for e in seen if isinstance(e, MessageSent | ModelCalled | ToolCalled)]
    assert [type(e).__name__ for e in seen] == ["RunStarted", "PlanReady", "StepStarted", "StepFinished",
                                                "RunFinished"]


async def test_observers_hear_that_a_step_finished_only_once_the_store_holds_it(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    stored_when_told: list[tuple[str, str] | None] = []

    def reads_the_store(event: Event) -> None:
        if isinstance(event, StepFinished):
            with sqlite3.connect(path) as db:  # another connection: it sees only what was committed
                row = db.execute("SELECT status, result_json FROM steps WHERE step_id = ?", (event.step_id,)).fetchone()
            stored_when_told.append(None if row is None else (row[0], row[1]))

    async with SQLiteStore(path) as store:
        result = await one_step(Agent("w", model=FunctionModel(lambda r: "made it", name="m"))).run(
            "Go", store=store, events=reads_the_store)

    assert result.status == "success"
    assert len(stored_when_told) == 1 and stored_when_told[0] is not None
    status, body = stored_when_told[0]
    assert status == "success" and '"made it"' in body


async def test_the_journal_and_audit_log_record_a_run_whose_observer_broke(tmp_path: Path) -> None:
    def breaks(event: Event) -> None:
        if isinstance(event, StepStarted):
            raise RuntimeError("the display broke")

    async with SQLiteStore(tmp_path / "runs.db") as store:
        result = await one_step(Agent("w", model=looks_up(), tools=[lookup])).run(
            "Go", store=store, events=breaks, run_id="run_broken_sink")  # type: ignore[arg-type]
        snapshot = await store.snapshot("run_broken_sink")
        audit = await store.audit("run_broken_sink")
        verdict = await verify_run(store, "run_broken_sink")

    assert result.status == "success"
    assert [(s.step_id, s.status) for s in snapshot.steps] == [("s1", "success")]
    assert [r.kind for r in audit].count("model.called") == 2  # by the worker (its one step's output is the answer)
    assert [r.subject for r in audit if r.kind == "tool.called"] == ["lookup"]
    assert verdict.ok


async def test_worker_processes_report_their_calls_to_the_runs_sinks() -> None:
    sink = Everything()
    team = Supervisor("lead", workers=[Agent("w", model="simulated:proc")], model="simulated:lead",
                      plan=Plan.of({"id": "a", "agent": "w", "instruction": "One"},
                                   {"id": "b", "agent": "w", "instruction": "Two"}))
    async with ProcessBackend(workers=2) as pool:
        team.use_backend(pool)
        result = await team.run("Go", events=sink)

    assert result.status == "success"
    calls = sorted(e.scope for e in sink.seen if isinstance(e, ModelCalled) and e.agent == "w")
    assert calls == ["lead/a", "lead/b"]  # made in worker processes, told to this one
    assert all(e.usage is not None and e.usage.model_calls == 1 for e in sink.seen
               if isinstance(e, ModelCalled) and e.agent == "w")


async def test_what_the_run_keeps_from_inside_a_step_is_one_event_each_and_the_store_holds_it(tmp_path: Path) -> None:
    sink = Everything()
    team = Supervisor("lead", workers=[Agent("mailer", model=calls("send", to="ann"), tools=[send]),
                                       Agent("payer", model=calls("wire", amount=5), tools=[wire])],
                      model=FunctionModel(lambda r: "summary", name="lead"),
                      plan=Plan.of({"id": "mail", "agent": "mailer", "instruction": "Mail Ann"},
                                   {"id": "pay", "agent": "payer", "instruction": "Pay Bob"}))

    async with SQLiteStore(tmp_path / "runs.db") as store:
        result = await team.run("Go", store=store, events=sink,
                                budget=Budget(tokens=100_000), run_id="run_kept")  # type: ignore[arg-type]
        snapshot = await store.snapshot("run_kept")
        audit = await store.audit("run_kept")
    kept = [e for e in sink.seen if isinstance(e, Kept)]

    assert result.status == "waiting"  # the payment waits for a human
    recorded = [(e.scope, e.tool, e.status) for e in kept if isinstance(e, ToolCallRecorded)]
    assert recorded == [("lead/mail", "send", "started"), ("lead/mail", "send", "finished")]
    assert [(c.scope, c.tool, c.status) for c in snapshot.tool_calls] == [("lead/mail", "send", "finished")]
    asked = [e for e in kept if isinstance(e, ApprovalRequested)]
    assert [(e.scope, e.tool) for e in asked] == [("lead/pay", "wire")]
    assert [(a.approval_id, a.status) for a in snapshot.approvals] == [(asked[0].approval_id, "pending")]
    assert [r.subject for r in audit if r.kind == "approval.requested"] == [asked[0].approval_id]
    reserved = {e.reservation_id for e in kept if isinstance(e, BudgetReserved)}
    settled = {e.reservation_id for e in kept if isinstance(e, BudgetSettled)}
    assert reserved == settled == {r.reservation_id for r in snapshot.reservations if r.status == "settled"}
    assert len(reserved) == 3  # two calls by the mailer, one by the payer (it stopped to wait); no synthesis yet
