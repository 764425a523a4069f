"""The state one run holds in this process, handed explicitly to its teams, and the port its workers use.

Everything a run keeps while it goes (its journal, audit log, keyring, budgets, the tool servers it
opened) lives in one `RunState`, made when the run starts and passed down by hand: to each team
that runs under it, and, behind a `LocalPort`, to every worker. No context variable carries it, so
what a step may reach is exactly what it was given.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._errors import ToolError
from .._events import BudgetReserved, BudgetSettled, MessageRejected, ToolCallRecorded
from .._ids import ScopePath, child_path
from .._messages import utcnow
from .._port import STEP, Lease
from .._usage import Usage
from .._workspace import Workspace
from ..models.pricing import PRICES, Prices
from ..observability._audit_hooks import AuditSink
from ..observability._metrics import MetricsSink
from ..observability._metrics import enabled as metrics_enabled
from ..tools._tool_sources import ToolSources
from ._accounts import BudgetAccount, release, reserve_on, run_account, worst_usd
from ._approvals import decide
from ._stream import EventStream

if TYPE_CHECKING:
    from .._budget import Budget
    from .._events import EventSink, Progress, Report
    from .._outcomes import StepRecord
    from .._port import ApprovalAsk, Claim, ToolCallRecord, ToolServer
    from .._step_context import StepContext
    from ..security._audit import AuditLog
    from ..security._identity import Rejection
    from ..security._security import RunSecurity
    from ._journal import RunJournal

__all__ = ("LocalPort", "RunState")

_security_log = logging.getLogger("cadenza.security")


@dataclass(eq=False, slots=True)
class RunState:
    """One run's live state in this process; one per run, shared by the run's teams."""

    run_id: str
    prices: Prices = PRICES
    """What turns tokens into USD for budgets in USD."""
    budget: BudgetAccount | None = None
    """The whole run's own budget, if it has one."""
    journal: RunJournal | None = None
    """Where a recorded run's records go (None: the run is not recorded)."""
    audit_log: AuditLog | None = None
    security: RunSecurity | None = None
    """The run's keyring, when it signs the messages between its agents."""
    sources: ToolSources = field(default_factory=ToolSources)
    """The MCP servers the run opened (closed when it ends)."""
    agent_budgets: dict[ScopePath, BudgetAccount] = field(default_factory=dict)
    """Each budgeted agent's account, by its identity's path (its team's path, then its name): shared by all its
    steps in the run."""
    events: EventStream | None = None
    """The run's one event stream, once its top team's port is made."""
    team_steps: dict[ScopePath, list[StepRecord]] = field(default_factory=dict)
    """What each nested team ran, by its path, until the team above it takes it into its step's record."""

    @classmethod
    def begin(cls, run_id: str, *, budget: Budget | None = None, prices: Prices | None = None,
              sign_messages: bool = False, sources: ToolSources | None = None) -> RunState:
        """The state of a run a team or a peer group starts (or resumes) in this process."""
        state = cls(run_id, prices=prices or PRICES, budget=run_account(budget),
                    sources=sources if sources is not None else ToolSources())
        if sign_messages:
            state.sign_messages()
        return state

    def sign_messages(self) -> None:
        """Sign every Task and Result between the run's agents, with a keyring of the run's own."""
        from ..security._security import RunSecurity

        self.security = RunSecurity(self.run_id, on_reject=self._rejected)

    def _rejected(self, rejection: Rejection) -> None:
        """A refused envelope is a warning in the log, and a record of the run's (its audit log keeps it)."""
        _security_log.warning("message refused (%s): %s", rejection.reason, rejection.detail,
                              extra={"sender": rejection.sender, "recipient": rejection.recipient,
                                     "nonce": rejection.nonce})
        if self.events is not None:
            self.events.keep(MessageRejected(self.run_id, rejection.reason, rejection.detail, rejection.sender,
                                             rejection.recipient, rejection.nonce, rejection.kind))

    def port(self, accounts: tuple[BudgetAccount, ...] = (), events: EventSink | None = None) -> LocalPort:
        """The port of the run's top team, under ``accounts`` (outermost first; the run's own budget goes first).

        It holds the run's one event stream: the journal and the audit log when the run keeps them, metrics when
        the application collects them, and ``events`` (a caller's sink, the live display).
        """
        if self.budget is not None and self.budget not in accounts:
            accounts = (self.budget, *accounts)
        self.events = self.stream(events)
        return LocalPort(self, accounts, self.events)

    def stream(self, events: EventSink | None = None) -> EventStream:
        """The run's event stream with its sinks, ``events`` among them."""
        journal = None
        if self.journal is not None:  # a run without a store never loads the store's rows
            from ._journal import JournalSink

            journal = JournalSink(self.journal)
        return EventStream(journal=journal,
                           audit=AuditSink(self.audit_log) if self.audit_log is not None else None,
                           observers=(MetricsSink() if metrics_enabled() else None, events))


class LocalPort:
    """The port of workers in this process: every request goes straight to the run's state."""

    __slots__ = ("accounts", "events", "state")

    def __init__(self, state: RunState, accounts: tuple[BudgetAccount, ...], events: EventStream) -> None:
        self.state = state
        self.accounts = accounts
        """The budgets covering the team's steps: the run's, then each enclosing team's."""
        self.events = events
        """The run's one event stream."""

    def within(self, account: BudgetAccount | None) -> LocalPort:
        """The port of a nested team's steps: these budgets and the team's own."""
        accounts = self.accounts if account is None else (*self.accounts, account)
        return LocalPort(self.state, accounts, self.events)

    @property
    def budgets(self) -> tuple[str, ...]:
        """The labels of the budgets covering the team's steps, for their contexts."""
        return tuple(account.label for account in self.accounts)

    def budget_spent(self) -> bool:
        """Whether a budget covering the whole team (the run's or a team's, not one agent's) refused a call."""
        return any(account.exhausted is not None for account in self.accounts)

    @property
    def observed(self) -> bool:
        return self.events.observed

    @property
    def streaming(self) -> bool:
        return self.events.streaming

    def report(self, event: Report) -> None:
        self.events.report(event)

    def progress(self, event: Progress) -> None:
        self.events.progress(event)

    async def reserve(self, ctx: StepContext, claim: Claim, budget: Budget | None) -> Lease:
        accounts = self.accounts
        if budget is not None:
            path = child_path(ctx.team, ctx.agent)
            own = self.state.agent_budgets.get(path)
            if own is None:
                own = self.state.agent_budgets[path] = BudgetAccount(f"agent {ctx.agent!r}", budget)
            accounts = (*accounts, own)
        if not accounts:
            return Lease()
        usd = worst_usd(claim, self.state.prices) if any(a.budget.usd is not None for a in accounts) else 0.0
        held = await reserve_on(accounts, claim.agent, claim.tokens, usd)
        if not self.events.active:
            return Lease(held)
        reserved = BudgetReserved(ctx.run_id, "rsv_" + secrets.token_hex(8), claim.agent, claim.tokens, usd)
        try:
            if self.state.budget is not None:  # durable before the call: a provider bills a request whose sender
                await self.events.keep_durable(reserved)  # dies waiting, and a resumed run counts it (`_reservations`)
            else:
                self.events.keep(reserved)
        except BaseException:
            await release(held, Usage())
            raise
        return Lease(held, reserved.reservation_id)

    async def settle(self, lease: Lease, usage: Usage | None) -> None:
        held = lease.held
        if held is None:
            return
        if lease.reservation is not None and usage is not None:  # a cancelled call's reservation stays open
            self.events.keep(BudgetSettled(self.state.run_id, lease.reservation, held.agent, held.tokens, held.usd,
                                           usage))
        await release(held, usage)

    async def record_call(self, ctx: StepContext, call: ToolCallRecord) -> None:
        if not self.events.active:  # not recorded, nobody watching: no process will resume the run
            return
        recorded = ToolCallRecorded(ctx.run_id, ctx.scope, ctx.agent, call.key, call.tool, call.side_effect,
                                    call.arguments_digest, call.status, utcnow(), call.result_json)
        if call.status == "failed":
            self.events.keep(recorded)
        else:
            await self.events.keep_durable(recorded)

    async def approve(self, ctx: StepContext, ask: ApprovalAsk) -> None:
        journal = self.state.journal
        if journal is None:
            what = f"agent {ctx.agent!r}" if ask.name == STEP else f"tool {ask.name!r}"
            raise ToolError(f"{what} requires approval, which needs a team run recorded in a store")
        await decide(journal, self.events, ctx, ask)

    def workspace(self, ctx: StepContext, writer: str) -> Workspace | None:
        journal = self.state.journal
        if journal is None:
            return None
        return Workspace(journal.store, ctx.run_id, writer=writer)

    async def open_servers(self, servers: Sequence[ToolServer]) -> None:
        await self.state.sources.open(servers)

