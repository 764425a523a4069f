"""Tool calls that must survive a crash: idempotency keys, exactly-once recording, approvals.

A resumed run runs an unfinished step again, and with it the step's tool calls. For a
tool with side effects that is only safe if the runtime knows which calls already
happened. Each such call gets a key that is stable across processes (run, step path,
tool, argument digest, and how many identical calls came before it in the step); the
call is recorded before it runs and again with its result, so:

- a call recorded as finished is answered from the record, never repeated;
- an ``at_most_once`` call recorded as started but not finished may or may not have taken
  effect: the resume pauses for a human (approve = run it again, reject = do not);
- a call of a tool that ``requires_approval`` pauses its step until a human decides, and
  the decision is bound to that exact call and used once;
- an approved call (or step) that was in flight when the run stopped is uncertain again: the
  approval was used, so the resume pauses for a new decision instead of running it a third time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from ._audit_hooks import audit
from ._errors import ApprovalRequired, ToolError
from ._journal import RunJournal, StepContext
from ._messages import utcnow
from ._tools import Tool, ToolContext
from .stores.base import ApprovalRow, PutApproval, PutToolCall, ToolCallRow

__all__ = ("STEP", "UNCERTAIN", "approval_id", "arguments_digest", "call_key", "current_decision", "guarded_call",
           "step_gate")

STEP = "(step)"
"""The name approvals of whole steps carry where a tool call's carry the tool's."""

UNCERTAIN = ("uncertain: the call was in flight when the run stopped and may have taken effect; "
             "approve to run it again, reject to skip it")


def arguments_digest(arguments: dict[str, Any]) -> str:
    """A hash of the arguments that does not depend on key order."""
    text = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def call_key(run_id: str, step: str, tool: str, digest: str, occurrence: int) -> str:
    """The idempotency key of a call: the same for the same call of the same step, in every process."""
    raw = f"{run_id}\x1f{step}\x1f{tool}\x1f{digest}\x1f{occurrence}"
    return "idem_" + hashlib.sha256(raw.encode()).hexdigest()[:32]


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


async def guarded_call(tool: Tool, arguments: dict[str, Any], context: ToolContext, step: StepContext | None,
                       digest: str) -> Any:
    """Run a call of a tool with side effects (or one needing approval) under the step's journal."""
    journal = step.journal if step is not None else None
    if step is None or journal is None:  # not recorded: nothing to guard but the approval, which needs a record
        if tool.requires_approval:
            raise ToolError(f"tool {tool.name!r} requires approval, which needs a team run recorded in a store")
        return await tool.run(arguments, context=context)
    key = context.idempotency_key
    prior = journal.prior.tool_calls.get(key)
    if prior is not None and prior.status == "finished":
        return json.loads(prior.result_json) if prior.result_json is not None else None
    in_flight = prior is not None and prior.status in ("started", "uncertain")  # when an earlier process stopped
    if in_flight and (tool.side_effect == "at_most_once" or tool.requires_approval):
        await _approved(journal, tool.name, arguments, step, digest, key, uncertain=True)
    elif tool.requires_approval:
        await _approved(journal, tool.name, arguments, step, digest, key, uncertain=False)

    def row(status: Any, result_json: str | None = None) -> PutToolCall:
        return PutToolCall(ToolCallRow(step.run_id, key, step.scope, step.step_id, step.agent, tool.name,
                                       tool.side_effect, digest, status, utcnow(), result_json))

    await journal.commit(row("started"))  # durable before the effect can happen
    try:
        value = await tool.run(arguments, context=context)
    except ToolError:
        journal.record(row("failed"))
        raise
    await journal.commit(row("finished", json.dumps(value, default=str)))
    return value


async def step_gate(step: StepContext | None, agent: str, task_description: dict[str, Any]) -> None:
    """For an agent that requires approval: return once a human approved this step, else raise.

    Raises:
        ApprovalRequired: no decision yet (the step pauses).
        ToolError: the step was rejected, or the run is not recorded (approvals need a store).
    """
    if step is None or step.journal is None:
        raise ToolError(f"agent {agent!r} requires approval, which needs a team run recorded in a store")
    digest = arguments_digest(task_description)
    key = call_key(step.run_id, step.scope, STEP, digest, 0)
    await _approved(step.journal, STEP, task_description, step, digest, key, uncertain=False)


async def _approved(journal: RunJournal, name: str, arguments: dict[str, Any], step: StepContext, digest: str,
                    key: str, *, uncertain: bool) -> None:
    """Return if a human approved this exact call (using the approval); raise otherwise."""
    the_id, found, uncertain = current_decision(journal.prior.approvals, key, uncertain=uncertain)
    reason = UNCERTAIN if uncertain else "approval required"
    how = f"cadenza approve {step.run_id} {step.step_id}  (or: cadenza reject ...)"
    what = f"step {step.step_id!r}" if name == STEP else f"tool {name!r}"
    if found is None:
        request = ApprovalRow(step.run_id, the_id, step.scope, step.step_id, step.agent, name, digest,
                              json.dumps(arguments, default=str), reason, "pending", utcnow())
        audit("approval.requested", step.agent, the_id, {"step": step.scope, "tool": name, "arguments_digest": digest,
                                                          "reason": reason})
        await journal.commit(PutApproval(request))
        journal.prior.approvals[the_id] = request
        raise ApprovalRequired(f"{what} waits for a human decision ({reason}): {how}", approval_id=the_id)
    if found.status == "pending":
        raise ApprovalRequired(f"{what} still waits for a human decision: {how}", approval_id=the_id)
    if found.status == "rejected":
        note = f": {found.note}" if found.note else ""
        verdict = "skipped" if uncertain else "rejected"
        raise ToolError(f"{what} was {verdict} by {found.decided_by or 'a human'}{note}")
    if not await journal.store.use_approval(step.run_id, the_id):
        raise ToolError(f"the approval {the_id} of {what} was already used")
