"""Human decisions on calls and steps, kept by the run: requested, decided, and used once.

A worker asks through its port (``RunPort.approve``); the run answers from its journal and
store. An approval is bound to one call (its idempotency key) and used once: an approved call
that was in flight when a process stopped may have taken effect, so a resumed run asks again
rather than run it a third time, and an approved call that failed is asked about again before a
retry of its step runs it once more. A step's own approval holds for every attempt of the step
in the process that used it: a retry after a model error is the same step, approved once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .._errors import ApprovalRequired, ToolError
from .._events import ApprovalRequested
from .._messages import utcnow
from .._port import STEP

if TYPE_CHECKING:
    from .._port import ApprovalAsk
    from .._step_context import StepContext
    from ..stores.base import ApprovalRow
    from ._journal import RunJournal
    from ._stream import EventStream

__all__ = ("FAILED", "UNCERTAIN", "approval_id", "current_decision", "decide")

UNCERTAIN = ("uncertain: the call was in flight when the run stopped and may have taken effect; "
             "approve to run it again, reject to skip it")
FAILED = "the approved call failed; approve to run it again, reject to skip it"


def approval_id(kind: str, key: str) -> str:
    """``apr_...`` for an approval a tool requires, ``unc_...`` for a decision on an uncertain call."""
    return f"{kind}_" + hashlib.sha256(key.encode()).hexdigest()[:16]


def current_decision(approvals: Mapping[str, ApprovalRow], key: str, *,
                     uncertain: bool) -> tuple[str, ApprovalRow | None, bool]:
    """The approval that decides the call with idempotency ``key`` now: its id, its row (None: not asked yet),
    and whether it is a decision on an uncertain call.

    An approval is used once. One that an earlier process of the run used approved a call (or step) that
    then never finished: the run stopped during it, so it may have taken effect, and a new decision on the
    uncertain call is due. The decisions form a chain of ids, each derived from the one before, so every
    process of the run finds the same one.
    """
    the_id = approval_id("unc" if uncertain else "apr", key)
    found = approvals.get(the_id)
    while found is not None and found.status == "used":
        the_id = approval_id("unc", the_id if uncertain else key)
        uncertain = True
        found = approvals.get(the_id)
    return the_id, found, uncertain


async def decide(journal: RunJournal, events: EventStream, ctx: StepContext, ask: ApprovalAsk) -> None:
    """Return if a human approved ``ask`` (using the approval); raise otherwise. A request is an event of the run's
    ``events`` (its journal stores it, its audit log records it); using an approval is a compare-and-set on the store.

    Raises:
        ApprovalRequired: no decision yet; the request is durable before this raises.
        ToolError: rejected, or its approval was used already.
    """
    if ask.name == STEP and ask.key in journal.approved_steps:
        return
    the_id, found, again = current_decision(journal.prior.approvals, ask.key, uncertain=ask.uncertain)
    reason = "approval required" if not again else FAILED if ask.failed else UNCERTAIN
    how = f"cadenza approve {ctx.run_id} {ctx.step_id}  (or: cadenza reject ...)"
    what = f"step {ctx.step_id!r}" if ask.name == STEP else f"tool {ask.name!r}"
    if found is None:
        await events.keep_durable(ApprovalRequested(ctx.run_id, ctx.scope, ctx.agent, the_id, ask.name,
                                                    ask.arguments_digest, json.dumps(dict(ask.arguments), default=str),
                                                    reason, utcnow()))
        raise ApprovalRequired(f"{what} waits for a human decision ({reason}): {how}", approval_id=the_id)
    if found.status == "pending":
        raise ApprovalRequired(f"{what} still waits for a human decision: {how}", approval_id=the_id)
    if found.status == "rejected":
        note = f": {found.note}" if found.note else ""
        verdict = "skipped" if again else "rejected"
        raise ToolError(f"{what} was {verdict} by {found.decided_by or 'a human'}{note}")
    if not await journal.store.use_approval(ctx.run_id, the_id):
        raise ToolError(f"the approval {the_id} of {what} was already used")
    journal.prior.approvals[the_id] = dataclasses.replace(found, status="used")
    if ask.name == STEP:
        journal.approved_steps.add(ask.key)
