"""Failure handling and cost control end to end: the real SDKs, the local protocol servers, cadenza's own layers.

The circuit breaker opening, failing fast and half-opening; a fallback from one provider to
the other; a USD budget stopping a 100-way fan-out of real OpenAI calls without overshoot.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from cadenza import Agent, Budget, CircuitOpen, ModelError, Plan, Supervisor
from cadenza.models import Model, resolve_model
from cadenza.models.base import ModelRequest, UserMessage
from cadenza.models.pricing import PRICES
from cadenza.models.resilience import reset_breakers
from providers.anthropic_server import AnthropicServer, error_reply
from providers.openai_server import OpenAIServer, completion, error
from providers.wire import Reply

KEY = {"api_key": "test-key"}


@pytest.fixture(autouse=True)
def fresh_breakers() -> Iterator[None]:
    reset_breakers()
    yield
    reset_breakers()


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    wire = OpenAIServer()
    with wire.serve():
        yield wire
    assert wire.problems == []


@pytest.fixture
def anthropic_server() -> Iterator[AnthropicServer]:
    wire = AnthropicServer()
    with wire.serve():
        yield wire
    assert wire.problems == []


def ask(text: str = "Hi") -> ModelRequest:
    return ModelRequest(messages=[UserMessage(content=text)])


async def close(*models: Model) -> None:
    """Close the SDK clients' connections on this test's event loop."""
    for model in models:
        await model.aclose()  # type: ignore[attr-defined]


def unavailable(n: int) -> list[Reply]:
    return [error(503, "The server is overloaded", type="server_error") for _ in range(n)]


async def test_the_breaker_opens_fails_fast_and_half_opens_to_probe(openai_server: OpenAIServer) -> None:
    options = {**KEY, "base_url": openai_server.url + "/v1", "max_attempts": 1,
               "breaker_threshold": 3, "breaker_reset": 0.3}
    model = resolve_model("openai:gpt-5-mini", options)
    openai_server.script(*unavailable(4))

    for _ in range(3):
        with pytest.raises(ModelError, match="503") as failed:
            await model.request(ask())
        assert failed.value.retryable
    assert len(openai_server.requests) == 3

    # another agent's model for the same endpoint and model shares the breaker: it fails fast too
    other = resolve_model("openai:gpt-5-mini", options)
    for candidate in (model, other):
        with pytest.raises(CircuitOpen, match="circuit open after 3 failures"):
            await candidate.request(ask())
    assert len(openai_server.requests) == 3  # nothing reached the server

    await asyncio.sleep(0.35)
    with pytest.raises(ModelError, match="503"):  # the probe fails: open again for another 0.3 s
        await model.request(ask())
    assert len(openai_server.requests) == 4
    with pytest.raises(CircuitOpen):
        await other.request(ask())

    await asyncio.sleep(0.35)
    answer = await other.request(ask())  # the probe succeeds: closed
    assert answer.text == "Hello from the server."
    assert (await model.request(ask())).text == "Hello from the server."
    assert len(openai_server.requests) == 6
    await close(model, other)


async def test_retries_then_fallback_to_the_other_provider(
    anthropic_server: AnthropicServer, openai_server: OpenAIServer,
) -> None:
    anthropic_server.script(*(error_reply(529, "overloaded_error", "Overloaded") for _ in range(3)))
    primary = resolve_model("anthropic:claude-haiku-4-5", {**KEY, "base_url": anthropic_server.url,
                                                            "max_attempts": 3, "retry_initial": 0.01,
                                                            "retry_max": 0.02})
    backup = resolve_model("openai:gpt-5-mini", {**KEY, "base_url": openai_server.url + "/v1"})
    agent = Agent("writer", "Write.", model=[primary, backup])

    result = await agent.run("Write one line")

    assert (result.status, result.output) == ("success", "Hello from the server.")
    assert len(anthropic_server.requests) == 3  # every attempt seen by the server, none hidden in the SDK
    assert len(openai_server.requests) == 1
    price = PRICES.lookup("openai:gpt-5-mini")
    assert price is not None
    assert result.usage.cost_usd == pytest.approx((12 * price.input + 5 * price.output) / 1e6)
    await close(agent.model)


async def test_a_non_retryable_error_falls_back_at_once(
    anthropic_server: AnthropicServer, openai_server: OpenAIServer,
) -> None:
    anthropic_server.script(error_reply(401, "authentication_error", "invalid x-api-key"))
    agent = Agent("writer", "Write.", model=[
        resolve_model("anthropic:claude-haiku-4-5", {**KEY, "base_url": anthropic_server.url}),
        resolve_model("openai:gpt-5-mini", {**KEY, "base_url": openai_server.url + "/v1"}),
    ])

    result = await agent.run("Write one line")

    assert result.status == "success"
    assert len(anthropic_server.requests) == 1
    await close(agent.model)


class MeteredServer(OpenAIServer):
    """Bills each call as a real provider would at worst: input tokens a quarter of the request's bytes,
    output tokens every one the call allowed."""

    def default_reply(self, path: str, body: Any, headers: dict[str, str]) -> Reply:
        sent = len(json.dumps(body["messages"]).encode())
        allowed = int(body.get("max_completion_tokens") or 1000)
        return Reply(completion("A part of the answer.", prompt_tokens=sent // 4, completion_tokens=allowed),
                     delay=0.02)


async def test_a_usd_budget_stops_a_100_way_fan_out_of_real_calls_without_overshoot() -> None:
    server = MeteredServer()
    with server.serve():
        model = resolve_model("openai:gpt-5-mini", {**KEY, "base_url": server.url + "/v1"})
        workers = [Agent(f"w{i}", "Answer in one line.", model=model, max_tokens=500) for i in range(100)]
        plan = Plan.of(*({"id": f"s{i}", "agent": f"w{i}", "instruction": f"Part {i}"} for i in range(100)))
        team = Supervisor("lead", workers=workers, plan=plan, model=model)
        budget = 0.02  # each call costs about $0.001: room for some twenty of the hundred

        result = await team.run("Answer every part", budget=Budget(usd=budget))
        await close(model)

    assert result.status == "partial"
    assert result.error is not None and "the run budget of $0.02 is spent" in result.error.message
    assert 0 < result.usage.cost_usd <= budget
    done = [r for r in result.steps if r.status == "success"]
    assert 10 <= len(done) < 30
    assert len(server.requests) == len(done) == result.usage.model_calls  # a refused call never reached the wire
    assert server.problems == []
