"""An approved step or call whose attempt fails and is retried in the same process.

The approval was used by the first attempt; the retry must neither fail on "already used" nor run an
effect a second time without a human deciding again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cadenza import (
    Agent,
    ExecutionPolicy,
    ModelError,
    Plan,
    RetryPolicy,
    RunResult,
    Supervisor,
    ToolContext,
    approve,
    tool,
)
from cadenza._ids import RunId
from cadenza.models.base import ModelRequest, ToolCall, ToolResultMessage
from cadenza.models.function import FunctionModel
from cadenza.stores.sqlite import SQLiteStore

RUN = "run_retry"
NO_WAIT = ExecutionPolicy(retry=RetryPolicy(max_attempts=3, initial_delay=0.0, jitter=0.0))


@dataclass
class Mailer:
    """A one-step team whose mailer sends one mail; ``fail`` lists what goes wrong, once each, in order."""

    db: Path
    fail: list[str] = field(default_factory=list)
    """``model``: the mailer's first model call; ``after-send``: its model call after the mail went out;
    ``send``: the tool itself."""
    sent: list[str] = field(default_factory=list)
    model_calls: int = 0

    async def send(self, to: str, context: ToolContext) -> str:
        """Send a mail.

        Args:
            to: the recipient.
        """
        if self._fails("send"):
            raise RuntimeError("the mail server hung up")
        self.sent.append(f"{context.idempotency_key} {to}")
        return f"sent to {to}"

    def _fails(self, what: str) -> bool:
        if self.fail and self.fail[0] == what:
            self.fail.pop(0)
            return True
        return False

    def reply(self, request: ModelRequest) -> str | list[ToolCall]:
        if request.agent != "mailer":
            return "done"
        self.model_calls += 1
        results = [m for m in request.messages if isinstance(m, ToolResultMessage)]
        if not results:
            if self._fails("model"):
                raise ModelError("overloaded", retryable=True, status=529)
            return [ToolCall(id="c1", name="send", arguments={"to": "ada@example.org"})]
        if self._fails("after-send") or (results[-1].is_error and self._fails("after-error")):
            raise ModelError("overloaded", retryable=True, status=529)
        return "mailer saw: " + results[-1].content

    def team(self, *, approval: str) -> Supervisor[Any]:
        send = tool(self.send, side_effect="at_most_once", requires_approval=approval == "tool")
        model = FunctionModel(self.reply)
        mailer = Agent("mailer", "Send mail.", model=model, tools=[send], requires_approval=approval == "step")
        return Supervisor("lead", workers=[mailer], model=model, policy=NO_WAIT,
                          plan=Plan.of({"id": "mail", "agent": "mailer", "instruction": "Mail Ada"}))

    async def approvals(self) -> list[tuple[str, str]]:
        async with SQLiteStore(self.db) as store:
            snap = await store.snapshot(RUN)
        return sorted((a.approval_id[:4], a.status) for a in snap.approvals)

    async def first_run_waits(self, approval: str) -> None:
        async with SQLiteStore(self.db) as store:
            result = await self.team(approval=approval).run("mail", store=store, run_id=RunId(RUN))
        assert result.status == "waiting"
        assert self.sent == []

    async def decide(self, approved: bool = True) -> None:
        async with SQLiteStore(self.db) as store:
            await approve(store, RUN, "mail", approved=approved, by="tester")

    async def resume(self, approval: str) -> RunResult[Any]:
        async with SQLiteStore(self.db) as store:
            return await self.team(approval=approval).resume(RUN, store=store)


@pytest.fixture
def mailer(tmp_path: Path) -> Mailer:
    return Mailer(tmp_path / "runs.db")


async def test_an_approved_step_retried_after_a_model_error_runs_on_its_approval(mailer: Mailer) -> None:
    await mailer.first_run_waits("step")
    await mailer.decide()
    mailer.fail = ["model"]
    result = await mailer.resume("step")
    assert result.status == "success", result.error
    assert result.steps[0].attempts == 2
    assert len(mailer.sent) == 1
    assert await mailer.approvals() == [("apr_", "used")]  # the step's approval, used once, held by its retries


async def test_a_call_that_finished_before_its_step_was_retried_is_answered_from_its_record(mailer: Mailer) -> None:
    await mailer.first_run_waits("tool")
    await mailer.decide()
    mailer.fail = ["after-send"]
    result = await mailer.resume("tool")
    assert result.status == "success", result.error
    assert result.steps[0].attempts == 2 and result.steps[0].output == "mailer saw: sent to ada@example.org"
    assert len(mailer.sent) == 1  # the retry did not send again, and needed no new decision
    assert await mailer.approvals() == [("apr_", "used")]


async def test_an_approved_call_that_failed_waits_for_a_new_decision_when_its_step_is_retried(mailer: Mailer) -> None:
    await mailer.first_run_waits("tool")
    await mailer.decide()
    mailer.fail = ["send", "after-error"]
    paused = await mailer.resume("tool")
    assert paused.status == "waiting"
    assert paused.error is not None and "the approved call failed" in paused.error.message
    assert mailer.sent == []
    assert await mailer.approvals() == [("apr_", "used"), ("unc_", "pending")]

    await mailer.decide()
    done = await mailer.resume("tool")
    assert done.status == "success" and done.steps[0].output == "mailer saw: sent to ada@example.org"
    assert len(mailer.sent) == 1
    assert await mailer.approvals() == [("apr_", "used"), ("unc_", "used")]
