"""Surviving provider failures: retries with backoff, a circuit breaker per endpoint, fallback chains.

A vendor model is wrapped in a `ResilientModel` when it is resolved (``registry``): each call
goes through the endpoint's breaker and is retried while the failure is transient. Retries are
tenacity's (exponential backoff with jitter); the wait honours a provider's ``Retry-After``
when it gave one. The SDK clients make no retries of their own, so each failed HTTP call is
seen here once: by the retry policy and by the breaker.

The breaker is shared by every agent in the process that calls the same endpoint and model
(`breaker_for`): when a provider is down, a fan-out of a hundred workers learns it from a few
calls, not from a hundred timeouts each. Only transient failures count against it; a 400 is
the caller's mistake, not the endpoint's health.

`FallbackModel` tries the next model of a chain when one fails for good (retries spent, a
non-retryable error, or its breaker open).

Both stream when asked to (``stream``) and their models can: an attempt that fails after streaming part of an
answer is voided with an `OutputReset` before the next one starts, so a reader of the stream knows to drop it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from .._errors import CircuitOpen, ConfigError, ModelError
from .base import (
    DeltaSink,
    Model,
    ModelFacts,
    ModelRequest,
    ModelResponse,
    OutputDelta,
    OutputReset,
    close_model,
    facts_of,
    request_streamed,
)

__all__ = (
    "CircuitBreaker",
    "FallbackModel",
    "ResilientModel",
    "ModelRetry",
    "breaker_for",
    "reset_breakers",
)

BreakerState = Literal["closed", "open", "half_open"]


@dataclass(frozen=True, slots=True)
class ModelRetry:
    """How a model call is retried after a transient failure.

    Args:
        max_attempts: calls in all, the first included (1: no retries).
        initial: seconds before the first retry; doubles each time, plus up to ``jitter`` seconds.
        maximum: the longest wait between two attempts, ``Retry-After`` included.
        jitter: random extra seconds, so that parallel callers do not retry in step.
    """

    max_attempts: int = 4
    initial: float = 0.5
    maximum: float = 30.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be at least 1, not {self.max_attempts}")
        if min(self.initial, self.maximum, self.jitter) < 0:
            raise ConfigError("retry waits must not be negative")

    def wait(self, state: RetryCallState) -> float:
        """The provider's ``Retry-After`` if it gave one (capped at ``maximum``), else backoff with jitter."""
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, ModelError) and error.retry_after is not None:
            return min(max(error.retry_after, 0.0), self.maximum)
        backoff = wait_exponential_jitter(multiplier=self.initial, max=self.maximum, jitter=self.jitter)
        return float(backoff(state))


class CircuitBreaker:
    """Closed: calls pass. Open: calls fail fast. Half-open: one probe decides which it goes back to.

    Args:
        name: what it guards, for messages.
        failure_threshold: transient failures in a row that open it.
        reset_after: seconds open before a probe is let through.
        clock: seconds, monotonic; tests pass their own.
    """

    def __init__(
        self, name: str, *, failure_threshold: int = 5, reset_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ConfigError(f"failure_threshold must be at least 1, not {failure_threshold}")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_after = reset_after
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self._probing or self._clock() - self._opened_at >= self.reset_after:
            return "half_open"
        return "open"

    def before_call(self) -> None:
        """Let the call through, or raise `CircuitOpen`. In half-open state only one probe passes at a time."""
        state = self.state
        if state == "closed":
            return
        if state == "half_open" and not self._probing:
            self._probing = True
            return
        assert self._opened_at is not None
        wait = max(0.0, self.reset_after - (self._clock() - self._opened_at))
        raise CircuitOpen(
            f"{self.name}: circuit open after {self._failures} failures in a row; "
            f"calls fail fast for {wait:.1f}s more" + (" (a probe is in flight)" if self._probing else ""),
            retry_after=wait,
        )

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def record_failure(self, error: BaseException) -> None:
        """Count a transient failure; a failed probe reopens the breaker for another ``reset_after``."""
        if not (isinstance(error, ModelError) and error.retryable):
            if self._probing:  # the endpoint answered: it is up, the request was bad
                self.record_success()
            return
        self._failures += 1
        if self._probing or self._failures >= self.failure_threshold:
            if self._opened_at is None or self._probing:
                from ..observability._metrics import breaker_opened

                breaker_opened(self.name)
            self._opened_at = self._clock()
        self._probing = False

    def release_probe(self) -> None:
        """The probe ended without an answer either way (cancelled): let another one through."""
        self._probing = False


_breakers: dict[tuple[str, str], CircuitBreaker] = {}


def breaker_for(endpoint: str, model: str, *, failure_threshold: int = 5, reset_after: float = 30.0) -> CircuitBreaker:
    """The process-wide breaker of ``(endpoint, model)``; made on first use with these settings."""
    key = (endpoint, model)
    breaker = _breakers.get(key)
    if breaker is None:
        breaker = _breakers[key] = CircuitBreaker(
            f"{model} at {endpoint}", failure_threshold=failure_threshold, reset_after=reset_after
        )
    return breaker


def reset_breakers() -> None:
    """Forget every breaker (tests; a process that knows the providers recovered)."""
    _breakers.clear()


class ResilientModel:
    """A model whose calls pass its breaker and are retried while they fail transiently."""

    def __init__(
        self, model: Model, *, retry: ModelRetry | None = None, breaker: CircuitBreaker | None = None,
        timeout: float | None = None,
    ) -> None:
        """Args:
            timeout: seconds one call may take before it counts as a transient failure; None leaves it to
                the model (the vendor adapters have their own per-call timeout).
        """
        self.inner = model
        self.retry = retry or ModelRetry()
        self.breaker = breaker
        self.timeout = timeout

    @property
    def name(self) -> str:
        return self.inner.name

    def __repr__(self) -> str:
        return f"ResilientModel({self.inner!r})"

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Answer ``request``, retrying transient failures; raises the last `ModelError` when retries run out."""
        return await self._retried(request, None)

    async def stream(self, request: ModelRequest, deltas: DeltaSink) -> ModelResponse:
        """`request`, streamed to ``deltas`` if the wrapped model streams."""
        return await self._retried(request, deltas)

    async def _retried(self, request: ModelRequest, deltas: DeltaSink | None) -> ModelResponse:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retry.max_attempts),
            wait=self.retry.wait,
            retry=retry_if_exception(lambda exc: isinstance(exc, ModelError) and exc.retryable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._once(request, deltas)
        raise AssertionError("unreachable: tenacity reraises the last failure")  # pragma: no cover

    def facts(self) -> tuple[ModelFacts, ...]:
        """The wrapped model's: retries reach no other model."""
        return facts_of(self.inner)

    async def aclose(self) -> None:
        """Close the wrapped model's connections on the running event loop, if it holds any."""
        await close_model(self.inner)

    async def _call(self, request: ModelRequest, deltas: DeltaSink | None) -> ModelResponse:
        if self.timeout is None:
            return await attempt(self.inner, request, deltas)
        try:
            async with asyncio.timeout(self.timeout):
                return await attempt(self.inner, request, deltas)
        except TimeoutError:
            raise ModelError(f"{self.name}: no answer within {self.timeout:g}s", retryable=True) from None

    async def _once(self, request: ModelRequest, deltas: DeltaSink | None) -> ModelResponse:
        breaker = self.breaker
        if breaker is None:
            return await self._call(request, deltas)
        breaker.before_call()
        try:
            response = await self._call(request, deltas)
        except asyncio.CancelledError:
            breaker.release_probe()
            raise
        except BaseException as exc:
            breaker.record_failure(exc)
            raise
        breaker.record_success()
        return response


class FallbackModel:
    """Tries each model in turn; the next one when the previous failed for good or its breaker is open."""

    def __init__(self, models: Sequence[Model]) -> None:
        if not models:
            raise ConfigError("a fallback chain needs at least one model")
        self.models = tuple(models)

    @property
    def name(self) -> str:
        return self.models[0].name

    def __repr__(self) -> str:
        return f"FallbackModel({[m.name for m in self.models]!r})"

    def facts(self) -> tuple[ModelFacts, ...]:
        """Each model of the chain's, in the order they are tried."""
        return tuple(fact for model in self.models for fact in facts_of(model))

    async def aclose(self) -> None:
        """Close every model of the chain that holds connections."""
        for model in self.models:
            await close_model(model)

    async def request(self, request: ModelRequest) -> ModelResponse:
        """The first model's answer that succeeds; a `ModelError` naming every failure if none does."""
        return await self._first(request, None)

    async def stream(self, request: ModelRequest, deltas: DeltaSink) -> ModelResponse:
        """`request`, streamed to ``deltas`` by each model of the chain that streams."""
        return await self._first(request, deltas)

    async def _first(self, request: ModelRequest, deltas: DeltaSink | None) -> ModelResponse:
        failures: list[str] = []
        for model in self.models:
            try:
                return await attempt(model, request, deltas)
            except ModelError as exc:
                failures.append(f"{model.name}: {exc}")
        raise ModelError("every model of the fallback chain failed: " + "; ".join(failures), retryable=False)


async def attempt(model: Model, request: ModelRequest, deltas: DeltaSink | None) -> ModelResponse:
    """One try of ``model`` (streamed to ``deltas`` when given); if it fails after streaming part of its answer,
    ``deltas`` is told that part is void (`OutputReset`) before the failure is raised."""
    if deltas is None:
        return await model.request(request)
    told = _Told(deltas)
    try:
        return await request_streamed(model, request, told)
    except Exception as exc:
        if told.pending:
            deltas(OutputReset(f"{model.name} failed after streaming part of its answer: {exc}"))
        raise


class _Told:
    """A delta sink that knows whether it passed on pieces that no reset has voided yet."""

    __slots__ = ("deltas", "pending")

    def __init__(self, deltas: DeltaSink) -> None:
        self.deltas = deltas
        self.pending = False

    def __call__(self, delta: OutputDelta) -> None:
        self.pending = not isinstance(delta, OutputReset)
        self.deltas(delta)
