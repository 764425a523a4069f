"""The shared workspace: compare-and-set writes, who wrote what, and access through granted tools."""

from __future__ import annotations

import asyncio
import json

import pytest

from cadenza import Agent, Plan, Supervisor, Workspace, WorkspaceConflict, workspace_tools
from cadenza.models.base import ModelRequest, ToolCall, ToolResultMessage
from cadenza.models.function import FunctionModel
from cadenza.stores.base import Store


async def test_compare_and_set_never_overwrites_silently(store: Store) -> None:
    alice, bob = Workspace(store, "run_ws", writer="alice"), Workspace(store, "run_ws", writer="bob")
    first = await alice.put("notes", ["a"], expected_version=0)
    assert first.version == 1
    await bob.put("notes", ["a", "b"], expected_version=1)
    with pytest.raises(WorkspaceConflict) as lost:
        await alice.put("notes", ["a", "c"], expected_version=1)
    assert lost.value.actual == 2 and lost.value.retryable
    current = await alice.get("notes")
    assert current is not None and current.value == ["a", "b"] and current.writer == "bob"
    history = await store.workspace_history("run_ws", "notes")
    assert [(e.version, e.writer) for e in history] == [(1, "alice"), (2, "bob")]


async def test_parallel_writers_each_land_exactly_once(store: Store) -> None:
    async def add(name: str) -> None:
        space = Workspace(store, "run_ws", writer=name)
        while True:
            current = await space.get("count")
            version, value = (current.version, current.value) if current else (0, 0)
            await asyncio.sleep(0)  # let the others read the same version
            try:
                await space.put("count", value + 1, expected_version=version)
                return
            except WorkspaceConflict:
                continue

    await asyncio.gather(*(add(f"w{i}") for i in range(12)))
    final = await Workspace(store, "run_ws").get("count")
    assert final is not None and final.value == 12 and final.version == 12


def scripted(calls: dict[str, list[ToolCall]]) -> FunctionModel:
    """Each agent makes its scripted tool calls one turn at a time, then reports the last tool result."""
    def reply(request: ModelRequest) -> str | list[ToolCall]:
        done = sum(1 for m in request.messages if isinstance(m, ToolResultMessage))
        script = calls.get(request.agent or "", [])
        if done < len(script):
            return [script[done]]
        results = [m.content for m in request.messages if isinstance(m, ToolResultMessage)]
        return results[-1] if results else "nothing to do"
    return FunctionModel(reply)


async def test_agents_share_the_workspace_through_granted_tools(store: Store) -> None:
    model = scripted({
        "writer": [ToolCall(id="w1", name="write_workspace",
                            arguments={"key": "draft", "value": {"title": "X"}, "expected_version": 0})],
        "reader": [ToolCall(id="r1", name="read_workspace", arguments={"key": "draft"})],
        "sneaky": [ToolCall(id="s1", name="write_workspace",
                            arguments={"key": "draft", "value": "vandalised", "expected_version": 1})],
    })
    writer = Agent("writer", model=model, tools=workspace_tools())
    reader = Agent("reader", model=model, tools=workspace_tools(write=False))
    sneaky = Agent("sneaky", model=model, tools=workspace_tools(write=False))  # read-only: no write tool at all
    lead = Supervisor("lead", model=model, workers=[writer, reader, sneaky], plan=Plan.of(
        {"id": "write", "agent": "writer", "instruction": "write"},
        {"id": "read", "agent": "reader", "instruction": "read", "depends_on": ["write"]},
        {"id": "try", "agent": "sneaky", "instruction": "try", "depends_on": ["read"]},
    ))
    result = await lead.run("share", store=store)
    outputs = {r.step.id: r.output for r in result.steps}
    assert json.loads(str(outputs["write"])) == {"key": "draft", "version": 1}
    assert json.loads(str(outputs["read"])) == {"key": "draft", "exists": True, "version": 1, "value": {"title": "X"},
                                                "writer": "writer"}
    assert "unknown tool 'write_workspace'" in str(outputs["try"])
    entry = await store.workspace_get(result.run_id, "draft")
    assert entry is not None and entry.version == 1 and entry.writer == "writer"
    assert [t.name for t in workspace_tools(write=False)] == ["read_workspace", "list_workspace"]


async def test_workspace_tools_without_a_store_say_so() -> None:
    model = scripted({"writer": [ToolCall(id="w1", name="list_workspace", arguments={})]})
    result = await Agent("writer", model=model, tools=workspace_tools()).run("list")
    assert result.output == "this run has no shared workspace: it is not recorded in a store"
