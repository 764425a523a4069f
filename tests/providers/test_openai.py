"""The OpenAI and OpenAI-compatible providers, end to end: the real SDK against a local Chat Completions server."""

from __future__ import annotations

import enum
import json
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any, Literal

import jsonschema
import pytest
from pydantic import BaseModel, Field

from cadenza import Agent, ConfigError, ModelError, tool
from cadenza.models import Model, resolve_model
from cadenza.models.base import (
    AssistantMessage,
    ModelRequest,
    OutputSchema,
    ToolCall,
    ToolResultMessage,
    ToolSpec,
    UserMessage,
)
from cadenza.models.openai_provider import OpenAIModel
from cadenza.models.pricing import PRICES, Price, Prices
from cadenza.models.registry import available_providers
from providers.openai_server import PATH, Garbled, OpenAIServer, completion, error, strict_problems, tool_call
from providers.wire import Drop, Reply


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    wire = OpenAIServer()
    with wire.serve():
        yield wire
    assert wire.problems == []


@pytest.fixture
async def model(server: OpenAIServer) -> AsyncIterator[OpenAIModel]:
    m = OpenAIModel("gpt-5-mini", api_key="test-key", base_url=server.url + "/v1")
    yield m
    await m.aclose()


def ask(text: str = "Hi", **fields: Any) -> ModelRequest:
    return ModelRequest(messages=[UserMessage(content=text)], **fields)


def adapter(model: Model) -> OpenAIModel:
    """The adapter inside what `resolve_model` returns (it wraps vendor models in retries)."""
    inner = getattr(model, "inner", model)
    assert isinstance(inner, OpenAIModel), model
    return inner


def messages_of(server: OpenAIServer, n: int) -> list[dict[str, Any]]:
    body = server.requests[n].body
    assert isinstance(body, dict)
    messages: list[dict[str, Any]] = body["messages"]
    return messages


# ---------------------------------------------------------------------- requests and replies


async def test_a_plain_reply_and_the_exact_request(server: OpenAIServer, model: OpenAIModel) -> None:
    response = await model.request(ask("Say hello.", system="Be brief.", max_tokens=100))

    assert response.text == "Hello from the server."
    assert response.tool_calls == []
    assert response.model == "gpt-5-mini-2025-08-07"
    assert model.name == "openai:gpt-5-mini"
    assert model.endpoint == server.url + "/v1"
    [sent] = server.requests
    assert (sent.method, sent.path) == ("POST", PATH)
    assert sent.headers["authorization"] == "Bearer test-key"
    assert sent.headers["x-stainless-retry-count"] == "0"
    assert sent.body == {
        "model": "gpt-5-mini",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}],
        "max_completion_tokens": 100,
    }
    assert server.problems == []


async def test_no_system_prompt_and_no_limit_send_neither(server: OpenAIServer, model: OpenAIModel) -> None:
    await model.request(ask())
    assert server.requests[0].body == {"model": "gpt-5-mini", "messages": [{"role": "user", "content": "Hi"}]}
    assert server.problems == []


async def test_the_output_limit_comes_from_the_request_else_the_model(server: OpenAIServer) -> None:
    model = OpenAIModel("gpt-5-mini", api_key="test-key", base_url=server.url + "/v1", max_tokens=256)
    await model.request(ask())
    await Agent("a", model=model, max_tokens=50).run("Hi")
    await model.aclose()
    assert [r.body.get("max_completion_tokens") for r in server.requests] == [256, 50]
    assert model.max_tokens == 256
    assert server.problems == []


async def test_tool_calls_across_turns_through_an_agent(server: OpenAIServer, model: OpenAIModel) -> None:
    @tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @tool
    def divide(a: int, b: int) -> float:
        """Divide a by b."""
        return a / b

    server.script(
        Reply(completion(None, tool_calls=[tool_call("call_1", "add", {"a": 2, "b": 3})])),
        Reply(completion("Two at once.", tool_calls=[tool_call("call_2", "add", {"a": 5, "b": 10}),
                                                     tool_call("call_3", "divide", {"a": 1, "b": 0})])),
        Reply(completion("2 + 3 = 5 and 5 + 10 = 15; 1 / 0 failed.")),
    )
    agent = Agent("calc", "Use the tools.", model=model, tools=[add, divide])
    result = await agent.run("Add 2 and 3, then 5 and 10, and divide 1 by 0.")

    assert result.status == "success", result.error
    assert result.output == "2 + 3 = 5 and 5 + 10 = 15; 1 / 0 failed."
    assert result.usage.model_calls == 3
    assert len(server.requests) == 3
    first = server.requests[0].body
    assert first["tools"] == [
        {"type": "function", "function": {"name": "add", "description": "Add two integers.",
                                          "parameters": add.spec.parameters}},
        {"type": "function", "function": {"name": "divide", "description": "Divide a by b.",
                                          "parameters": divide.spec.parameters}},
    ]
    assert messages_of(server, 1) == [
        {"role": "system", "content": "Use the tools."},
        {"role": "user", "content": "Add 2 and 3, then 5 and 10, and divide 1 by 0."},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "5"},
    ]
    third = messages_of(server, 2)
    assert third[-3] == {"role": "assistant", "content": "Two at once.", "tool_calls": [
        {"id": "call_2", "type": "function", "function": {"name": "add", "arguments": '{"a": 5, "b": 10}'}},
        {"id": "call_3", "type": "function", "function": {"name": "divide", "arguments": '{"a": 1, "b": 0}'}},
    ]}
    assert third[-2] == {"role": "tool", "tool_call_id": "call_2", "content": "15"}
    assert third[-1]["role"] == "tool" and third[-1]["tool_call_id"] == "call_3"
    assert third[-1]["content"].startswith("Error: ")
    assert "division by zero" in third[-1]["content"]
    assert server.problems == []


async def test_history_messages_translate_one_to_one(server: OpenAIServer, model: OpenAIModel) -> None:
    request = ModelRequest(system="S", messages=[
        UserMessage(content="u1"),
        AssistantMessage(text="plain answer"),
        UserMessage(content="u2"),
        AssistantMessage(tool_calls=[ToolCall(id="c1", name="look", arguments={"q": "ünï"})]),
        ToolResultMessage(call_id="c1", name="look", content="no such page", is_error=True),
    ], tools=[ToolSpec(name="look", parameters={"type": "object", "properties": {"q": {"type": "string"}}})])
    await model.request(request)

    assert messages_of(server, 0) == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "u1"},
        {"role": "assistant", "content": "plain answer"},
        {"role": "user", "content": "u2"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "look", "arguments": '{"q": "ünï"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "Error: no such page"},
    ]
    assert server.requests[0].body["tools"] == [{"type": "function", "function": {
        "name": "look", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]
    assert server.problems == []


# ---------------------------------------------------------------------- structured output


class Item(BaseModel):
    name: str
    quantity: int = 1


class Order(BaseModel):
    customer: str
    items: list[Item]
    note: str | None = None


async def test_structured_output_through_an_agent_sends_a_strict_schema(
    server: OpenAIServer, model: OpenAIModel
) -> None:
    answer = {"customer": "Ada", "items": [{"name": "tea", "quantity": 2}], "note": None}
    server.script(Reply(completion(json.dumps(answer))))
    agent = Agent("orders", "Extract the order.", model=model, output_type=Order)
    result = await agent.run("Ada wants two teas.")

    assert result.status == "success", result.error
    assert result.output == Order(customer="Ada", items=[Item(name="tea", quantity=2)])
    fmt = server.requests[0].body["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "orders_output"
    assert fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    assert strict_problems(schema, "schema") == []
    assert schema["required"] == ["customer", "items", "note"]
    assert schema["$defs"]["Item"]["required"] == ["name", "quantity"]
    assert schema["$defs"]["Item"]["additionalProperties"] is False
    jsonschema.validate(answer, schema)  # the strict schema accepts what the original type accepts
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**answer, "extra": 1}, schema)
    assert Order.model_json_schema()["required"] == ["customer", "items"]  # the agent's schema is left alone
    assert server.problems == []


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Cat(BaseModel):
    kind: Literal["cat"] = "cat"
    lives: int = 9


class Dog(BaseModel):
    kind: Literal["dog"]
    good: bool


class Node(BaseModel):
    value: int
    children: list[Node] = []


class Pet(BaseModel):
    name: str = Field(description="What the pet answers to.")
    color: Color
    animal: Annotated[Cat | Dog, Field(discriminator="kind")]
    tree: Node = Field(description="A recursive field.")
    best_friend: Cat | None = None


async def test_enums_tagged_unions_recursion_and_optional_models_convert_to_strict(
    server: OpenAIServer, model: OpenAIModel
) -> None:
    await model.request(ask(output_schema=OutputSchema(name="pet", json_schema=Pet.model_json_schema())))
    spec = server.requests[0].body["response_format"]["json_schema"]
    assert spec["strict"] is True
    schema = spec["schema"]
    assert strict_problems(schema, "schema") == []
    pets = [
        Pet(name="Rex", color=Color.RED, animal=Dog(kind="dog", good=True), tree=Node(value=1)),
        Pet(name="Tom", color=Color.BLUE, animal=Cat(), tree=Node(value=1, children=[Node(value=2)]),
            best_friend=Cat(lives=3)),
    ]
    for pet in pets:  # every value of the type fits the strict schema, and reads back as the same value
        dumped = pet.model_dump(mode="json")
        jsonschema.validate(dumped, schema)
        assert Pet.model_validate(dumped) == pet
    wrong = {**pets[0].model_dump(mode="json"), "animal": {"kind": "cow", "good": True}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wrong, schema)
    assert server.problems == []


@pytest.mark.parametrize("schema", [
    {"type": "object"},  # any object at all
    {"type": "object", "properties": {"pair": {"type": "array", "prefixItems": [{"type": "integer"}]}}},
    {"type": "object", "properties": {"code": {"type": "string", "minLength": 3}}},
])
async def test_schemas_strict_mode_cannot_express(server: OpenAIServer, model: OpenAIModel,
                                                  schema: dict[str, Any]) -> None:
    await model.request(ask(output_schema=OutputSchema(name="o", json_schema=schema)))
    assert server.requests[0].body["response_format"]["json_schema"] == {"name": "o", "schema": schema,
                                                                         "strict": False}
    assert server.problems == []


async def test_a_schema_strict_mode_cannot_express_is_sent_unstrict(server: OpenAIServer, model: OpenAIModel) -> None:
    class Tally(BaseModel):
        counts: dict[str, int]

    schema = Tally.model_json_schema()
    await model.request(ask(output_schema=OutputSchema(name="tally.v1", json_schema=schema)))

    spec = server.requests[0].body["response_format"]["json_schema"]
    assert spec == {"name": "tally_v1", "schema": schema, "strict": False}
    assert server.problems == []


async def test_a_list_root_is_not_strict(server: OpenAIServer, model: OpenAIModel) -> None:
    schema = {"type": "array", "items": {"type": "integer"}}
    await model.request(ask(output_schema=OutputSchema(name="numbers", json_schema=schema)))
    assert server.requests[0].body["response_format"]["json_schema"]["strict"] is False
    assert server.problems == []


# ---------------------------------------------------------------------- usage and cost


async def test_usage_counts_cached_tokens_apart_and_costs_them_as_priced(
    server: OpenAIServer, model: OpenAIModel
) -> None:
    server.script(Reply(completion(prompt_tokens=1000, cached_tokens=400, completion_tokens=50)))
    usage = (await model.request(ask())).usage

    assert (usage.input_tokens, usage.cache_read_tokens, usage.output_tokens) == (600, 400, 50)
    assert (usage.cache_write_tokens, usage.model_calls) == (0, 1)
    assert usage.cost_usd == PRICES.cost("openai:gpt-5-mini", usage)
    assert usage.cost_usd == pytest.approx((600 * 0.25 + 400 * 0.025 + 50 * 2.0) / 1e6)
    assert server.problems == []


async def test_a_given_price_table_is_used(server: OpenAIServer) -> None:
    prices = Prices({"openai:gpt-5-mini": Price(input=1.0, output=10.0, cache_read=0.5)})
    model = OpenAIModel("gpt-5-mini", api_key="k", base_url=server.url + "/v1", prices=prices)
    server.script(Reply(completion(prompt_tokens=3000, cached_tokens=1000, completion_tokens=100)))
    usage = (await model.request(ask())).usage
    await model.aclose()
    assert usage.cost_usd == pytest.approx((2000 * 1.0 + 1000 * 0.5 + 100 * 10.0) / 1e6)
    assert server.problems == []


# ---------------------------------------------------------------------- tool call arguments


async def test_unreadable_tool_arguments_are_marked_malformed(server: OpenAIServer, model: OpenAIModel) -> None:
    server.script(Reply(completion(None, tool_calls=[
        tool_call("bad_json", "add", '{"a": 1, "b": '),
        tool_call("not_object", "add", "[1, 2]"),
        tool_call("good", "add", {"a": 1, "b": 2}),
        tool_call("empty", "ping", ""),
    ])))
    response = await model.request(ask(tools=[ToolSpec(name="add"), ToolSpec(name="ping")]))

    bad, not_object, good, empty = response.tool_calls
    assert (bad.id, bad.name, bad.arguments) == ("bad_json", "add", {})
    assert bad.malformed is not None and "not valid JSON" in bad.malformed
    assert not_object.arguments == {}
    assert not_object.malformed is not None and "JSON object" in not_object.malformed and "list" in not_object.malformed
    assert (good.arguments, good.malformed) == ({"a": 1, "b": 2}, None)
    assert (empty.arguments, empty.malformed) == ({}, None)
    assert response.text is None
    assert server.problems == []


async def test_an_agent_sends_malformed_arguments_back_and_the_model_repairs_them(
    server: OpenAIServer, model: OpenAIModel
) -> None:
    seen: list[int] = []

    @tool
    def square(x: int) -> int:
        """Square x."""
        seen.append(x)
        return x * x

    server.script(
        Reply(completion(None, tool_calls=[tool_call("call_a", "square", '{"x": 3')])),
        Reply(completion(None, tool_calls=[tool_call("call_b", "square", {"x": 3})])),
        Reply(completion("9")),
    )
    result = await Agent("sq", model=model, tools=[square]).run("Square 3.")

    assert result.status == "success", result.error
    assert (result.output, seen) == ("9", [3])  # the malformed call never ran
    second = messages_of(server, 1)
    assert second[-2]["tool_calls"][0]["function"] == {"name": "square", "arguments": "{}"}
    assert second[-1]["tool_call_id"] == "call_a"
    assert second[-1]["content"].startswith("Error: the arguments could not be read: the arguments are not valid JSON")
    assert server.problems == []


# ---------------------------------------------------------------------- failures


@pytest.mark.parametrize(("status", "retryable"), [
    (429, True), (500, True), (502, True), (503, True), (408, True), (409, True),
    (400, False), (401, False), (403, False), (404, False), (422, False), (501, False),
])
async def test_each_status_is_one_request_and_an_honest_model_error(
    server: OpenAIServer, model: OpenAIModel, status: int, retryable: bool
) -> None:
    server.script(error(status, f"the server says {status}", code="some_code"))
    with pytest.raises(ModelError) as caught:
        await model.request(ask())

    assert caught.value.status == status
    assert caught.value.retryable is retryable
    assert caught.value.retry_after is None
    message = str(caught.value)
    assert "openai:gpt-5-mini" in message and server.url in message
    assert f"HTTP {status}" in message and f"some_code: the server says {status}" in message
    assert len(server.requests) == 1  # the SDK made no retry of its own
    assert server.problems == []


async def test_a_rate_limit_says_when_to_retry(server: OpenAIServer, model: OpenAIModel) -> None:
    server.script(error(429, "Rate limit reached for gpt-5-mini", type="requests", code="rate_limit_exceeded",
                        headers={"retry-after": "7", "x-request-id": "req_42"}))
    with pytest.raises(ModelError) as caught:
        await model.request(ask())
    assert (caught.value.retryable, caught.value.status, caught.value.retry_after) == (True, 429, 7.0)
    assert "Rate limit reached" in str(caught.value) and "req_42" in str(caught.value)
    assert len(server.requests) == 1


@pytest.mark.parametrize(("headers", "expected"), [
    ({"retry-after-ms": "1500"}, 1.5),
    ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
    ({"retry-after": "0.5"}, 0.5),
    ({"retry-after": "Thu, 01 Jan 1970 00:00:00 GMT"}, 0.0),
    ({"retry-after": "soon"}, None),
])
async def test_retry_after_forms(
    server: OpenAIServer, model: OpenAIModel, headers: dict[str, str], expected: float | None
) -> None:
    server.script(error(503, "overloaded", type="server_error", headers=headers))
    with pytest.raises(ModelError) as caught:
        await model.request(ask())
    assert caught.value.retry_after == expected
    assert caught.value.retryable


async def test_the_servers_should_retry_header_overrides_the_status(server: OpenAIServer, model: OpenAIModel) -> None:
    server.script(error(500, "bad model output", headers={"x-should-retry": "false"}),
                  error(400, "try again", headers={"x-should-retry": "true"}))
    with pytest.raises(ModelError) as first:
        await model.request(ask())
    with pytest.raises(ModelError) as second:
        await model.request(ask())
    assert (first.value.retryable, second.value.retryable) == (False, True)
    assert len(server.requests) == 2


async def test_a_timeout_is_retryable(server: OpenAIServer) -> None:
    model = OpenAIModel("gpt-5-mini", api_key="test-key", base_url=server.url + "/v1", timeout=0.2)
    server.script(Reply(completion(), delay=3.0))
    with pytest.raises(ModelError) as caught:
        await model.request(ask())
    await model.aclose()
    assert (caught.value.retryable, caught.value.status) == (True, None)
    assert "timed out after 0.2s" in str(caught.value)
    assert len(server.requests) == 1


async def test_a_dropped_connection_is_retryable(server: OpenAIServer, model: OpenAIModel) -> None:
    server.script(Drop())
    with pytest.raises(ModelError) as caught:
        await model.request(ask())
    assert (caught.value.retryable, caught.value.status) == (True, None)
    assert "connection failed" in str(caught.value)
    assert len(server.requests) == 1
    assert (await model.request(ask())).text == "Hello from the server."  # the next call reconnects


async def test_nothing_listening_is_retryable() -> None:
    wire = OpenAIServer()
    with wire.serve():
        url = wire.url
    model = OpenAIModel("gpt-5-mini", api_key="k", base_url=url + "/v1")
    with pytest.raises(ModelError) as caught:
        await model.request(ask())
    await model.aclose()
    assert (caught.value.retryable, caught.value.status) == (True, None)


async def test_a_garbled_body_is_retryable(server: OpenAIServer, model: OpenAIModel) -> None:
    server.script(Garbled())
    with pytest.raises(ModelError, match="not JSON") as caught:
        await model.request(ask())
    assert caught.value.retryable and caught.value.status is None
    assert len(server.requests) == 1
    assert server.problems == []


async def test_the_resilience_layer_retries_what_the_adapter_calls_retryable(server: OpenAIServer) -> None:
    model = resolve_model("openai:gpt-5-mini", {"api_key": "k", "base_url": server.url + "/v1", "retry_max": 0.05})
    server.script(error(503, "overloaded", type="server_error", headers={"retry-after-ms": "10"}), Drop())
    assert (await model.request(ask())).text == "Hello from the server."
    assert len(server.requests) == 3  # one HTTP request per attempt: the 503, the drop, then the answer
    server.script(error(400, "bad request"))
    with pytest.raises(ModelError, match="bad request"):
        await model.request(ask())
    assert len(server.requests) == 4  # a 400 is not retried
    await adapter(model).aclose()
    assert server.problems == []


@pytest.mark.parametrize("body", ["<html>bad gateway</html>", {"unexpected": True}, {"choices": []},
                                  {"choices": [{"index": 0}]}])
async def test_a_reply_that_is_not_a_completion(server: OpenAIServer, model: OpenAIModel, body: Any) -> None:
    server.script(Reply(body))
    with pytest.raises(ModelError) as caught:
        await model.request(ask())
    assert "not a chat completion" in str(caught.value)
    assert not caught.value.retryable
    assert len(server.requests) == 1


async def test_a_refusal_is_not_retryable(server: OpenAIServer, model: OpenAIModel) -> None:
    server.script(Reply(completion(None, refusal="I can't help with that.")))
    with pytest.raises(ModelError, match="refused: I can't help with that") as caught:
        await model.request(ask())
    assert not caught.value.retryable


async def test_running_out_of_tokens_before_any_content(server: OpenAIServer, model: OpenAIModel) -> None:
    server.script(Reply(completion("", finish_reason="length")), Reply(completion("Half a sen", finish_reason="length")))
    with pytest.raises(ModelError, match="ran out of tokens"):
        await model.request(ask(max_tokens=5))
    assert (await model.request(ask(max_tokens=5))).text == "Half a sen"  # usable text is kept
    assert server.problems == []


# ---------------------------------------------------------------------- configuration


async def test_the_key_and_base_url_come_from_the_environment(
    server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "env-key")
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1/")
    model = adapter(resolve_model("openai:gpt-5-mini"))
    assert (model.name, model.endpoint) == ("openai:gpt-5-mini", server.url + "/v1")
    await model.request(ask())
    await model.aclose()
    assert server.requests[0].headers["authorization"] == "Bearer env-key"
    assert server.problems == []


def test_a_missing_openai_key_is_a_config_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        resolve_model("openai:gpt-5-mini")
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAIModel("gpt-5-mini")


def test_options_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.delenv("MY_MISSING_KEY", raising=False)
    with pytest.raises(ConfigError, match="'temprature'"):
        resolve_model("openai:gpt-5-mini", {"temprature": 0.2})
    with pytest.raises(ConfigError, match="MY_MISSING_KEY"):
        resolve_model("openai:gpt-5-mini", {"api_key_env": "MY_MISSING_KEY"})
    with pytest.raises(ConfigError, match="structured"):
        resolve_model("openai:gpt-5-mini", {"structured": "loose"})
    with pytest.raises(ConfigError, match="timeout"):
        resolve_model("openai:gpt-5-mini", {"timeout": 0})
    with pytest.raises(ConfigError, match="not an http"):
        resolve_model("openai:gpt-5-mini", {"base_url": "localhost:8000"})


def test_both_providers_are_registered() -> None:
    assert {"openai", "openai-compatible"} <= set(available_providers())


# ---------------------------------------------------------------------- openai-compatible servers


async def test_a_compatible_server_needs_no_key_and_never_gets_the_openai_one(
    server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-openai-key")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-secret")
    url = f"{server.url}/v1"
    resolved = resolve_model(f"openai-compatible:llama3.1@{url}")
    assert resolved.name == f"openai-compatible:llama3.1@{url}"
    model = adapter(resolved)
    assert (model.name, model.endpoint) == (f"openai-compatible:llama3.1@{url}", url)

    server.script(Reply(completion("Hi from llama.", model="llama3.1:8b", prompt_tokens=9, completion_tokens=4)))
    response = await model.request(ask(max_tokens=64))
    await model.aclose()

    assert response.text == "Hi from llama."
    assert response.model == "llama3.1:8b"
    assert response.usage.input_tokens == 9 and response.usage.cost_usd == 0.0  # unpriced
    sent = server.requests[0]
    assert sent.body == {"model": "llama3.1", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 64}
    assert "sk-secret-openai-key" not in sent.headers["authorization"]
    assert sent.headers["authorization"].startswith("Bearer ")
    assert "openai-organization" not in sent.headers
    assert server.problems == []


async def test_a_named_compatible_endpoint_with_options(server: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_KEY", "vllm-secret")
    model = adapter(resolve_model("openai-compatible:qwen3",
                                  {"base_url": server.url + "/v1", "api_key_env": "VLLM_KEY"}))
    assert model.name == f"openai-compatible:qwen3@{server.url}/v1"
    await model.request(ask())
    await model.aclose()
    assert server.requests[0].headers["authorization"] == "Bearer vllm-secret"
    assert server.problems == []


def test_a_compatible_model_without_a_base_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="base URL") as caught:
        resolve_model("openai-compatible:llama3.1")
    assert "openai-compatible:llama3.1@http" in str(caught.value)  # it says how to give one
    with pytest.raises(ConfigError, match="give the URL once"):
        resolve_model("openai-compatible:llama3.1@http://a:1/v1", {"base_url": "http://b:2/v1"})


async def test_a_compatible_server_gets_the_schema_in_the_prompt_by_default(server: OpenAIServer) -> None:
    model = resolve_model(f"openai-compatible:llama3.1@{server.url}/v1")
    server.script(Reply(completion('```json\n{"customer": "Bo", "items": []}\n```')))
    agent = Agent("orders", "Extract the order.", model=model, output_type=Order)
    result = await agent.run("Bo wants nothing.")
    await adapter(model).aclose()

    assert result.status == "success", result.error
    assert result.output == Order(customer="Bo", items=[])
    body = server.requests[0].body
    assert "response_format" not in body
    system = body["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("Extract the order.\n\n")
    assert json.dumps(Order.model_json_schema()) in system["content"]
    assert server.problems == []


@pytest.mark.parametrize("mode", ["strict", "json_object"])
async def test_a_compatible_server_can_be_given_a_response_format(server: OpenAIServer, mode: str) -> None:
    model = resolve_model(f"openai-compatible:llama3.1@{server.url}/v1", {"structured": mode})
    server.script(Reply(completion('{"customer": "Cy", "items": [], "note": "hi"}')))
    agent = Agent("orders", model=model, output_type=Order)
    result = await agent.run("Cy says hi.")
    await adapter(model).aclose()

    assert result.output == Order(customer="Cy", items=[], note="hi")
    fmt = server.requests[0].body["response_format"]
    assert fmt["type"] == ("json_schema" if mode == "strict" else "json_object")
    assert server.problems == []


async def test_a_rejected_response_format_says_what_to_change(server: OpenAIServer) -> None:
    model = OpenAIModel("llama3.1", compatible=True, base_url=server.url + "/v1", structured="json_object")
    server.script(error(400, "'response_format.type' must be 'json_schema' or 'text'"))
    with pytest.raises(ModelError, match="structured: prompt") as caught:
        await model.request(ask(output_schema=OutputSchema(name="o", json_schema={"type": "object"})))
    await model.aclose()
    assert caught.value.status == 400 and not caught.value.retryable


def test_one_model_serves_several_event_loops(server: OpenAIServer) -> None:
    model = OpenAIModel("gpt-5-mini", api_key="test-key", base_url=server.url + "/v1")
    agent = Agent("a", model=model)
    first = agent.run_sync("one")
    second = agent.run_sync("two")
    assert (first.output, second.output) == ("Hello from the server.", "Hello from the server.")
    assert len(server.requests) == 2
    assert server.problems == []
