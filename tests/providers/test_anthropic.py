"""The Anthropic provider, end to end: the real SDK over a real socket to a local Messages API server."""

from __future__ import annotations

import asyncio
import email.utils
import gc
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from anthropic import AsyncAnthropic
from pydantic import BaseModel

from cadenza import Agent, ConfigError, ModelError, resolve_model, tool
from cadenza.models import AssistantMessage, Model, ModelRequest, OutputSchema, ToolSpec, UserMessage
from cadenza.models.anthropic_provider import AnthropicModel
from cadenza.models.pricing import Price, Prices
from providers.anthropic_server import (
    DEFAULT_TEXT,
    AnthropicServer,
    Garbled,
    error_reply,
    message_reply,
    text_block,
    tool_use_block,
)
from providers.wire import Drop, Reply

MODEL = "claude-haiku-4-5"
EPHEMERAL = {"type": "ephemeral"}

Connect = Callable[..., AnthropicModel]


@pytest.fixture
def server() -> Iterator[AnthropicServer]:
    running = AnthropicServer()
    with running.serve():
        yield running


@pytest.fixture
async def connect(server: AnthropicServer) -> AsyncIterator[Connect]:
    """Builds models that talk to the server (``AnthropicModel`` options may be given); closes them after."""
    made: list[AnthropicModel] = []

    def make(**options: Any) -> AnthropicModel:
        model = AnthropicModel(MODEL, api_key="test-key", base_url=server.url, **options)
        made.append(model)
        return model

    yield make
    for model in made:
        await model.aclose()


@pytest.fixture
def model(connect: Connect) -> AnthropicModel:
    return connect()


def ask(text: str = "Say hello.", **fields: Any) -> ModelRequest:
    return ModelRequest(system="Be brief.", messages=[UserMessage(content=text)], **fields)


def unwrap(model: Model) -> AnthropicModel:
    """The adapter inside the retries and breaker that `resolve_model` wraps a vendor model in."""
    inner = getattr(model, "inner", model)
    assert isinstance(inner, AnthropicModel)
    return inner


async def failure(model: AnthropicModel, request: ModelRequest | None = None) -> ModelError:
    with pytest.raises(ModelError) as caught:
        await model.request(request or ask())
    return caught.value


# ---------------------------------------------------------------------------------------------- requests and replies


async def test_a_text_reply_and_the_exact_request_sent(server: AnthropicServer, model: AnthropicModel) -> None:
    assert isinstance(model, Model)
    assert (model.name, model.endpoint, repr(model)) == (
        f"anthropic:{MODEL}", server.url, f"AnthropicModel({MODEL!r}, endpoint={server.url!r})")
    server.script(message_reply(text_block("Hello"), text_block(" there."), model="claude-haiku-4-5-20251001"))
    response = await model.request(ask())
    assert (response.text, response.tool_calls) == ("Hello there.", [])
    assert response.model == "claude-haiku-4-5-20251001"  # as the reply names it, not as requested
    (sent,) = server.requests
    assert (sent.method, sent.path) == ("POST", "/v1/messages")
    assert sent.body == {
        "model": MODEL,
        "max_tokens": 4096,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": EPHEMERAL}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello."}]}],
    }
    assert sent.headers["authorization"] == "Bearer test-key"  # how SDK 2.x sends an API key
    assert sent.headers["anthropic-version"]
    assert sent.headers["x-stainless-retry-count"] == "0"
    assert server.problems == []


async def test_request_max_tokens_wins_and_caching_can_be_off(server: AnthropicServer, connect: Connect) -> None:
    model = connect(cache=False, max_tokens=1000)
    tools = [ToolSpec(name="look", description="Look it up.")]
    await model.request(ask(max_tokens=256, tools=tools))
    await model.request(ask(tools=tools))
    first, second = (r.body for r in server.requests)
    assert (first["max_tokens"], second["max_tokens"]) == (256, 1000)
    assert first["system"] == [{"type": "text", "text": "Be brief."}]
    assert first["tools"] == [{"name": "look", "description": "Look it up.",
                               "input_schema": {"type": "object", "properties": {}}}]
    assert server.problems == []


async def test_turns_of_one_role_merge_and_empty_parts_are_left_out(server: AnthropicServer,
                                                                    model: AnthropicModel) -> None:
    request = ModelRequest(messages=[UserMessage(content="a"), AssistantMessage(text=""), UserMessage(content="b")])
    response = await model.request(request)
    assert response.text == DEFAULT_TEXT
    (sent,) = server.requests
    assert "system" not in sent.body and "tools" not in sent.body and "output_config" not in sent.body
    assert sent.body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
    ]
    assert server.problems == []


async def test_tool_calls_across_turns_through_an_agent(server: AnthropicServer, model: AnthropicModel) -> None:
    @tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    server.script(
        message_reply(text_block("Let me add."), tool_use_block("toolu_01", "add", {"a": 2, "b": 3}),
                      tool_use_block("toolu_02", "subtract", {"a": 3, "b": 2})),
        message_reply(text_block("2 + 3 = 5")),
    )
    result = await Agent("calc", "You add numbers.", model=model, tools=[add]).run("What is 2 + 3?")
    assert (result.status, result.output) == ("success", "2 + 3 = 5")
    assert result.usage.model_calls == 2
    first, second = (r.body for r in server.requests)
    assert first["tools"] == [{"name": "add", "description": "Add two integers.",
                               "input_schema": add.spec.parameters, "cache_control": EPHEMERAL}]
    assert second["tools"] == first["tools"] and second["system"] == first["system"]
    question, call, results = second["messages"]
    assert question == {"role": "user", "content": [{"type": "text", "text": "What is 2 + 3?"}]}
    assert call == {"role": "assistant", "content": [
        {"type": "text", "text": "Let me add."},
        {"type": "tool_use", "id": "toolu_01", "name": "add", "input": {"a": 2, "b": 3}},
        {"type": "tool_use", "id": "toolu_02", "name": "subtract", "input": {"a": 3, "b": 2}},
    ]}
    assert results["role"] == "user"
    ok, failed = results["content"]  # both results of one turn go back in one user message
    assert ok == {"type": "tool_result", "tool_use_id": "toolu_01", "content": "5"}
    assert (failed["tool_use_id"], failed["is_error"]) == ("toolu_02", True)
    assert "unknown tool 'subtract'" in failed["content"]
    assert server.problems == []


class Place(BaseModel):
    city: str
    country: str


class Forecast(BaseModel):
    place: Place
    high_c: int


async def test_structured_output_through_an_agent(server: AnthropicServer, model: AnthropicModel) -> None:
    server.script(message_reply(text_block('{"place": {"city": "Oslo", "country": "NO"}, "high_c": 21}')))
    agent = Agent("forecaster", "Forecast the weather.", model=model, output_type=Forecast)
    result = await agent.run("Oslo tomorrow?")
    assert result.status == "success"
    assert result.output == Forecast(place=Place(city="Oslo", country="NO"), high_c=21)
    (sent,) = server.requests
    schema = sent.body["output_config"]["format"]["schema"]
    assert sent.body["output_config"]["format"]["type"] == "json_schema"
    assert schema["type"] == "object" and schema["required"] == ["place", "high_c"]
    assert schema["additionalProperties"] is False  # made strict; the raw pydantic schema leaves it open
    assert schema["$defs"]["Place"]["additionalProperties"] is False
    assert server.problems == []


async def test_structured_output_works_alongside_tools(server: AnthropicServer, model: AnthropicModel) -> None:
    schema = OutputSchema(name="answer", json_schema={"type": "object", "properties": {"n": {"type": "integer"}},
                                                      "required": ["n"]})
    server.script(message_reply(text_block('{"n": 4}')))
    response = await model.request(ask(tools=[ToolSpec(name="look")], output_schema=schema))
    assert response.text == '{"n": 4}'
    (sent,) = server.requests
    assert "tool_choice" not in sent.body  # tools stay the model's choice
    assert sent.body["output_config"]["format"]["schema"]["properties"] == {"n": {"type": "integer"}}
    assert server.problems == []


async def test_usage_and_cost_count_cache_reads_and_writes(server: AnthropicServer, connect: Connect) -> None:
    reply = message_reply(text_block("ok"), input_tokens=1000, output_tokens=500, cache_read=4000, cache_write=2000)
    server.script(reply, reply)
    shipped = connect()
    usage = (await shipped.request(ask())).usage
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_write_tokens,
            usage.model_calls) == (1000, 500, 4000, 2000, 1)
    # claude-haiku-4-5 per million: input $1, output $5, cache read $0.10, cache write $1.25.
    assert usage.cost_usd == pytest.approx(0.0064, abs=1e-12)
    own = connect(prices=Prices({"anthropic:claude-haiku": Price(input=2.0, output=10.0)}))
    # No cache prices in this table: reads and writes cost the input price.
    assert (await own.request(ask())).usage.cost_usd == pytest.approx(0.019, abs=1e-12)
    assert server.problems == []


async def test_tool_input_that_is_not_an_object_is_marked_malformed(server: AnthropicServer,
                                                                   model: AnthropicModel) -> None:
    server.script(message_reply(tool_use_block("toolu_01", "add", [2, 3])))
    response = await model.request(ask())
    (call,) = response.tool_calls
    assert (call.id, call.name, call.arguments) == ("toolu_01", "add", {})
    assert call.malformed is not None and "JSON object" in call.malformed and "[2, 3]" in call.malformed
    assert response.text is None
    assert server.problems == []


async def test_a_tool_call_cut_off_at_max_tokens_is_marked_malformed(server: AnthropicServer,
                                                                     model: AnthropicModel) -> None:
    server.script(message_reply(tool_use_block("toolu_01", "add", {"a": 2}), stop_reason="max_tokens"))
    (call,) = (await model.request(ask())).tool_calls
    assert call.malformed is not None and "max_tokens (4096)" in call.malformed
    assert server.problems == []


# ---------------------------------------------------------------------------------------------- failures


@pytest.mark.parametrize(("status", "error_type", "retryable"), [
    (429, "rate_limit_error", True),
    (529, "overloaded_error", True),
    (500, "api_error", True),
    (503, "api_error", True),
    (408, "timeout_error", True),
    (409, "conflict_error", True),
    (400, "invalid_request_error", False),
    (401, "authentication_error", False),
    (403, "permission_error", False),
    (404, "not_found_error", False),
    (413, "request_too_large", False),
    (422, "invalid_request_error", False),
])
async def test_http_errors_say_whether_to_retry(server: AnthropicServer, model: AnthropicModel, status: int,
                                                error_type: str, retryable: bool) -> None:
    server.script(error_reply(status, error_type, "the provider says no"))
    error = await failure(model)
    assert (error.status, error.retryable, error.retry_after) == (status, retryable, None)
    message = str(error)
    for part in (f"anthropic:{MODEL}", server.url, f"HTTP {status}", error_type, "the provider says no",
                 "req_01WireServer"):
        assert part in message
    assert len(server.requests) == 1  # the SDK did not retry behind cadenza's back
    assert server.problems == []


@pytest.mark.parametrize(("headers", "expected"), [
    ({"retry-after": "7"}, 7.0),
    ({"retry-after": "0.5"}, 0.5),
    ({"retry-after-ms": "1500", "retry-after": "2"}, 1.5),
    ({"retry-after": "in 30 seconds"}, 30.0),  # an HTTP date 30 s from now, made when the test runs
    ({"retry-after": "soon"}, None),
    ({"retry-after": "-3"}, None),
])
async def test_429_retry_after_is_parsed(server: AnthropicServer, model: AnthropicModel, headers: dict[str, str],
                                         expected: float | None) -> None:
    if headers.get("retry-after") == "in 30 seconds":
        headers = {"retry-after": email.utils.formatdate(time.time() + 30, usegmt=True)}
    server.script(error_reply(429, "rate_limit_error", "slow down", headers))
    error = await failure(model)
    assert (error.status, error.retryable) == (429, True)
    assert error.retry_after == (None if expected is None else pytest.approx(expected, abs=1.5))
    assert len(server.requests) == 1
    assert server.problems == []


async def test_the_server_may_say_whether_to_retry(server: AnthropicServer, model: AnthropicModel) -> None:
    server.script(error_reply(500, "api_error", "broken for good", {"x-should-retry": "false"}),
                  error_reply(400, "invalid_request_error", "try me again", {"x-should-retry": "true"}))
    assert (await failure(model)).retryable is False
    assert (await failure(model)).retryable is True
    assert len(server.requests) == 2
    assert server.problems == []


async def test_a_timeout_is_retryable(server: AnthropicServer, connect: Connect) -> None:
    server.script(Reply(message_reply(text_block("too late")).body, delay=1.5))
    error = await failure(connect(timeout=0.2))
    assert (error.retryable, error.status) == (True, None)
    assert "timed out" in str(error) and "0.2s" in str(error) and server.url in str(error)
    assert len(server.requests) == 1
    assert server.problems == []


async def test_a_dropped_connection_is_retryable(server: AnthropicServer, model: AnthropicModel) -> None:
    server.script(Drop())
    error = await failure(model)
    assert (error.retryable, error.status) == (True, None)
    assert "connection failed" in str(error) and server.url in str(error)
    assert len(server.requests) == 1
    assert server.problems == []


async def test_a_body_that_is_not_json_is_retryable(server: AnthropicServer, model: AnthropicModel) -> None:
    server.script(Garbled())
    error = await failure(model)
    assert (error.retryable, error.status) == (True, None)
    assert "not valid JSON" in str(error)
    assert len(server.requests) == 1
    assert server.problems == []


@pytest.mark.parametrize("body", [{"unexpected": True}, "<html>a proxy page</html>", [1, 2]])
async def test_json_that_is_not_a_message_is_not_retryable(server: AnthropicServer, model: AnthropicModel,
                                                           body: Any) -> None:
    server.script(Reply(body))
    error = await failure(model)
    assert (error.retryable, error.status) == (False, None)
    assert "not a Messages API message" in str(error)
    assert server.problems == []


async def test_a_message_with_impossible_counts_is_not_retryable(server: AnthropicServer,
                                                                  model: AnthropicModel) -> None:
    server.script(message_reply(text_block("ok"), input_tokens=-5))
    error = await failure(model)
    assert error.retryable is False
    assert "could not be read" in str(error) and "input_tokens" in str(error)
    assert server.problems == []


async def test_an_empty_reply_cut_off_at_max_tokens_fails(server: AnthropicServer, model: AnthropicModel) -> None:
    server.script(message_reply(stop_reason="max_tokens"), message_reply(stop_reason="end_turn"))
    error = await failure(model, ask(max_tokens=64))
    assert error.retryable is False
    assert "max_tokens (64)" in str(error)
    assert (await model.request(ask())).text == ""  # an empty end_turn is an empty answer, not a failure
    assert server.problems == []


# ---------------------------------------------------------------------------------------------- configuration


def test_a_missing_api_key_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        AnthropicModel(MODEL)
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        resolve_model(f"anthropic:{MODEL}")


async def test_key_and_endpoint_come_from_the_environment(server: AnthropicServer,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "env-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url + "/")
    model = AnthropicModel(MODEL)
    try:
        assert model.endpoint == server.url
        assert (await model.request(ask())).text == DEFAULT_TEXT
    finally:
        await model.aclose()
    assert server.requests[0].headers["authorization"] == "Bearer env-key"
    assert server.problems == []


async def test_resolve_model_builds_it_from_a_model_string(server: AnthropicServer) -> None:
    resolved = resolve_model(f"anthropic:{MODEL}", {"api_key": "k", "base_url": server.url, "max_tokens": 99})
    model = unwrap(resolved)
    try:
        assert (resolved.name, model.endpoint, model.max_tokens) == (f"anthropic:{MODEL}", server.url, 99)
        assert (await resolved.request(ask())).text == DEFAULT_TEXT
    finally:
        await model.aclose()
    assert server.requests[0].body["max_tokens"] == 99
    assert server.requests[0].headers["authorization"] == "Bearer k"
    assert server.problems == []


async def test_cadenza_not_the_sdk_retries_a_resolved_model(server: AnthropicServer) -> None:
    resolved = resolve_model(f"anthropic:{MODEL}", {"api_key": "k", "base_url": server.url, "max_attempts": 3,
                                                     "retry_initial": 0.01, "retry_max": 0.05})
    server.script(error_reply(529, "overloaded_error", "busy", {"retry-after-ms": "10"}),
                  error_reply(500, "api_error", "hiccup"))
    try:
        assert (await resolved.request(ask())).text == DEFAULT_TEXT
    finally:
        await unwrap(resolved).aclose()
    assert [r.headers["x-stainless-retry-count"] for r in server.requests] == ["0", "0", "0"]
    assert server.problems == []


@pytest.mark.parametrize(("options", "match"), [
    ({"api_key": "k", "temperature": 0.2}, "unknown option 'temperature'.*valid options: api_key"),
    ({"api_key": "k", "timeout": "fast"}, "timeout must be a positive number"),
    ({"api_key": "k", "max_tokens": 0}, "max_tokens must be a positive integer"),
    ({"api_key": "k", "cache": "yes"}, "cache must be true or false"),
])
def test_bad_options_are_config_errors(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        resolve_model(f"anthropic:{MODEL}", options)


async def test_a_given_client_is_used_without_its_retries(server: AnthropicServer) -> None:
    client = AsyncAnthropic(api_key="given-key", base_url=server.url)  # the SDK's default: 2 retries
    model = AnthropicModel(MODEL, client=client)
    try:
        assert model.endpoint == server.url
        server.script(error_reply(529, "overloaded_error", "busy"))
        assert (await failure(model)).retryable is True
    finally:
        await client.close()
    assert len(server.requests) == 1
    assert server.requests[0].headers["authorization"] == "Bearer given-key"
    assert server.problems == []


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # the first loop's connection is abandoned, not closed
def test_one_model_serves_successive_event_loops(server: AnthropicServer) -> None:
    model = AnthropicModel(MODEL, api_key="test-key", base_url=server.url)

    async def call(close: bool) -> str | None:
        try:
            return (await model.request(ask())).text
        finally:
            if close:
                await model.aclose()

    assert asyncio.run(call(close=False)) == DEFAULT_TEXT
    assert asyncio.run(call(close=True)) == DEFAULT_TEXT  # as run_sync does: each call on a fresh loop
    gc.collect()
    assert len(server.requests) == 2
    assert server.problems == []


# ---------------------------------------------------------------------------------------------- the server's checks

_USE = {"type": "tool_use", "id": "toolu_1", "name": "add", "input": {}}
_RESULT = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "3"}
_HI = {"role": "user", "content": "hi"}
_CACHED = {"type": "text", "text": "x", "cache_control": EPHEMERAL}


@pytest.mark.parametrize(("fields", "problem"), [
    ({"messages": [_HI, _HI]}, "messages[1]: role must be 'assistant'"),
    ({"messages": [{"role": "assistant", "content": "hi"}]}, "messages[0]: role must be 'user'"),
    ({"messages": [_HI, {"role": "assistant", "content": [_USE]}, {"role": "user", "content": "and?"}]},
     "tool_use ids ['toolu_1'] of the previous message have no tool_result"),
    ({"messages": [{"role": "user", "content": [_RESULT]}]}, "answers no tool_use of the previous message"),
    ({"messages": [_HI, {"role": "assistant", "content": [_USE]},
                   {"role": "user", "content": [{"type": "text", "text": "first"}, _RESULT]}]},
     "tool_result blocks must come before any other content"),
    ({"messages": [{"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "n", "input": {}}]}]},
     "a user message cannot hold a block of type 'tool_use'"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]}, "needs non-empty text"),
    ({"messages": [{"role": "user", "content": [_CACHED] * 3}], "system": [_CACHED] * 2},
     "5 cache_control breakpoints"),
    ({"messages": [{"role": "user", "content": [{**_CACHED, "cache_control": {"type": "persistent"}}]}]},
     "cache_control must be {'type': 'ephemeral'}"),
    ({"tools": [{"name": "has space", "input_schema": {"type": "object"}}]}, "tool name must match"),
    ({"tools": [{"name": "add", "input_schema": {"type": "string"}}]}, "input_schema must be a JSON schema"),
    ({"output_config": {"format": {"type": "json_schema", "schema": {"type": "object", "properties": {}}}}},
     "output_config.format.schema: an object schema must set additionalProperties: false"),
    ({"output_config": {"format": {"type": "json", "schema": {}}}}, "output_config.format must be"),
    ({"tool_choice": {"type": "tool", "name": "missing"}}, "tool_choice names tool 'missing'"),
    ({"extra_body": {"temperature": 0.5}}, "unknown field 'temperature'"),
])
async def test_the_server_reports_requests_the_api_would_reject(server: AnthropicServer, fields: dict[str, Any],
                                                                problem: str) -> None:
    client = AsyncAnthropic(api_key="k", base_url=server.url, max_retries=0)
    try:
        await client.messages.create(**{"model": MODEL, "max_tokens": 10, "messages": [_HI], **fields})
    finally:
        await client.close()
    assert any(problem in found for found in server.problems), server.problems
