"""The agent's model/tool loop: concurrent tools, errors back to the model, output repair, max_turns."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from cadenza import Agent, ConfigError, FunctionModel, ModelError, ModelRequest, ModelResponse, tool
from cadenza.models.base import ToolCall, ToolResultMessage, UserMessage


class Report(BaseModel):
    title: str
    score: int


def last_tool_results(request: ModelRequest) -> list[ToolResultMessage]:
    return [m for m in request.messages if isinstance(m, ToolResultMessage)]


async def test_tools_requested_together_run_concurrently() -> None:
    both_started = asyncio.Event()
    started: list[str] = []

    @tool
    async def left(x: int) -> int:
        """Left."""
        started.append("left")
        if len(started) == 2:
            both_started.set()
        await asyncio.wait_for(both_started.wait(), 2)  # deadlocks unless both run at once
        return x + 1

    @tool
    async def right(x: int) -> int:
        """Right."""
        started.append("right")
        if len(started) == 2:
            both_started.set()
        await asyncio.wait_for(both_started.wait(), 2)
        return x * 10

    def reply(request: ModelRequest) -> ModelResponse | str | list[ToolCall]:
        results = last_tool_results(request)
        if not results:
            return [ToolCall(id="1", name="left", arguments={"x": 1}), ToolCall(id="2", name="right", arguments={"x": 2})]
        return " ".join(f"{r.name}={r.content}" for r in results)

    agent = Agent("a", "help", model=FunctionModel(reply), tools=[left, right])
    model = agent.model
    result = await agent.run("go")
    assert result.status == "success"
    assert result.output == "left=2 right=20"
    assert [len(call.messages) for call in model.calls] == [1, 4]  # type: ignore[attr-defined]
    assert result.usage.model_calls == 2


async def test_tool_errors_and_invalid_arguments_go_back_to_the_model() -> None:
    executed: list[int] = []

    @tool
    def divide(a: int, b: int) -> float:
        """Divide a by b."""
        executed.append(a)
        return a / b

    turns: list[list[ToolResultMessage]] = []

    def reply(request: ModelRequest) -> str | list[ToolCall]:
        results = last_tool_results(request)
        turns.append(results)
        if not results:
            return [
                ToolCall(id="1", name="divide", arguments={"a": 1, "b": 0}),
                ToolCall(id="2", name="divide", arguments={"a": "x", "b": 1}),
                ToolCall(id="3", name="nope", arguments={}),
            ]
        return "done"

    result = await Agent("a", model=FunctionModel(reply), tools=[divide]).run("go")
    assert result.output == "done"
    errors = turns[-1]
    assert all(r.is_error for r in errors)
    assert "ZeroDivisionError" in errors[0].content
    assert "invalid arguments for tool 'divide'" in errors[1].content and "a:" in errors[1].content
    assert "unknown tool 'nope'" in errors[2].content and "divide" in errors[2].content
    assert executed == [1]  # the invalid call never executed


async def test_invalid_output_is_sent_back_for_repair() -> None:
    answers = iter(['{"title": "x"}', '{"title": "x", "score": 7}'])
    model = FunctionModel(lambda request: next(answers))
    result = await Agent("a", model=model, output_type=Report).run("go")
    assert result.output == Report(title="x", score=7)
    assert result.usage.model_calls == 2
    repair = model.calls[1].messages[-1]
    assert isinstance(repair, UserMessage) and "score" in repair.content
    # A request's messages never change after it was sent.
    assert [len(call.messages) for call in model.calls] == [1, 3]
    assert model.calls[0].output_schema is not None
    assert model.calls[0].output_schema.json_schema["required"] == ["title", "score"]


async def test_output_repairs_are_bounded() -> None:
    model = FunctionModel(lambda request: "not json")
    result = await Agent("a", model=model, output_type=Report, output_retries=2).run("go")
    assert result.status == "failure"
    assert result.error is not None and result.error.type == "OutputValidationError"
    assert "after 2 repair attempt(s)" in result.error.message
    assert len(model.calls) == 3


async def test_max_turns_stops_a_tool_loop() -> None:
    @tool
    def ping() -> str:
        """Ping."""
        return "pong"

    model = FunctionModel(lambda request: [ToolCall(id="1", name="ping")])
    result = await Agent("a", model=model, tools=[ping], max_turns=4).run("go")
    assert result.status == "failure"
    assert result.error is not None and result.error.type == "MaxTurnsExceeded"
    assert len(model.calls) == 4


async def test_model_errors_become_failure_results_that_say_if_retryable() -> None:
    def reply(request: ModelRequest) -> str:
        raise ModelError("provider overloaded", retryable=True)

    result = await Agent("a", model=FunctionModel(reply)).run("go")
    assert result.status == "failure"
    assert result.error is not None
    assert (result.error.type, result.error.retryable) == ("ModelError", True)


async def test_the_task_renders_input_and_dependency_outputs_as_delimited_data() -> None:
    model = FunctionModel(lambda request: "ok")
    await Agent("a", model=model).run("summarise", input={"topic": "bees"})
    content = model.calls[0].messages[0].content  # type: ignore[union-attr]
    assert content.startswith("summarise") and '<input>\n{"topic": "bees"}\n</input>' in content


def test_run_sync_works_outside_an_event_loop() -> None:
    result = Agent("a", model=FunctionModel(lambda request: "hi")).run_sync("go")
    assert (result.status, result.output) == ("success", "hi")


async def test_run_sync_inside_a_loop_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="inside a running event loop"):
        Agent("a", model=FunctionModel(lambda request: "hi")).run_sync("go")


def test_bad_agent_configuration_is_rejected() -> None:
    with pytest.raises(ConfigError, match="max_turns"):
        Agent("a", max_turns=0)
    with pytest.raises(ConfigError, match="name"):
        Agent("has space")
    with pytest.raises(ConfigError, match="unknown model provider 'nope'"):
        Agent("a", model="nope:model")


async def test_agent_defaults_to_the_simulated_model() -> None:
    agent = Agent("a", "be brief")
    assert agent.model.name.startswith("simulated")
    result = await agent.run("hello")
    assert result.status == "success" and isinstance(result.output, str) and result.output
