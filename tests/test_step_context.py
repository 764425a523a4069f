"""What a worker is handed: a frozen, serialisable StepContext and a port; with either missing, it fails closed.

A worker in another process sees the run only through these two. So each stateful operation of an
agent must go through the port, and a port that cannot do it must stop the operation (the model is
not called, the tool does not run), never let it run unrecorded or unbudgeted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from cadenza import Agent, Budget, FunctionModel, MCPServer, ModelRequest, Plan, Supervisor, Task, tool
from cadenza._events import ModelCalled
from cadenza._messages import Result
from cadenza._port import ApprovalAsk, Claim, Lease, ToolCallRecord
from cadenza._step_context import PriorCall, StepContext
from cadenza._worker import Worker
from cadenza.backends.local import LocalBackend
from cadenza.engine._run_state import RunState
from cadenza.models.base import ToolCall
from cadenza.tools._tools import ToolContext
from support import step_context

SRC = Path(__file__).resolve().parents[1] / "src" / "cadenza"


class Refused(RuntimeError):
    """What the port below raises: it stands for a port that cannot serve the request."""


class RefusingPort:
    """A port that serves nothing stateful: each request raises `Refused` naming it, and is counted."""

    def __init__(self, *, observed: bool = False) -> None:
        self.asked: list[str] = []
        self._observed = observed

    def _refuse(self, what: str) -> Refused:
        self.asked.append(what)
        return Refused(f"the port cannot {what}")

    @property
    def observed(self) -> bool:
        return self._observed

    @property
    def streaming(self) -> bool:
        return False

    def report(self, event: object) -> None:
        raise self._refuse("report")

    def progress(self, event: object) -> None:
        raise self._refuse("tell progress")

    async def reserve(self, ctx: StepContext, claim: Claim, budget: Any) -> Lease:
        raise self._refuse("reserve")

    async def settle(self, lease: Lease, usage: Any) -> None:
        raise self._refuse("settle")

    async def record_call(self, ctx: StepContext, call: ToolCallRecord) -> None:
        raise self._refuse("record a tool call")

    async def approve(self, ctx: StepContext, ask: ApprovalAsk) -> None:
        raise self._refuse("approve")

    def workspace(self, ctx: StepContext, writer: str) -> Any:
        raise self._refuse("give the workspace")

    async def open_servers(self, servers: Sequence[MCPServer]) -> None:
        raise self._refuse("open servers")


class BudgetOnly(RefusingPort):
    """Grants model calls (no budget covers them) and says the run keeps no workspace; refuses everything else."""

    async def reserve(self, ctx: StepContext, claim: Claim, budget: Any) -> Lease:
        return Lease()

    async def settle(self, lease: Lease, usage: Any) -> None:
        pass

    def workspace(self, ctx: StepContext, writer: str) -> Any:
        return None


class NoWorkspace(BudgetOnly):
    def workspace(self, ctx: StepContext, writer: str) -> Any:
        raise self._refuse("give the workspace")


def task(instruction: str = "Do it") -> Task:
    return Task(task_id="task_test", run_id="run_test", sender="lead", recipient="w", instruction=instruction)


def calls_tool_then_answers(name: str, arguments: dict[str, Any]) -> FunctionModel:
    def reply(request: ModelRequest) -> str | list[ToolCall]:
        if len(request.messages) == 1:
            return [ToolCall(id="1", name=name, arguments=arguments)]
        return "done"

    return FunctionModel(reply)


# The context is a value -------------------------------------------------------------------------------------------


def test_a_context_survives_json_and_is_frozen() -> None:
    ctx = StepContext(run_id="run_1", scope="lead/build/review", step_id="review", agent="critic", attempt=2,
                      task_id="task_1", ceiling=frozenset({"read"}), budgets=("run", "team 'lead'"),
                      prior_calls=(PriorCall("idem_1", "finished", '{"ok": true}'), PriorCall("idem_2", "started", None)),
                      trace=(("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),),
                      turn="msg_1")

    back = StepContext.from_json(ctx.to_json())

    assert back == ctx and back.team == "lead/build" and back.prior_call("idem_2") == PriorCall("idem_2", "started", None)
    with pytest.raises(AttributeError):
        ctx.ceiling = None  # type: ignore[misc]


@pytest.mark.parametrize("field", ["ceiling", "budgets", "prior_calls", "run_id", "scope", "attempt"])
def test_a_context_missing_a_field_is_refused_naming_it(field: str) -> None:
    """No default fills a gap: a missing ceiling would grant everything, missing budgets would spend unchecked,
    missing prior calls would repeat them."""
    data = json.loads(step_context().to_json())
    del data[field]

    with pytest.raises(ValidationError, match=field):
        StepContext.from_json(json.dumps(data))


def test_no_context_variable_carries_run_state() -> None:
    found = [f"{path.relative_to(SRC)}:{number}" for path in SRC.rglob("*.py")
             for number, line in enumerate(path.read_text().splitlines(), 1) if re.search(r"\bContextVar\b", line)]
    assert found == []


# Each stateful operation goes through the port, and stops when the port refuses -----------------------------------


async def test_a_model_call_the_port_cannot_reserve_is_not_made() -> None:
    model = FunctionModel(lambda request: "answer")
    port = RefusingPort()

    result = await Agent("w", model=model).execute(task(), step_context(budgets=("run",)), port)

    assert result.status == "failure" and result.error is not None and "cannot reserve" in result.error.message
    assert port.asked == ["reserve"] and model.calls == []


async def test_an_agents_own_budget_is_claimed_through_the_port_even_where_no_team_budget_applies() -> None:
    model = FunctionModel(lambda request: "answer")
    port = RefusingPort()

    result = await Agent("w", model=model, budget=Budget(tokens=100)).execute(task(), step_context(), port)

    assert result.status == "failure" and port.asked == ["reserve"] and model.calls == []


async def test_a_step_no_budget_covers_calls_its_model_without_a_reservation() -> None:
    """The engine says so in the context; the call is still reported when the run's sinks (its audit log) want it."""
    model = FunctionModel(lambda request: "answer")

    quiet = await Agent("w", model=model).execute(task(), step_context(), RefusingPort())
    observed = await Agent("w", model=model).execute(task(), step_context(), RefusingPort(observed=True))

    assert quiet.status == "success" and observed.status == "failure" and len(model.calls) == 2


async def test_a_side_effect_the_port_cannot_record_does_not_happen() -> None:
    sent: list[str] = []

    @tool(side_effect="at_most_once")
    def send_email(to: str) -> str:
        """Send an email."""
        sent.append(to)
        return "sent"

    port = BudgetOnly()
    agent = Agent("w", model=calls_tool_then_answers("send_email", {"to": "a@example.com"}), tools=[send_email])

    result = await agent.execute(task(), step_context(), port)

    assert result.status == "failure" and result.error is not None
    assert "cannot record a tool call" in result.error.message
    assert sent == [] and "record a tool call" in port.asked


async def test_a_tool_that_needs_approval_does_not_run_when_the_port_cannot_ask() -> None:
    ran: list[str] = []

    @tool(requires_approval=True)
    def deploy(env: str) -> str:
        """Deploy."""
        ran.append(env)
        return "deployed"

    port = BudgetOnly()
    agent = Agent("w", model=calls_tool_then_answers("deploy", {"env": "prod"}), tools=[deploy])

    result = await agent.execute(task(), step_context(), port)

    assert result.status == "failure" and ran == [] and port.asked[-1] == "approve"


async def test_an_agent_that_needs_approval_makes_no_call_when_the_port_cannot_ask() -> None:
    model = FunctionModel(lambda request: "answer")
    port = BudgetOnly()

    result = await Agent("w", model=model, requires_approval=True).execute(task(), step_context(), port)

    assert result.status == "failure" and result.error is not None and "cannot approve" in result.error.message
    assert model.calls == []


async def test_a_tool_with_a_context_parameter_does_not_run_without_the_workspace_from_the_port() -> None:
    ran: list[str] = []

    @tool
    def note(text: str, context: ToolContext) -> str:
        """Take a note."""
        ran.append(text)
        return "noted"

    port = NoWorkspace()
    agent = Agent("w", model=calls_tool_then_answers("note", {"text": "x"}), tools=[note])

    result = await agent.execute(task(), step_context(), port)

    assert result.status == "failure" and ran == [] and port.asked == ["give the workspace"]


async def test_a_tool_call_the_port_cannot_report_fails_the_step_instead_of_going_unrecorded() -> None:
    @tool
    def lookup(term: str) -> str:
        """Look a term up."""
        return "found"

    class TakesModelReports(BudgetOnly):
        def report(self, event: object) -> None:
            if not isinstance(event, ModelCalled):
                raise self._refuse(f"report {type(event).__name__}")

    port = TakesModelReports(observed=True)
    agent = Agent("w", model=calls_tool_then_answers("lookup", {"term": "x"}), tools=[lookup])

    result = await agent.execute(task(), step_context(), port)

    assert result.status == "failure" and port.asked == ["report ToolCalled"]
    assert result.error is not None and "the port cannot report ToolCalled" in result.error.message


async def test_mcp_servers_are_opened_only_through_the_port() -> None:
    server = MCPServer("never", command=["cadenza-no-such-server"])
    model = FunctionModel(lambda request: "answer")
    port = BudgetOnly()

    result = await Agent("w", model=model, mcp_servers=[server]).execute(task(), step_context(), port)

    assert result.status == "failure" and port.asked == ["open servers"] and not server.is_open
    assert model.calls == []


async def test_a_team_refuses_to_run_on_a_port_of_another_process() -> None:
    """A team runs its own steps, so it needs its run's state: a port that only relays is not enough."""
    inner = Supervisor("inner", workers=[Agent("w", model=FunctionModel(lambda request: "x"))],
                       plan=Plan.of({"id": "s1", "agent": "w", "instruction": "Go"}),
                       model=FunctionModel(lambda request: "x"))

    result = await inner.execute(task(), step_context(), RefusingPort())

    assert result.status == "failure" and result.error is not None
    assert "can run only in the process of its run" in result.error.message and "RefusingPort" in result.error.message


# What the engine hands each step ----------------------------------------------------------------------------------


class Recording(LocalBackend):
    """The local backend, keeping the context each step was handed."""

    def __init__(self) -> None:
        self.seen: list[StepContext] = []

    async def execute(self, worker: Worker, task: Task, ctx: StepContext, port: Any) -> Result:
        self.seen.append(ctx)
        return await super().execute(worker, task, ctx, port)


async def test_each_step_is_handed_its_place_and_the_ceilings_of_every_team_above() -> None:
    backend = Recording()
    model = FunctionModel(lambda request: "ok")
    inner = Supervisor("inner", workers=[Agent("writer", model=model, scopes={"read", "write"})], model=model,
                       plan=Plan.of({"id": "w1", "agent": "writer", "instruction": "Write"}), backend=backend,
                       scopes={"read", "write", "network"})
    outer = Supervisor("lead", workers=[inner], model=model, backend=backend, scopes={"read", "network"},
                       plan=Plan.of({"id": "t1", "agent": "inner", "instruction": "Delegate"}))

    result = await outer.run("Go", run_id="run_ctx")  # type: ignore[arg-type]

    assert result.status == "success"
    by_scope = {ctx.scope: ctx for ctx in backend.seen}
    assert set(by_scope) == {"lead/t1", "lead/t1/w1"}
    top, nested = by_scope["lead/t1"], by_scope["lead/t1/w1"]
    assert (top.run_id, top.step_id, top.agent, top.attempt, top.ceiling) == (
        "run_ctx", "t1", "inner", 1, frozenset({"read", "network"}))
    assert (nested.step_id, nested.agent, nested.ceiling) == ("w1", "writer", frozenset({"read", "network"}))
    assert nested.effective_scopes(frozenset({"read", "write"})) == {"read"}


async def test_a_budget_of_the_run_reaches_the_agent_only_through_its_port() -> None:
    """The same agent, handed the same task: under the run's port its call is budgeted, under a bare port not."""
    from cadenza import BudgetExceeded
    from cadenza.engine._accounts import run_account

    agent = Agent("w", model=FunctionModel(lambda request: "answer"), max_tokens=100)
    tight = RunState("run_test", budget=run_account(Budget(tokens=10))).port()

    refused = await agent.execute(task(), step_context(budgets=tight.budgets), tight)
    free = await agent.execute(task(), step_context(), RunState("run_test").port())

    assert refused.status == "failure" and refused.error is not None
    assert refused.error.type == BudgetExceeded.__name__ and free.status == "success"
