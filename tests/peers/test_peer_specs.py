"""A peer group described as data (`PeersSpec`): what fingerprints compare on resume, what the plan view shows,
and what tells the process backend to keep the group's conversation in the process of its run."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import TypeAdapter

from cadenza import Agent, PeerGroup, ResumeError, StopPolicy
from cadenza._worker_spec import AgentSpec, PeersSpec, WorkerSpec
from cadenza.cli import app
from cadenza.engine._fingerprint import describe, diff, digest
from cadenza.models.base import ModelRequest, ToolCall
from cadenza.models.function import FunctionModel
from cadenza.stores.base import PutRun
from cadenza.stores.sqlite import SQLiteStore

REVIEW = str(Path(__file__).resolve().parents[2] / "examples" / "peer_review.yaml")


def writer_answers(_: ModelRequest) -> list[ToolCall]:
    return [ToolCall(id="a", name="final_answer", arguments={"answer": "done"})]


def group(*, critic: str = "Criticise.", talks_to: dict[str, list[str]] | None = None,
          stop: StopPolicy | None = None) -> PeerGroup:
    model = FunctionModel(writer_answers, name="scripted")
    return PeerGroup("review", [Agent("writer", "Write.", model=model), Agent("critic", critic, model=model)],
                     entry="writer", talks_to=talks_to, stop=stop or StopPolicy(answer_by=["writer"]))


def test_a_peer_group_spec_names_its_members_graph_and_rules_and_survives_json() -> None:
    spec = group(talks_to={"critic": ["writer"]}, stop=StopPolicy(max_messages=9, max_rounds=4)).describe()

    back = TypeAdapter(WorkerSpec).validate_json(spec.model_dump_json())

    assert back == spec and isinstance(back, PeersSpec)
    assert [(m.name, m.instructions) for m in back.members] == [("writer", "Write."), ("critic", "Criticise.")]
    assert all(isinstance(m, AgentSpec) for m in back.members)
    assert back.talks_to == {"writer": ("critic",), "critic": ("writer",)}
    assert (back.entry, back.answer_by, back.quorum, back.history) == ("writer", ("writer",), 1, 20)
    assert (back.max_messages, back.max_rounds, back.timeout, back.repeats, back.ping_pong) == (9, 4, None, 2, 10)


def test_the_fingerprint_sees_who_talks_and_answers_but_not_the_limits() -> None:
    base = describe(group())

    assert diff(base, describe(group(critic="Praise."))) == ["members.critic.instructions: 'Criticise.' -> 'Praise.'"]
    assert diff(base, describe(group(talks_to={"writer": []}))) == ["talks_to.writer: changed"]
    assert digest(base) == digest(describe(group(stop=StopPolicy(answer_by=["writer"], max_messages=7, timeout=5))))


def test_resuming_a_group_whose_members_changed_is_refused_with_the_change(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with SQLiteStore(tmp_path / "runs.db") as store, asyncio.timeout(10):
            done = await group().run("Write a note", store=store)
            assert done.ok
            row = await store.get_run(done.run_id)
            await store.apply([PutRun(replace(row, status="running"))])  # as if its process had died
            with pytest.raises(ResumeError) as refused:
                await group(critic="Praise.").resume(done.run_id, store=store)
            assert refused.value.changes == ["members.critic.instructions: 'Criticise.' -> 'Praise.'"]
            again = await group(critic="Praise.").resume(done.run_id, store=store, force=True)
            assert again.ok

    asyncio.run(scenario())


def test_the_plan_view_describes_a_peer_group_step() -> None:
    shown = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["plan", REVIEW, "A note"])
    assert shown.exit_code == 0, shown.output
    assert "peer group of author, style, facts: author gets the step; answered by style and facts (quorum 2)" \
        in shown.stdout


def test_the_process_backend_holds_a_peer_group_step_in_the_process_of_its_run(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "cadenza.cli", "--store", str(tmp_path / "runs.db"), "run", REVIEW,
                           "A short note on offline sync", "--backend", "process", "--workers", "1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "; stopped on answer: final answers from style and facts (quorum 2)" in done.stdout
