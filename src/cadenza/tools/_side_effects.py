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
  approval was used, so the resume pauses for a new decision instead of running it a third time;
- an approved call that failed is not run again on the same approval when its step is retried: the
  step pauses for a new decision. A finished call is answered from its record in a retry as in a resume.

This module is the worker's side: it asks the run through its port (``_port.RunPort``) to record
each call and to decide approvals (``_approvals``); it never touches the store.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from .._port import STEP, ApprovalAsk, ToolCallRecord

if TYPE_CHECKING:
    from .._port import RunPort
    from .._step_context import StepContext
    from ._tools import Tool, ToolContext

__all__ = ("STEP", "arguments_digest", "call_key", "guarded_call", "step_gate")


def arguments_digest(arguments: dict[str, Any]) -> str:
    """A hash of the arguments that does not depend on key order."""
    text = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def call_key(run_id: str, step: str, tool: str, digest: str, occurrence: int) -> str:
    """The idempotency key of a call: the same for the same call of the same step, in every process."""
    raw = f"{run_id}\x1f{step}\x1f{tool}\x1f{digest}\x1f{occurrence}"
    return "idem_" + hashlib.sha256(raw.encode()).hexdigest()[:32]


async def guarded_call(tool: Tool, arguments: dict[str, Any], context: ToolContext, ctx: StepContext, port: RunPort,
                       digest: str) -> Any:
    """Run a call of a tool with side effects (or one needing approval), recorded by the run before and after.

    Raises:
        ApprovalRequired: the call waits for a human (the step pauses).
        ToolError: the tool failed, the call was rejected, or the port refused to record it.
    """
    key = context.idempotency_key
    prior = ctx.prior_call(key)
    if prior is not None and prior.status == "finished":
        return json.loads(prior.result_json) if prior.result_json is not None else None
    in_flight = prior is not None and prior.status in ("started", "uncertain")  # when an earlier process stopped
    if in_flight and (tool.side_effect == "at_most_once" or tool.requires_approval):
        await port.approve(ctx, ApprovalAsk(tool.name, arguments, digest, key, uncertain=True))
    elif tool.requires_approval:
        failed = prior is not None and prior.status == "failed"
        await port.approve(ctx, ApprovalAsk(tool.name, arguments, digest, key, uncertain=False, failed=failed))

    def record(status: Any, result_json: str | None = None) -> ToolCallRecord:
        return ToolCallRecord(key, tool.name, tool.side_effect, digest, status, result_json)

    await port.record_call(ctx, record("started"))  # durable before the effect can happen
    try:
        value = await tool.run(arguments, context=context)
    except Exception:
        await port.record_call(ctx, record("failed"))
        raise
    await port.record_call(ctx, record("finished", json.dumps(value, default=str)))
    return value


async def step_gate(ctx: StepContext, port: RunPort, agent: str, task_description: dict[str, Any]) -> None:
    """For an agent that requires approval: return once a human approved this step, else raise.

    Raises:
        ApprovalRequired: no decision yet (the step pauses).
        ToolError: the step was rejected, or the run cannot keep approvals (it is not recorded).
    """
    digest = arguments_digest(task_description)
    key = call_key(ctx.run_id, ctx.scope, STEP, digest, 0)
    await port.approve(ctx, ApprovalAsk(STEP, task_description, digest, key, uncertain=False))
