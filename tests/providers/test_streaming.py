"""Streaming through the real SDKs (Anthropic's ``messages.stream``, OpenAI's ``stream: true``) over a real socket to
the local wire-protocol servers, which stream server-sent events as the providers do.

Each test runs on each provider (OpenAI-compatible servers through the OpenAI adapter too): `Provider` says how to
script a tool call and a text answer on each."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import pytest

from cadenza import Agent, Supervisor, resolve_model, tool
from cadenza.events import (
    FinalResult,
    ModelCalled,
    ModelDelta,
    OutputReset,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolCalled,
    ToolStarted,
)
from cadenza.models import Model
from providers import anthropic_server, openai_server
from providers.wire import Cut, Reply, WireServer

DEADLINE = 20.0
ANSWER = "The sum of the two is 42."
PLAN = json.dumps({"steps": [{"id": "s1", "agent": "calc", "instruction": "add 2 and 40", "depends_on": []}]})


@dataclass(frozen=True)
class Provider:
    name: str
    server: Callable[[], WireServer]
    model: Callable[[str], str]
    """The model string reaching a server at this URL."""
    options: Callable[[str], dict[str, Any]]
    text: Callable[[str], Reply]
    adds: Callable[[int, int], Reply]
    """A reply calling the tool ``add`` with these numbers."""


ANTHROPIC = Provider(
    "anthropic", anthropic_server.AnthropicServer, lambda url: "anthropic:claude-haiku-4-5",
    lambda url: {"api_key": "test-key", "base_url": url},
    lambda text: anthropic_server.message_reply(anthropic_server.text_block(text)),
    lambda a, b: anthropic_server.message_reply(anthropic_server.tool_use_block("toolu_01", "add", {"a": a, "b": b})),
)
OPENAI = Provider(
    "openai", openai_server.OpenAIServer, lambda url: "openai:gpt-5-mini",
    lambda url: {"api_key": "test-key", "base_url": url + "/v1"},
    lambda text: Reply(openai_server.completion(text)),
    lambda a, b: Reply(openai_server.completion(None, tool_calls=[openai_server.tool_call("call_01", "add",
                                                                                          {"a": a, "b": b})])),
)

COMPATIBLE = Provider(
    "openai-compatible", openai_server.OpenAIServer, lambda url: f"openai-compatible:llama3.1@{url}/v1",
    lambda url: {}, OPENAI.text, OPENAI.adds,
)


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@pytest.fixture(params=[ANTHROPIC, OPENAI, COMPATIBLE], ids=lambda p: p.name)
def provider(request: pytest.FixtureRequest) -> Provider:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def server(provider: Provider) -> Iterator[WireServer]:
    wire = provider.server()
    with wire.serve():
        yield wire
    assert wire.problems == []


@pytest.fixture
async def model(provider: Provider, server: WireServer) -> AsyncIterator[Model]:
    """The provider's model as an application gets it (`resolve_model`: with retries, soon after a failure)."""
    made = resolve_model(provider.model(server.url), {**provider.options(server.url), "retry_initial": 0})
    yield made
    await made.aclose()  # type: ignore[attr-defined]


async def read(stream: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    async with asyncio.timeout(DEADLINE):
        return [event async for event in stream]


def pieces(events: list[StreamEvent]) -> list[object]:
    return [e.delta for e in events if isinstance(e, ModelDelta)]


def calculator(model: Model) -> Agent[str]:
    return Agent("calc", "add numbers with the tool", model=model, tools=[add])


async def test_an_agent_streams_its_tool_call_and_its_answer_in_order_and_ends_as_its_run_does(
        provider: Provider, server: WireServer, model: Model) -> None:
    server.script(provider.adds(2, 40), provider.text(ANSWER))
    events = await read(calculator(model).stream("what is 2 + 40?"))

    told = pieces(events)
    calls = [p for p in told if isinstance(p, ToolCallDelta)]
    assert (calls[0].index, calls[0].name) == (0, "add") and calls[0].id
    assert len(calls) > 2 and json.loads("".join(c.arguments for c in calls)) == {"a": 2, "b": 40}
    texts = [p.text for p in told if isinstance(p, TextDelta)]
    assert "".join(texts) == ANSWER and len(texts) == len(ANSWER.split())  # as the server sent it, word by word
    order = [type(e) for e in events if not isinstance(e, ModelDelta)]
    assert order == [ModelCalled, ToolStarted, ToolCalled, ModelCalled, FinalResult]
    last_call_piece = max(i for i, e in enumerate(events) if isinstance(e, ModelDelta)
                          and isinstance(e.delta, ToolCallDelta))
    started = next(i for i, e in enumerate(events) if isinstance(e, ToolStarted))
    first_text = next(i for i, e in enumerate(events) if isinstance(e, ModelDelta) and isinstance(e.delta, TextDelta))
    assert last_call_piece < started < first_text
    assert all(r.body["stream"] is True for r in server.requests)  # type: ignore[index]

    server.script(provider.adds(2, 40), provider.text(ANSWER))
    ran = await calculator(model).run("what is 2 + 40?")
    final = events[-1]
    assert isinstance(final, FinalResult)
    assert (final.result.status, final.result.output, final.result.usage) == (ran.status, ran.output, ran.usage)
    assert final.result.usage.input_tokens > 0 and final.result.usage.output_tokens > 0  # the stream's own usage
    assert "stream" not in server.requests[-1].body  # type: ignore[operator]  # nobody streams: a whole reply


async def test_a_team_on_the_provider_streams_its_planner_and_its_worker_and_ends_as_its_run_does(
        provider: Provider, server: WireServer, model: Model) -> None:
    def team() -> Supervisor[str]:
        return Supervisor("lead", workers=[calculator(model)], model=model, synthesize="never")

    server.script(provider.text(PLAN), provider.adds(2, 40), provider.text(ANSWER))
    events = await read(team().stream("add 2 and 40"))
    server.script(provider.text(PLAN), provider.adds(2, 40), provider.text(ANSWER))
    ran = await team().run("add 2 and 40")

    def text_at(scope: str) -> str:
        return "".join(e.delta.text for e in events if isinstance(e, ModelDelta) and e.scope == scope
                       and isinstance(e.delta, TextDelta))

    assert text_at("lead") == PLAN and text_at("lead/s1") == ANSWER
    final = events[-1]
    assert isinstance(final, FinalResult)
    assert (final.result.status, final.result.output, final.result.usage) == ("success", ran.output, ran.usage)


async def test_a_stream_broken_on_its_way_is_voided_and_the_retry_streams_the_whole_answer(
        provider: Provider, server: WireServer, model: Model) -> None:
    server.script(Cut(provider.text(ANSWER), after=5), provider.text(ANSWER))
    events = await read(calculator(model).stream("what is 2 + 40?"))

    told = pieces(events)
    reset = next(i for i, p in enumerate(told) if isinstance(p, OutputReset))
    before = "".join(p.text for p in told[:reset] if isinstance(p, TextDelta))
    after = "".join(p.text for p in told[reset + 1:] if isinstance(p, TextDelta))
    assert before and ANSWER.startswith(before) and before != ANSWER
    assert after == ANSWER and len(server.requests) == 2
    assert "peer closed connection" in told[reset].reason  # type: ignore[attr-defined]  # what broke, as the SDK says
    final = events[-1]
    assert isinstance(final, FinalResult) and final.result.output == ANSWER


async def test_leaving_the_loop_mid_answer_cancels_the_call_and_drops_its_connection(
        provider: Provider, server: WireServer, model: Model) -> None:
    slow = provider.text("one two three four five six seven eight nine ten eleven twelve")
    server.script(Reply(slow.body, delay=0.2))
    async with asyncio.timeout(DEADLINE):
        async with aclosing(calculator(model).stream("count")) as events:
            async for event in events:
                if isinstance(event, ModelDelta) and isinstance(event.delta, TextDelta):
                    break
        assert await asyncio.to_thread(server.abandoned.wait, DEADLINE)
        server.script(provider.text(ANSWER))
        assert (await calculator(model).run("again")).output == ANSWER  # the model is whole after the cancel
