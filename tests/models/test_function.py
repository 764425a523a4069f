"""FunctionModel: a test double that answers with whatever a Python function returns."""

from __future__ import annotations

import math
from typing import Any, cast

import pytest

from cadenza._errors import ConfigError, ModelError
from cadenza._usage import Usage
from cadenza.models import FunctionModel, Model, ModelRequest, ModelResponse, ToolCall, UserMessage


def ask(content: str = "hello") -> ModelRequest:
    return ModelRequest(system="sys", messages=[UserMessage(content=content)], agent="a")


async def test_sync_function_returning_text() -> None:
    model = FunctionModel(lambda request: "answer")
    assert isinstance(model, Model)
    assert model.name == "function:function"
    request = ask("hi there")
    response = await model.request(request)
    assert response.text == "answer" and response.tool_calls == []
    assert response.model == "function:function"
    assert response.usage.model_calls == 1
    assert response.usage.input_tokens == math.ceil(len("sys" + "hi there") / 4)
    assert response.usage.output_tokens == math.ceil(len("answer") / 4)
    assert model.calls == [request]


async def test_async_function_returning_tool_calls() -> None:
    async def reply(request: ModelRequest) -> list[ToolCall]:
        return [ToolCall(id="c1", name="search", arguments={"q": "x"})]

    model = FunctionModel(reply, name="planner")
    assert model.name == "function:planner"
    response = await model.request(ask())
    assert response.text is None
    assert [c.name for c in response.tool_calls] == ["search"]
    assert response.usage.model_calls == 1 and response.usage.output_tokens > 0


async def test_full_response_is_returned_as_is() -> None:
    given = ModelResponse(text="t", usage=Usage(input_tokens=5, model_calls=1), model="custom")
    response = await FunctionModel(lambda request: given).request(ask())
    assert response is given


async def test_calls_are_recorded_in_order() -> None:
    model = FunctionModel(lambda request: f"seen {len(request.messages)}")
    await model.request(ask("one"))
    await model.request(ask("two"))
    assert [c.messages[0].content for c in model.calls] == ["one", "two"]  # type: ignore[union-attr]


async def test_function_errors_propagate() -> None:
    def fail(request: ModelRequest) -> str:
        raise ModelError("rate limited", retryable=True)

    model = FunctionModel(fail)
    with pytest.raises(ModelError, match="rate limited") as info:
        await model.request(ask())
    assert info.value.retryable
    assert len(model.calls) == 1


async def test_wrong_return_type_is_a_config_error() -> None:
    model = FunctionModel(lambda request: cast(Any, 42))
    with pytest.raises(ConfigError, match="must return a ModelResponse, a str or a list of ToolCall"):
        await model.request(ask())
    mixed = FunctionModel(lambda request: cast(Any, [ToolCall(id="1", name="x"), "y"]))
    with pytest.raises(ConfigError):
        await mixed.request(ask())
