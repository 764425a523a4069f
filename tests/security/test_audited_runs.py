"""The audit log of real recorded runs: what the agents did, denied and refused is in it, chained and verifiable."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from cadenza import Agent, AgentProposal, FunctionModel, ModelRequest, Plan, SpawnPolicy, Supervisor, approve, tool
from cadenza.cli import app
from cadenza.models.base import ToolCall, ToolResultMessage
from cadenza.models.simulated import SimulatedModel
from cadenza.security._audit import verify_run
from cadenza.stores import SQLiteStore
from security.test_signed_runs import TampersWithTheTask


@tool(scopes={"read"})
def lookup(topic: str) -> str:
    """Look a topic up."""
    return f"facts about {topic}"


@tool(scopes={"write"})
def publish(text: str) -> str:
    """Publish a text."""
    return "published"


def tries(*names: str) -> FunctionModel:
    def reply(request: ModelRequest) -> str | list[ToolCall]:
        if not any(isinstance(m, ToolResultMessage) for m in request.messages):
            return [ToolCall(id=f"c{i}", name=n, arguments={"topic": "x"} if n == "lookup" else {"text": "y"})
                    for i, n in enumerate(names)]
        return "done"

    return FunctionModel(reply)


async def records(db: Path, run_id: str) -> list[Any]:
    async with SQLiteStore(db) as store:
        verdict = await verify_run(store, run_id)
        assert verdict.ok, verdict.message
        return await store.audit(run_id)


async def test_a_recorded_run_audits_messages_tool_calls_denials_and_spawns(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    reader = Agent("reader", "Read.", model=tries("lookup", "publish"), tools=[lookup, publish], scopes={"read"})
    policy = SpawnPolicy(tools=[lookup], max_agents=1, tiers={"default": tries("lookup")})
    plan = Plan.of({"id": "s1", "agent": "reader", "instruction": "Look it up"},
                   {"id": "s2", "agent": "scout", "instruction": "Scout", "depends_on": ["s1"]},
                   new_agents=[AgentProposal(name="scout", role="Scouts", tools=["lookup"])])
    team = Supervisor("lead", workers=[reader], plan=plan, spawn=policy, model=SimulatedModel("lead"))

    result = await team.run("Research", store=db)

    log = await records(db, result.run_id)
    kinds = Counter(r.kind for r in log)
    assert log[0].kind == "run.started" and [r.seq for r in log] == list(range(len(log)))
    assert kinds["message.sent"] == 4  # a Task and a Result for each of two steps
    assert kinds["agent.spawned"] == 1
    models = [r for r in log if r.kind == "model.called"]
    assert sorted(r.actor for r in models) == ["reader", "reader", "scout", "scout"]  # s2's output is the answer
    assert all('"seconds"' in r.detail_json and '"tokens"' in r.detail_json for r in models)
    denied = [r for r in log if r.kind == "tool.denied"]
    assert [(r.actor, r.subject) for r in denied] == [("reader", "publish")]
    assert '"permission denied' in denied[0].detail_json
    called = sorted((r.actor, r.subject) for r in log if r.kind == "tool.called")
    assert called == [("reader", "lookup"), ("scout", "lookup")]
    assert all('"arguments_digest"' in r.detail_json for r in denied + [r for r in log if r.kind == "tool.called"])


async def test_a_refused_envelope_is_audited(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    worker = Agent("worker", "Work.", model=SimulatedModel("w"))
    team = Supervisor("lead", workers=[worker], model=SimulatedModel("lead"),
                      plan=Plan.of({"id": "s1", "agent": "worker", "instruction": "Do part 0"}))
    team.executor.backend = TampersWithTheTask()  # type: ignore[assignment]

    result = await team.run("Work", store=db)

    [rejected] = [r for r in await records(db, result.run_id) if r.kind == "message.rejected"]
    assert (rejected.actor, rejected.subject) == ("lead", "lead/worker")
    assert '"reason":"tampered"' in rejected.detail_json


async def test_approvals_asked_and_decided_are_audited_across_processes(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    gate = Agent("gate", "Decide.", model=SimulatedModel("g"), requires_approval=True)
    team = Supervisor("lead", workers=[gate], model=SimulatedModel("lead"),
                      plan=Plan.of({"id": "sign", "agent": "gate", "instruction": "Sign off"}))
    first = await team.run("Release", store=db)
    assert first.status == "waiting"
    await approve(db, first.run_id, "sign", by="alice", note="looks fine")
    second = await team.resume(first.run_id, store=db)
    assert second.status == "success"

    log = await records(db, first.run_id)
    kinds = [r.kind for r in log]
    assert kinds.count("approval.requested") == 1 and kinds.count("approval.decided") == 1
    assert kinds.index("approval.requested") < kinds.index("approval.decided") < kinds.index("run.resumed")
    decided = log[kinds.index("approval.decided")]
    assert decided.actor == "alice" and '"decision":"approved"' in decided.detail_json


def test_cadenza_audit_verify_catches_an_edit_to_a_real_run(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    reader = Agent("reader", "Read.", model=tries("lookup", "publish"), tools=[lookup, publish], scopes={"read"})
    team = Supervisor("lead", workers=[reader], model=SimulatedModel("lead"),
                      plan=Plan.of({"id": "s1", "agent": "reader", "instruction": "Look it up"}))
    result = team.run_sync("Research", store=db)
    runner = CliRunner()

    intact = runner.invoke(app, ["--store", str(db), "audit", "verify", result.run_id])
    assert intact.exit_code == 0, intact.output
    with sqlite3.connect(db) as conn:  # hide the denial: make it look like an allowed call
        conn.execute("UPDATE audit SET kind = 'tool.called' WHERE run_id = ? AND kind = 'tool.denied'",
                     (result.run_id,))
    broken = runner.invoke(app, ["--store", str(db), "audit", "verify", result.run_id])

    assert broken.exit_code == 1
    seq = next(r.seq for r in asyncio.run(_raw(db, result.run_id)) if r.kind == "tool.called" and r.subject == "publish")
    assert f"seq {seq}" in broken.output


async def _raw(db: Path, run_id: str) -> list[Any]:
    async with SQLiteStore(db) as store:
        return await store.audit(run_id)
