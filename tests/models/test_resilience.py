"""Retries, the circuit breaker and fallback chains, on scripted models (providers' own tests use the SDKs)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tenacity import RetryCallState

from cadenza import Agent, CircuitOpen, ConfigError, FunctionModel, ModelError, ModelRequest, ModelResponse
from cadenza.models.resilience import (
    CircuitBreaker,
    FallbackModel,
    ModelRetry,
    ResilientModel,
    breaker_for,
    reset_breakers,
)

FAST = ModelRetry(max_attempts=4, initial=0.0, maximum=0.05, jitter=0.0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def failing(*errors: BaseException, then: str = "ok") -> FunctionModel:
    """Raises each of ``errors`` in turn, then answers ``then``."""
    queue: Iterator[BaseException] = iter(errors)

    def reply(request: ModelRequest) -> str:
        error = next(queue, None)
        if error is not None:
            raise error
        return then

    return FunctionModel(reply, name="flaky")


def transient(message: str = "503 overloaded") -> ModelError:
    return ModelError(message, retryable=True, status=503)


@pytest.fixture(autouse=True)
def fresh_breakers() -> Iterator[None]:
    reset_breakers()
    yield
    reset_breakers()


async def test_transient_failures_are_retried_until_one_succeeds() -> None:
    inner = failing(transient(), transient())
    model = ResilientModel(inner, retry=FAST)

    response = await model.request(ModelRequest())

    assert response.text == "ok"
    assert len(inner.calls) == 3


async def test_a_non_retryable_failure_is_not_retried() -> None:
    inner = failing(ModelError("400 invalid request", retryable=False, status=400))
    model = ResilientModel(inner, retry=FAST)

    with pytest.raises(ModelError, match="400"):
        await model.request(ModelRequest())
    assert len(inner.calls) == 1


async def test_retries_stop_after_max_attempts_with_the_last_error() -> None:
    inner = failing(*(transient(f"503 number {i}") for i in range(10)))
    model = ResilientModel(inner, retry=ModelRetry(max_attempts=3, initial=0.0, jitter=0.0))

    with pytest.raises(ModelError, match="number 2"):
        await model.request(ModelRequest())
    assert len(inner.calls) == 3


def test_the_wait_honours_retry_after_capped_at_the_maximum() -> None:
    policy = ModelRetry(initial=1.0, maximum=10.0, jitter=0.0)

    def state_after(error: BaseException, attempt: int = 1) -> RetryCallState:
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = attempt
        state.set_exception((type(error), error, None))
        return state

    assert policy.wait(state_after(ModelError("429", retryable=True, retry_after=7.0))) == 7.0
    assert policy.wait(state_after(ModelError("429", retryable=True, retry_after=120.0))) == 10.0
    assert policy.wait(state_after(transient(), attempt=1)) == 1.0  # no Retry-After: exponential backoff
    assert policy.wait(state_after(transient(), attempt=3)) == 4.0


async def test_a_per_call_timeout_is_a_transient_failure() -> None:
    import asyncio

    async def slow(request: ModelRequest) -> str:
        await asyncio.sleep(5)
        return "late"

    model = ResilientModel(FunctionModel(slow), retry=ModelRetry(max_attempts=2, initial=0.0, jitter=0.0), timeout=0.05)

    with pytest.raises(ModelError, match=r"no answer within 0\.05s") as caught:
        await model.request(ModelRequest())
    assert caught.value.retryable


def test_the_breaker_opens_after_repeated_failures_then_half_opens_to_probe() -> None:
    clock = Clock()
    breaker = CircuitBreaker("m at e", failure_threshold=3, reset_after=10.0, clock=clock)
    for _ in range(2):
        breaker.before_call()
        breaker.record_failure(transient())
    assert breaker.state == "closed"
    breaker.before_call()
    breaker.record_failure(transient())
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen, match=r"fail fast for 10\.0s"):
        breaker.before_call()

    clock.now += 10.0
    assert breaker.state == "half_open"
    breaker.before_call()  # the probe
    with pytest.raises(CircuitOpen, match="probe is in flight"):
        breaker.before_call()  # one probe at a time
    breaker.record_failure(transient())  # the probe failed: open for another reset_after
    assert breaker.state == "open"
    clock.now += 9.0
    assert breaker.state == "open"
    clock.now += 1.0
    breaker.before_call()
    breaker.record_success()
    assert breaker.state == "closed"
    breaker.before_call()


def test_only_transient_failures_count_against_the_breaker() -> None:
    breaker = CircuitBreaker("m at e", failure_threshold=2, clock=Clock())
    for _ in range(5):
        breaker.record_failure(ModelError("400 bad request", retryable=False, status=400))
    assert breaker.state == "closed"


async def test_an_open_breaker_fails_fast_without_calling_the_model() -> None:
    inner = failing(*(transient() for _ in range(10)))
    breaker = CircuitBreaker("flaky at here", failure_threshold=2, reset_after=60.0)
    model = ResilientModel(inner, retry=ModelRetry(max_attempts=5, initial=0.0, jitter=0.0), breaker=breaker)

    with pytest.raises(CircuitOpen):
        await model.request(ModelRequest())
    assert len(inner.calls) == 2  # two failures opened it; the third attempt was refused, not made
    with pytest.raises(CircuitOpen):
        await model.request(ModelRequest())
    assert len(inner.calls) == 2


def test_one_breaker_per_endpoint_and_model_shared_process_wide() -> None:
    a = breaker_for("http://x/v1", "openai:gpt-5-mini")
    assert breaker_for("http://x/v1", "openai:gpt-5-mini") is a
    assert breaker_for("http://y/v1", "openai:gpt-5-mini") is not a
    assert breaker_for("http://x/v1", "openai:gpt-5") is not a


async def test_fallback_tries_the_next_model_when_one_fails_for_good() -> None:
    first = failing(*(transient() for _ in range(10)))
    second = FunctionModel(lambda request: "from the second", name="second")
    chain = FallbackModel([ResilientModel(first, retry=ModelRetry(max_attempts=2, initial=0.0, jitter=0.0)), second])

    response = await chain.request(ModelRequest())

    assert response.text == "from the second"
    assert len(first.calls) == 2  # its retries were spent first
    assert len(second.calls) == 1


async def test_fallback_skips_a_model_whose_breaker_is_open() -> None:
    breaker = CircuitBreaker("down at e", failure_threshold=1, reset_after=60.0)
    breaker.record_failure(transient())
    down = failing()
    chain = FallbackModel([ResilientModel(down, retry=FAST, breaker=breaker), FunctionModel(lambda r: "backup")])

    assert (await chain.request(ModelRequest())).text == "backup"
    assert not down.calls


async def test_when_every_model_fails_the_error_names_each() -> None:
    chain = FallbackModel([failing(ModelError("boom one")), failing(ModelError("boom two"))])

    with pytest.raises(ModelError, match=r"boom one.*boom two"):
        await chain.request(ModelRequest())


async def test_an_agent_takes_a_list_of_models_as_a_fallback_chain() -> None:
    primary = failing(ModelError("404 no such model", status=404))
    backup = FunctionModel(lambda request: ModelResponse(text="answered", model="backup"), name="backup")
    agent = Agent("a", "help", model=[primary, backup])

    result = await agent.run("go")

    assert (result.status, result.output) == ("success", "answered")
    assert len(primary.calls) == len(backup.calls) == 1


def test_bad_retry_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="max_attempts"):
        ModelRetry(max_attempts=0)
    with pytest.raises(ConfigError, match="failure_threshold"):
        CircuitBreaker("x", failure_threshold=0)
    with pytest.raises(ConfigError, match="at least one model"):
        FallbackModel([])
