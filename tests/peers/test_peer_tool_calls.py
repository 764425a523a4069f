"""Tools with side effects in a peer group's turns: each turn's calls are its own (a member calling the same tool
with the same arguments in two turns does it twice, recorded twice), and a resumed turn finds what it already
did (a finished call is not made again)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cadenza import Agent, PeerGroup, RunResult, tool
from cadenza.models.base import ModelRequest, ToolCall, ToolResultMessage, UserMessage
from cadenza.models.function import FunctionModel
from cadenza.stores.sqlite import SQLiteStore

EFFECTS: list[str] = []
"""What `publish` did, in order."""


@tool(side_effect="at_most_once")
def publish(text: str) -> str:
    """Publish ``text`` (once per call: an effect that must not happen twice)."""
    EFFECTS.append(text)
    return f"published {text!r}"


def call(name: str, **arguments: str) -> list[ToolCall]:
    return [ToolCall(id=f"c-{name}", name=name, arguments=arguments)]


def handling(request: ModelRequest) -> str:
    turn = next(m.content for m in request.messages if isinstance(m, UserMessage))
    return turn.rsplit("<message>", 1)[1].split("</message>", 1)[0]


def after_tool(request: ModelRequest) -> bool:
    return isinstance(request.messages[-1], ToolResultMessage)


async def run(group: PeerGroup, db: Path) -> tuple[RunResult[str], list[str]]:
    async with SQLiteStore(db) as store, asyncio.timeout(10):
        result = await group.run("Announce it", store=store)
        rows = (await store.snapshot(result.run_id)).tool_calls
    return result, [r.status for r in rows if r.tool == "publish"]


def test_the_same_call_in_two_turns_happens_twice_with_a_record_each(tmp_path: Path) -> None:
    EFFECTS.clear()

    def writer(request: ModelRequest) -> list[ToolCall]:
        if not after_tool(request):
            return call("publish", text="news")  # the same call in both of its turns
        return call("send_message", to="editor", content="published") if handling(request) == "Announce it" \
            else call("final_answer", answer="done")

    def editor(request: ModelRequest) -> list[ToolCall]:
        return call("send_message", to="writer", content="seen")

    group = PeerGroup("desk", [Agent("writer", model=FunctionModel(writer), tools=[publish]),
                               Agent("editor", model=FunctionModel(editor))], entry="writer")
    result, statuses = asyncio.run(run(group, tmp_path / "runs.db"))

    assert result.ok, result.error
    assert EFFECTS == ["news", "news"]
    assert statuses == ["finished", "finished"]


def test_a_resumed_turn_does_not_repeat_a_call_it_finished(tmp_path: Path) -> None:
    """The run stops inside a turn after its call finished, before the turn was recorded as handled; the resumed
    turn asks the model again, which makes the same call: the recorded result stands in for it."""
    EFFECTS.clear()
    published = asyncio.Event()
    hang = True

    async def writer(request: ModelRequest) -> list[ToolCall]:
        if not after_tool(request):
            return call("publish", text="news")
        if hang:
            published.set()
            await asyncio.Event().wait()  # stopped here, as a killed process would be
        return call("final_answer", answer="done")

    def group() -> PeerGroup:
        return PeerGroup("desk", [Agent("writer", model=FunctionModel(writer), tools=[publish]),
                                  Agent("editor", model=FunctionModel(lambda _: "nothing"))], entry="writer")

    async def scenario() -> RunResult[str]:
        nonlocal hang
        async with SQLiteStore(tmp_path / "runs.db") as store, asyncio.timeout(10):
            first = asyncio.create_task(group().run("Announce it", store=store))
            await published.wait()
            first.cancel()
            await asyncio.gather(first, return_exceptions=True)
            [run_row] = await store.list_runs()
            assert run_row.status == "cancelled" and EFFECTS == ["news"]
            hang = False
            return await group().resume(run_row.run_id, store=store)

    result = asyncio.run(scenario())
    assert result.ok and result.output == "done", result.error
    assert EFFECTS == ["news"]
