"""A recorded peer conversation read back from the store: ``cadenza show`` draws it under its step (or as the
run), ``show --json`` lists it with each message's handler and answer, and ``trace`` marks each message."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from cadenza import Agent, PeerGroup, RunResult, StopPolicy
from cadenza.cli import app
from cadenza.models.base import ToolCall
from cadenza.models.function import FunctionModel
from cadenza.stores.sqlite import SQLiteStore

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DEBATE = str(EXAMPLES / "debate.yaml")
REVIEW = str(EXAMPLES / "peer_review.yaml")


def invoke(*args: str) -> Result:
    return CliRunner(env={"COLUMNS": "200"}).invoke(app, list(args))


def ran(store: str, workflow: str, goal: str) -> str:
    done = invoke("--store", store, "run", workflow, goal, "--json")
    assert done.exit_code == 0, done.output
    run_id = json.loads(done.stdout)["run_id"]
    assert isinstance(run_id, str)
    return run_id


def shown(store: str, run_id: str) -> dict[str, Any]:
    result = invoke("--store", store, "show", run_id, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert isinstance(doc, dict)
    return doc


def test_show_draws_a_whole_run_conversation_as_its_own_tree(tmp_path: Path) -> None:
    store = str(tmp_path / "runs.db")
    run_id = ran(store, DEBATE, "Motion: remote work makes teams more productive")

    doc = shown(store, run_id)
    assert doc["teams"] == []
    [talk] = doc["conversations"]
    assert (talk["scope"], talk["rounds"], talk["not_handled"]) == ("debate", 6, 0)
    messages = talk["messages"]
    assert [(m["sender"], m["recipient"], m["handled_by"]) for m in messages] == [
        ("debate", "judge", "judge"), ("judge", "pro", "pro"), ("pro", "con", "con"), ("con", "pro", "pro"),
        ("pro", "judge", "judge"), ("pro", "con", "con"), ("con", "judge", "judge")]
    assert [m["answer"] is not None for m in messages] == [False] * 6 + [True]
    assert all(m["tokens"] > 0 for m in messages)  # what the turn that handled it spent
    assert messages[-1]["answer"] == doc["output"]
    assert messages[1]["in_reply_to"] == messages[0]["message_id"]

    lines = invoke("--store", store, "show", run_id).stdout.splitlines()
    top = lines.index("debate · peer group")
    assert lines[top + 1].endswith("7 messages in 6 rounds")
    assert lines[top + 2].endswith("0 debate → judge: Motion: remote work makes teams more productive")
    assert "✓ judge answered: Con wins." in lines[top + 9]


def test_show_draws_a_step_conversation_under_its_step_with_the_stop_reason(tmp_path: Path) -> None:
    store = str(tmp_path / "runs.db")
    run_id = ran(store, REVIEW, "A short note on offline sync")

    doc = shown(store, run_id)
    [step] = doc["teams"][0]["steps"]
    assert step["stop_reason"] == "answer: final answers from style and facts (quorum 2)"
    [talk] = doc["conversations"]
    assert (talk["scope"], len(talk["messages"]), talk["not_handled"]) == (step["transcript"], 7, 0)
    assert step["transcript"] == "lead/note"
    assert sorted(m["handled_by"] for m in talk["messages"] if m["answer"]) == ["facts", "style"]

    lines = invoke("--store", store, "show", run_id).stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if "✓ note review success" in line)
    assert "stopped on answer: final answers from style and facts (quorum 2)" in lines[at + 2]
    assert lines[at + 3].endswith("7 messages in 4 rounds")
    assert "peer group" not in "\n".join(lines)  # drawn once, under its step


def forward(name: str, to: list[str]) -> Agent[str]:
    """An agent that passes every message on to each of ``to`` and never answers."""
    calls = [ToolCall(id=f"s-{peer}", name="send_message", arguments={"to": peer, "content": f"from {name}"})
             for peer in to]
    return Agent(name, f"You are {name}.", model=FunctionModel(lambda _r: calls, name=name))


def stopped_by_the_message_limit(db: Path) -> RunResult[str]:
    """A recorded run of a group whose members pass every message on until the message limit stops them, with
    messages sent and not yet handled."""
    group = PeerGroup("fan", [forward("a", ["b", "c"]), forward("b", ["a"]), forward("c", ["a"])], entry="a",
                      stop=StopPolicy(max_messages=4))

    async def talk() -> RunResult[str]:
        async with SQLiteStore(db) as store, asyncio.timeout(10):
            return await group.run("Pass it on", store=store)

    return asyncio.run(talk())


def test_show_marks_the_messages_a_stopped_conversation_left_unhandled(tmp_path: Path) -> None:
    result = stopped_by_the_message_limit(tmp_path / "runs.db")
    assert result.stop_reason is not None and result.stop_reason.startswith("message limit")

    doc = shown(str(tmp_path / "runs.db"), result.run_id)
    [talk] = doc["conversations"]
    waiting = [m for m in talk["messages"] if m["handled_by"] is None]
    assert talk["not_handled"] == len(waiting) > 0
    assert len(talk["messages"]) == 1 + 4
    text = invoke("--store", str(tmp_path / "runs.db"), "show", result.run_id).stdout
    assert f"5 messages in {talk['rounds']} rounds, {len(waiting)} not handled" in text
    assert text.count("(not handled)") == len(waiting)


def traced(store: str, run_id: str) -> list[str]:
    result = invoke("--store", store, "trace", run_id)
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()[2:-1]  # between the header and the legend


def test_trace_puts_a_whole_run_conversation_at_the_top(tmp_path: Path) -> None:
    store = str(tmp_path / "runs.db")
    run_id = ran(store, DEBATE, "Motion: remote work makes teams more productive")
    lines = traced(store, run_id)

    sent = [line.split("✉ ")[1].split("  ")[0] for line in lines if "✉" in line]
    assert sent == ["debate → judge", "judge → pro", "pro → con", "con → pro", "pro → judge", "pro → con",
                    "con → judge"]
    assert all(line.startswith("  ✓ ") for line in lines)  # depth 0, every message handled, every call ok
    chats = [line.split(":")[0].strip(" ✓") for line in lines if ": chat simulated:" in line]
    assert sorted(chats) == ["con", "con", "judge", "judge", "judge", "pro", "pro"]
    assert "judge: ↳ final_answer" in lines[-1]
    assert lines.index(next(ln for ln in lines if "✉ judge → pro" in ln)) > lines.index(
        next(ln for ln in lines if "judge: chat" in ln))  # the judge wrote to pro in its first turn


def test_trace_puts_a_step_conversation_under_its_step(tmp_path: Path) -> None:
    store = str(tmp_path / "runs.db")
    run_id = ran(store, REVIEW, "A short note on offline sync")
    lines = traced(store, run_id)

    assert lines[0].startswith("* ✓ note review")
    inside = lines[1:]  # the plan's one step gave the answer: no synthesis follows
    assert all(line.startswith("    ✓ ") for line in inside)  # one level under the step
    assert sum("✉" in line for line in inside) == 7
    assert sorted(line.split(":")[0].strip(" ✓") for line in inside if "↳ final_answer" in line) == ["facts", "style"]


def test_trace_marks_a_message_no_member_handled(tmp_path: Path) -> None:
    result = stopped_by_the_message_limit(tmp_path / "runs.db")
    lines = [line for line in traced(str(tmp_path / "runs.db"), result.run_id) if "✉" in line]
    assert len(lines) == len(result.messages) == 5
    assert 0 < sum(line.startswith("  · ✉") for line in lines) < 5
