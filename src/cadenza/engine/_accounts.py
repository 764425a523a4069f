"""Budgets in tokens and USD, per run, team and agent, that a tree of parallel agents cannot overshoot.

Checking what was spent before a call is not enough: a hundred workers that start together all
see the same room left. So before each model call the worst case of that call is *reserved*
on every budget that covers it (the run's, each enclosing team's, the agent's): input tokens
bounded by the request's UTF-8 bytes (a byte-level tokenizer never makes more tokens than
bytes) plus a margin per message, output tokens by the call's ``max_tokens``, which the
provider enforces. When a call ends its reservation is replaced by what it really cost.

A call that would fit once the calls in flight have settled waits for them; a call whose worst
case does not fit even then is refused with `BudgetExceeded` and marks that budget spent: no
later call starts under it, calls already running finish, and the executor stops dispatching
(the run ends ``partial``).

The run keeps the accounts; a worker reaches them through its port (``_port.RunPort.reserve`` and
``settle``), which covers each call by the run's budget, each enclosing team's and the agent's own.

Across processes: a provider bills a call once it has the request, even if the process that
sent it is killed before the reply. In a recorded run the run's budget keeps a
`ReservationLedger`: each call's worst case is written to the store before the call starts and
settled with what it cost after, and a resumed run counts what earlier processes left unsettled
at its worst case. So what a run is billed over all its processes stays within its budget.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._budget import Budget
from .._errors import BudgetExceeded
from .._events import ModelCalled, ModelDelta
from .._messages import utcnow
from .._port import Claim, Lease, ModelPrice
from .._usage import Usage
from ..models.base import Model, ModelFacts, ModelRequest, ModelResponse, OutputDelta, facts_of, request_streamed
from ..models.pricing import Prices

if TYPE_CHECKING:
    from datetime import datetime

    from .._port import RunPort
    from .._step_context import StepContext

__all__ = (
    "DEFAULT_MAX_OUTPUT_TOKENS",
    "BudgetAccount",
    "Held",
    "call_model",
    "release",
    "claim_for",
    "reserve_on",
    "run_account",
    "worst_usd",
)

DEFAULT_MAX_OUTPUT_TOKENS = 4096
"""The output bound given to a call under a budget that did not set one (a model's own ``max_tokens`` wins)."""

_TOKENS_PER_MESSAGE = 8
"""Role and separator tokens a provider adds around each message: a margin on top of the bytes."""


@dataclass(eq=False)
class BudgetAccount:
    """One budget's running totals: what finished calls spent and what calls in flight may still spend."""

    label: str
    """Whose budget, for messages: ``run``, ``team 'lead/research'``, ``agent 'writer'``."""
    budget: Budget
    spent_tokens: int = 0
    spent_usd: float = 0.0
    reserved_tokens: int = 0
    reserved_usd: float = 0.0
    exhausted: str | None = None
    """Why it refused a call; once set, it refuses every later one."""
    _settled: asyncio.Condition | None = None

    def shortfall(self, tokens: int, usd: float) -> str | None:
        """Why a call needing up to ``tokens`` and ``usd`` cannot fit even with nothing in flight, or None."""
        if self.exhausted is not None:
            return self.exhausted
        budget = self.budget
        if budget.tokens is not None and self.spent_tokens + tokens > budget.tokens:
            return (f"the {self.label} budget of {budget.tokens:,} tokens is spent: {self.spent_tokens:,} used, "
                    f"and the next call may need {tokens:,}")
        if budget.usd is not None and self.spent_usd + usd > budget.usd:
            return (f"the {self.label} budget of ${budget.usd:g} is spent: ${self.spent_usd:.4f} used, "
                    f"and the next call may cost up to ${usd:.4f}")
        return None

    def fits_now(self, tokens: int, usd: float) -> bool:
        """Whether the call fits beside the calls in flight."""
        budget = self.budget
        if budget.tokens is not None and self.spent_tokens + self.reserved_tokens + tokens > budget.tokens:
            return False
        return budget.usd is None or self.spent_usd + self.reserved_usd + usd <= budget.usd

    @property
    def settled(self) -> asyncio.Condition:
        """Notified whenever a call under this budget ends."""
        if self._settled is None:
            self._settled = asyncio.Condition()
        return self._settled


@dataclass(frozen=True, slots=True)
class Held:
    """A call's reservation on its accounts, until `release`."""

    accounts: tuple[BudgetAccount, ...]
    agent: str
    tokens: int
    usd: float


def run_account(budget: Budget | None) -> BudgetAccount | None:
    """The account of a whole run's ``budget`` (None for a run without one)."""
    return None if budget is None else BudgetAccount("run", budget)


def call_model(model: Model, request: ModelRequest, ctx: StepContext, port: RunPort,
               budget: Budget | None = None) -> Coroutine[Any, Any, ModelResponse]:
    """``model.request(request)`` under the budgets covering the step (``ctx.budgets``) and the agent's own
    ``budget``: its worst case is reserved through ``port`` first and settled with what it cost after.

    A call that nothing budgets or observes is the model's own coroutine, with no frame of ours waiting on it. When
    a sink wants each step's progress (``port.streaming``), the answer is streamed (if the model streams) and each
    piece told through ``port`` as a `ModelDelta`.

    Raises:
        BudgetExceeded: a covering budget has no room for this call's worst case; the call was not made.
        ConfigError: a USD budget covers a model that has no price.
    """
    budgeted = bool(ctx.budgets) or budget is not None
    if not budgeted and not port.observed and not port.streaming:
        return model.request(request)
    return _accounted(model, request, ctx, port, budget, budgeted)


async def _accounted(model: Model, request: ModelRequest, ctx: StepContext, port: RunPort, budget: Budget | None,
                     budgeted: bool) -> ModelResponse:
    """`call_model` for a call that is budgeted (reserved, then settled), observed (told to the run) or streamed."""
    lease: Lease | None = None
    if budgeted:
        request, claim = claim_for(model, request)
        lease = await port.reserve(ctx, claim, budget)
    at, started = utcnow(), time.perf_counter()
    try:
        if port.streaming:
            response = await request_streamed(model, request, _Deltas(ctx, port, request.agent or "?", model.name))
        else:
            response = await model.request(request)
    except asyncio.CancelledError:
        if lease is not None:
            await port.settle(lease, None)
        raise
    except BaseException as exc:
        if lease is not None:
            await port.settle(lease, Usage())
        _measured(model, request, ctx, port, at, time.perf_counter() - started, None, type(exc).__name__)
        raise
    if lease is not None:
        await port.settle(lease, response.usage)
    _measured(model, request, ctx, port, at, time.perf_counter() - started, response.usage, None)
    return response


def _measured(model: Model, request: ModelRequest, ctx: StepContext, port: RunPort, at: datetime, seconds: float,
              usage: Usage | None, error: str | None) -> None:
    """One model call that ended (answered, or failed with ``error``), told to the run (its metrics, its audit log)."""
    port.report(ModelCalled(ctx.run_id, ctx.scope, request.agent or "?", model.name, at, seconds, usage, error))


class _Deltas:
    """Tells the run each piece of one model call's answer, as the `ModelDelta` of the step that made the call."""

    __slots__ = ("agent", "ctx", "model", "port")

    def __init__(self, ctx: StepContext, port: RunPort, agent: str, model: str) -> None:
        self.ctx, self.port, self.agent, self.model = ctx, port, agent, model

    def __call__(self, delta: OutputDelta) -> None:
        self.port.progress(ModelDelta(self.ctx.run_id, self.ctx.scope, self.agent, self.model, delta))


def claim_for(model: Model, request: ModelRequest) -> tuple[ModelRequest, Claim]:
    """The request with its output bound set, and the most it may spend: what the worker asks the run to hold."""
    reaches = facts_of(model)
    if request.max_tokens is None:
        request = request.model_copy(update={"max_tokens": _default_max_tokens(reaches)})
    assert request.max_tokens is not None
    models = tuple(ModelPrice(m.name, m.price) for m in reaches)
    return request, Claim(request.agent or model.name, input_token_bound(request), request.max_tokens, models)


def worst_usd(claim: Claim, prices: Prices) -> float:
    """The most ``claim``'s call may cost in USD: at the dearest model it may reach.

    Raises:
        ConfigError: a model it may reach has no price (in its own table or ``prices``).
    """
    return max((m.price or prices.require(m.model, why="a USD budget")).worst_case(claim.input_tokens,
                                                                                      claim.output_tokens)
               for m in claim.models)


async def reserve_on(accounts: tuple[BudgetAccount, ...], agent: str, tokens: int, usd: float) -> Held:
    """Hold ``tokens`` and ``usd`` on every account before a call starts, waiting for calls in flight if need be.

    Raises:
        BudgetExceeded: an account has no room even with nothing in flight.
    """
    await _reserve(accounts, tokens, usd)
    return Held(accounts, agent, tokens, usd)


async def release(held: Held, usage: Usage | None) -> None:
    """A call ended: replace its reservation with ``usage`` (None: it was cancelled and may have been billed;
    the accounts of this process count nothing for it, and a recorded reservation stays open)."""
    for account in held.accounts:
        account.reserved_tokens -= held.tokens
        account.reserved_usd -= held.usd
        if usage is not None:
            account.spent_tokens += usage.total_tokens
            account.spent_usd += usage.cost_usd
        if account._settled is not None:
            async with account.settled:
                account.settled.notify_all()


async def _reserve(accounts: Sequence[BudgetAccount], tokens: int, usd: float) -> None:
    """Hold ``tokens`` and ``usd`` on every account, waiting for calls in flight to settle if need be."""
    while True:
        for account in accounts:
            reason = account.shortfall(tokens, usd)
            if reason is not None:
                account.exhausted = reason
                raise BudgetExceeded(reason)
        crowded = next((a for a in accounts if not a.fits_now(tokens, usd)), None)
        if crowded is None:
            break
        async with crowded.settled:
            await crowded.settled.wait()
    for account in accounts:
        account.reserved_tokens += tokens
        account.reserved_usd += usd


def input_token_bound(request: ModelRequest) -> int:
    """At most this many input tokens: the UTF-8 bytes of everything sent, plus a margin per message."""
    size = len(request.system.encode())
    for message in request.messages:
        size += len(message.model_dump_json().encode())
    if request.tools:
        size += len(json.dumps([t.model_dump() for t in request.tools]).encode())
    if request.output_schema is not None:
        size += len(json.dumps(request.output_schema.json_schema).encode())
    return size + _TOKENS_PER_MESSAGE * (len(request.messages) + 2)


def _default_max_tokens(reaches: tuple[ModelFacts, ...]) -> int:
    """The output bound of a request that sets none: the first one a model it may reach declares."""
    return next((m.max_tokens for m in reaches if m.max_tokens), DEFAULT_MAX_OUTPUT_TOKENS)
