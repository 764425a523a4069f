"""Peer groups on the in-process bus: conversations that end for each reason, with the talk graph enforced.

Each agent is scripted by a function of what it is shown in its turn (`Peer`); every test runs under a
deadline, so a group that fails to notice its ending fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import pytest

from cadenza import (
    Agent,
    Budget,
    ConfigError,
    ErrorCode,
    ModelError,
    PeerGroup,
    Plan,
    RunResult,
    StopPolicy,
    Supervisor,
    tool,
)
from cadenza.models.base import ModelRequest, ToolResultMessage, UserMessage
from cadenza.models.function import FunctionModel
from peer_support import Reply, answer, peer, said, send

DEADLINE = 10.0

async def run(group: PeerGroup, goal: str = "Write a haiku", **options: Any) -> RunResult[str]:
    async with asyncio.timeout(DEADLINE):
        return await group.run(goal, **options)



async def test_a_conversation_ends_with_the_entry_agents_final_answer() -> None:
    def author(message: str, _: ModelRequest) -> Reply:
        return [send("critic", "draft: old pond")] if message == "Write a haiku" else answer(f"old pond ({message})")

    def critic(message: str, _: ModelRequest) -> Reply:
        return [send("author", "add a frog")]

    result = await run(PeerGroup("review", [peer("author", author), peer("critic", critic)], entry="author"))

    assert result.status == "success", result.error
    assert result.output == "old pond (add a frog)"
    assert result.stop_reason == "answer: final answer from author"
    assert {m.group for m in result.messages} == {"review"}
    assert said(result) == [("review", "author", 0, "Write a haiku"), ("author", "critic", 1, "draft: old pond"),
                            ("critic", "author", 2, "add a frog")]
    assert [m.in_reply_to for m in result.messages[1:]] == [m.message_id for m in result.messages[:-1]]
    assert result.usage.model_calls == 3  # a turn ends with its messages: no model call after send_message


async def test_a_message_outside_the_talk_graph_is_refused_and_the_model_is_told() -> None:
    seen: list[ModelRequest] = []

    def author(message: str, request: ModelRequest) -> Reply:
        return [send("critic", "draft")] if message == "Write a haiku" else answer(message)

    def critic(message: str, request: ModelRequest) -> Reply:
        seen.append(request)
        refused = [m for m in request.messages if isinstance(m, ToolResultMessage) and m.is_error]
        return [send("author", "fine")] if refused else [send("editor", "psst")]

    group = PeerGroup("review", [peer("author", author), peer("critic", critic), peer("editor", author)],
                      entry="author", talks_to={"critic": ["author"]})
    result = await run(group)

    assert result.status == "success" and result.output == "fine"
    offered = next(t for t in seen[0].tools if t.name == "send_message")
    to = offered.parameters["properties"]["to"]
    assert to.get("enum", [to.get("const")]) == ["author"]  # the only peer it may address (one value: a const)
    [refusal] = [m for m in seen[1].messages if isinstance(m, ToolResultMessage) and m.is_error]
    assert "'author'" in refusal.content and "psst" not in [m.content for m in result.messages]
    assert ("critic", "editor") not in [(m.sender, m.recipient) for m in result.messages]


async def test_a_deadlock_is_caught_at_once_with_who_waited_on_whom() -> None:
    def author(message: str, _: ModelRequest) -> Reply:
        return [send("critic", "draft")]

    def critic(message: str, _: ModelRequest) -> Reply:
        return "I have nothing to say."  # sends nothing: nobody will ever speak again

    result = await run(PeerGroup("review", [peer("author", author), peer("critic", critic)], entry="author"))

    assert result.status == "failure" and result.error is not None
    assert result.error.code is ErrorCode.PEER_DEADLOCK
    assert ("author waits for critic, who has its message of round 1; critic handled author's message of round 1 "
            "and sent nothing") in result.error.message
    assert "with 0 of the 1 final answers needed" in result.error.message
    assert result.duration < 2  # detected, not timed out
    assert result.stop_reason is not None and result.stop_reason.startswith("deadlock: every agent is idle")
    assert result.error.message.endswith(result.stop_reason)


async def test_a_quorum_that_can_no_longer_be_met_is_a_deadlock() -> None:
    def author(message: str, _: ModelRequest) -> Reply:
        return [send("style", "draft")]

    def reviewer(message: str, _: ModelRequest) -> Reply:
        return answer("approved")

    group = PeerGroup("review", [peer("author", author), peer("style", reviewer), peer("facts", reviewer)],
                      entry="author", talks_to={"style": ["author"], "facts": ["author"]},
                      stop=StopPolicy(answer_by=["style", "facts"], quorum="all"))
    result = await run(group)

    assert result.error is not None and result.error.code is ErrorCode.PEER_DEADLOCK
    assert ("with 1 of the 2 final answers needed: author waits for style, who has its message of round 1; style "
            "handled author's message of round 1 and gave its final answer; facts was never messaged and sent "
            "nothing") in result.error.message


async def test_a_ping_pong_past_the_limit_is_a_loop_naming_both_agents() -> None:
    counter = iter(range(100))

    def chatty(other: str) -> Callable[[str, ModelRequest], Reply]:
        return lambda message, _: [send(other, f"point {next(counter)}")]

    group = PeerGroup("debate", [peer("pro", chatty("con")), peer("con", chatty("pro"))], entry="pro",
                      stop=StopPolicy(ping_pong=4))
    result = await run(group)

    assert result.error is not None and result.error.code is ErrorCode.PEER_LOOP
    assert "pro and con went back and forth 5 times with nobody else" in result.error.message
    assert len(result.messages) == 1 + 4  # the fifth was never sent
    assert result.stop_reason is not None and result.stop_reason.startswith("loop: pro and con")


async def test_the_same_message_sent_again_and_again_is_a_loop() -> None:
    def author(message: str, _: ModelRequest) -> Reply:
        return [send("critic", "here is my draft")]

    def critic(message: str, _: ModelRequest) -> Reply:
        return [send("author", "Not good enough.")]

    group = PeerGroup("review", [peer("author", author), peer("critic", critic)], entry="author",
                      stop=StopPolicy(repeats=1))
    result = await run(group)

    assert result.error is not None and result.error.code is ErrorCode.PEER_LOOP
    assert "author and critic repeat themselves: author → critic 'here is my draft' would be sent for the 2nd time" \
        in result.error.message


def round_robin(name: str, nxt: str, counter: Any) -> Agent[str]:
    return peer(name, lambda message, _: [send(nxt, f"idea {next(counter)}")])


async def test_the_message_limit_stops_a_conversation_without_an_answer() -> None:
    counter = iter(range(100))
    group = PeerGroup("ideas", [round_robin("a", "b", counter), round_robin("b", "c", counter),
                                round_robin("c", "a", counter)], entry="a", stop=StopPolicy(max_messages=5))
    result = await run(group)

    assert result.error is not None and result.error.code is ErrorCode.PEER_LIMIT
    assert "message limit: 5 messages sent without a final answer" in result.error.message
    assert len(result.messages) == 1 + 5
    assert result.stop_reason == "message limit: 5 messages sent without a final answer"


async def test_the_round_limit_stops_a_conversation_without_an_answer() -> None:
    counter = iter(range(100))
    group = PeerGroup("ideas", [round_robin("a", "b", counter), round_robin("b", "c", counter),
                                round_robin("c", "a", counter)], entry="a", stop=StopPolicy(max_rounds=3))
    result = await run(group)

    assert result.error is not None and result.error.code is ErrorCode.PEER_LIMIT
    assert "round limit: a would answer in round 4, past the limit of 3" in result.error.message
    assert max(m.round for m in result.messages) == 3


async def test_the_timeout_stops_a_conversation_that_takes_too_long() -> None:
    async def slow(message: str, _: ModelRequest) -> Reply:
        await asyncio.sleep(DEADLINE)
        return "never"

    def author(message: str, _: ModelRequest) -> Reply:
        return [send("critic", "draft")]

    group = PeerGroup("review", [peer("author", author), peer("critic", slow)], entry="author",
                      stop=StopPolicy(timeout=0.3))
    result = await run(group)

    assert result.error is not None and result.error.code is ErrorCode.PEER_LIMIT
    assert "timeout: no final answer within 0.3s" in result.error.message
    assert result.duration < 2


async def test_a_quorum_of_reviewers_who_run_at_the_same_time_ends_the_group() -> None:
    started: set[str] = set()
    both = asyncio.Event()

    def author(message: str, _: ModelRequest) -> Reply:
        return [send("r1", "draft"), send("r2", "draft")]

    def reviewer(name: str) -> Callable[[str, ModelRequest], Any]:
        async def review(message: str, _: ModelRequest) -> Reply:
            started.add(name)
            if len(started) == 2:
                both.set()
            await both.wait()  # only returns if the other reviewer's turn runs at the same time
            return answer(f"{name} approves")
        return review

    group = PeerGroup("review", [peer("author", author), peer("r1", reviewer("r1")), peer("r2", reviewer("r2"))],
                      entry="author", stop=StopPolicy(answer_by=["r1", "r2"], quorum="all"))
    result = await run(group)

    assert result.status == "success", result.error
    assert result.output in ("r1 approves", "r2 approves")
    assert result.stop_reason in ("answer: final answers from r1 and r2 (quorum 2)",
                                  "answer: final answers from r2 and r1 (quorum 2)")
    assert sorted(m.recipient for m in result.messages[1:]) == ["r1", "r2"]


async def test_a_failed_turn_stops_the_group_naming_the_agent() -> None:
    def author(message: str, _: ModelRequest) -> Reply:
        return [send("critic", "draft")]

    def broken(message: str, _: ModelRequest) -> Reply:
        raise ModelError("invalid api key", status=401)

    result = await run(PeerGroup("review", [peer("author", author), peer("critic", broken)], entry="author"))

    assert result.error is not None and result.error.code is ErrorCode.MODEL
    assert "critic failed while handling author's message of round 1: invalid api key" in result.error.message
    assert result.stop_reason is not None and result.stop_reason.startswith("failure: critic failed")


async def test_a_budget_stops_the_group() -> None:
    counter = iter(range(1000))
    group = PeerGroup("ideas", [round_robin("a", "b", counter), round_robin("b", "c", counter),
                                round_robin("c", "a", counter)], entry="a")
    result = await run(group, budget=Budget(tokens=400))

    assert result.error is not None and result.error.code is ErrorCode.BUDGET_EXCEEDED
    assert result.usage.total_tokens <= 400
    assert result.stop_reason is not None and result.stop_reason.startswith("budget: ")


def team_with_a_review() -> Supervisor[str]:
    """A team whose one step is a review by an author and a critic, ending in the author's answer."""

    def author(message: str, _: ModelRequest) -> Reply:
        return [send("critic", "draft")] if "critic" not in message else answer("final haiku")

    def critic(message: str, _: ModelRequest) -> Reply:
        return [send("author", "ok from critic")]

    group = PeerGroup("review", [peer("author", author), peer("critic", critic)], entry="author")
    return Supervisor("lead", workers=[group], model="simulated",
                      plan=Plan.of({"id": "poem", "agent": "review", "instruction": "Write a haiku"}))


async def test_a_peer_group_is_a_step_of_a_supervisors_plan() -> None:
    lead = team_with_a_review()
    async with asyncio.timeout(DEADLINE):
        result = await lead.run("A haiku, reviewed")

    [step] = result.steps
    assert step.status == "success" and step.output == "final haiku"
    assert step.result is not None and step.result.stop_reason == "answer: final answer from author"
    assert result.to_json()["steps"][0]["stop_reason"] == "answer: final answer from author"
    assert step.result.transcript == "lead/poem" and result.to_json()["steps"][0]["transcript"] == "lead/poem"


@pytest.mark.parametrize(("options", "expected"), [
    ({"entry": "nobody"}, "the entry agent 'nobody' is not a member"),
    ({"talks_to": {"ghost": ["a"]}}, "'ghost' is not a member"),
    ({"talks_to": {"a": ["a"]}}, "'a' may not message itself"),
    ({"talks_to": {"a": ["z"]}}, "'a' talks to 'z', who is not a member"),
    ({"stop": StopPolicy(answer_by=["a"], quorum=2)}, "a quorum of 2 needs as many agents in answer_by"),
    ({"stop": StopPolicy(answer_by=["q"])}, "answer_by names agents that are not members: q"),
])
def test_a_group_that_cannot_work_is_refused_when_it_is_made(options: dict[str, Any], expected: str) -> None:
    agents = [peer("a", lambda m, r: "x"), peer("b", lambda m, r: "x")]
    with pytest.raises(ConfigError, match=re.escape(expected)):
        PeerGroup("g", agents, **{"entry": "a", **options})


def test_members_that_would_wait_for_a_human_are_refused() -> None:
    @tool(requires_approval=True)
    def deploy() -> str:
        """Deploy."""
        return "done"

    careful = Agent("b", "x", model="simulated", tools=[deploy])
    with pytest.raises(ConfigError, match="agent 'b' requires approval for deploy"):
        PeerGroup("g", [peer("a", lambda m, r: "x"), careful], entry="a")
    with pytest.raises(ConfigError, match="needs at least two agents"):
        PeerGroup("g", [peer("a", lambda m, r: "x")], entry="a")
    with pytest.raises(ConfigError, match="max_messages"):
        StopPolicy(max_messages=0)


async def test_a_peer_group_inside_a_recorded_team_stores_and_audits_its_conversation(tmp_path: Any) -> None:
    import json

    from cadenza.stores.sqlite import SQLiteStore

    lead = team_with_a_review()
    async with SQLiteStore(tmp_path / "runs.db") as store:
        async with asyncio.timeout(DEADLINE):
            result = await lead.run("A haiku, reviewed", store=store)
        rows = [m for m in await store.messages(result.run_id) if m.kind in ("message", "handled")]
        audit = [r for r in await store.audit(result.run_id) if r.kind == "message.sent"]

    said = [(json.loads(r.body_json)["sender"], json.loads(r.body_json)["recipient"]) for r in rows
            if r.kind == "message"]
    assert said == [("poem", "author"), ("author", "critic"), ("critic", "author")]
    handled = [(json.loads(r.body_json)["agent"], json.loads(r.body_json)["answer"]) for r in rows
               if r.kind == "handled"]
    assert handled == [("author", None), ("critic", None), ("author", "final haiku")]
    kinds = [r.kind for r in rows]  # each turn's replies are stored before the note that it was handled
    assert kinds == ["message", "message", "handled", "message", "handled", "handled"]
    assert {r.scope for r in rows} == {"lead/poem"}
    peer_audit = [(r.actor, r.subject) for r in audit if json.loads(r.detail_json)["kind"] == "message"]
    assert peer_audit == [("lead/poem", "lead/poem/author"), ("lead/poem/author", "lead/poem/critic"),
                          ("lead/poem/critic", "lead/poem/author")]
    assert all(json.loads(r.detail_json)["signed"] for r in audit)


async def test_a_peer_group_step_is_given_the_results_of_the_steps_it_depends_on() -> None:
    seen: list[str] = []

    def author(message: str, request: ModelRequest) -> Reply:
        seen.append(next(m.content for m in request.messages if isinstance(m, UserMessage)))
        return answer("a haiku about ponds")

    group = PeerGroup("review", [peer("author", author), peer("critic", lambda m, r: "ok")], entry="author")
    lead = Supervisor("lead", workers=[group, Agent("finder", model=FunctionModel(lambda r: "frogs like ponds"))],
                      model="simulated", plan=Plan.of(
                          {"id": "find", "agent": "finder", "instruction": "Find a topic"},
                          {"id": "poem", "agent": "review", "instruction": "Write a haiku", "depends_on": ["find"]}))
    async with asyncio.timeout(DEADLINE):
        result = await lead.run("A haiku, reviewed")

    assert result.ok and result.steps[1].output == "a haiku about ponds"
    [turn] = seen
    assert "frogs like ponds" in turn  # in the group's goal, as data
